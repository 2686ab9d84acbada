"""The run ledger on DynamoDB: trigger de-duplication, the per-model lock, the champion, run records.

Items (``pk`` / ``sk``):
- ``TRIGGER#<dedup key>`` / ``TRIGGER``: the run that first claimed a trigger (expires after 30 days).
- ``MODEL#<model>`` / ``LOCK``: holder run id, its execution and lease expiry (conditional writes).
- ``MODEL#<model>`` / ``CHAMPION``: what serves now (model, dataset version, baseline).
- ``MODEL#<model>`` / ``PENDING#<dedup key>``: a trigger deferred while another run held the lock.
- ``MODEL#<model>`` / ``RUN#<started_at>#<run id>``: the run record, or (when the record would not fit in
  DynamoDB's 400 KB item) a summary naming the full record in S3 (``record_uri``).
- ``OBJECT#<sha256 of bucket/key>`` / ``SEQUENCER``: the latest S3 event position seen for an object key.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from driftloop.errors import LockLostError, TransientError

TRIGGER_RETENTION_SECONDS = 30 * 24 * 3600
# A run record is stored whole in its item up to this size (DynamoDB's item limit is 400 KB, keys and
# attribute names included); a larger one keeps only its summary there, the full record is in S3.
MAX_RECORD_BYTES = 300_000
RECORD_SUMMARY_FIELDS = ("run_id", "model", "trigger", "started_at", "finished_at", "execution", "outcome",
                         "error", "restore_error", "record_uri", "duplicate_of", "lock_expires_at")
_THROTTLING = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
               "InternalServerError", "TransactionConflictException"}


@dataclass(frozen=True)
class LockResult:
    acquired: bool
    holder: str
    expires_at: float


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Ledger:
    def __init__(self, client: Any, table: str, clock: Callable[[], float] = time.time) -> None:
        self._client, self._table, self._clock = client, table, clock

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(TableName=self._table, **kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] in _THROTTLING:
                raise TransientError(f"DynamoDB {operation}: {error.response['Error']['Code']}") from error
            raise

    def claim_trigger(self, dedup_key: str, claimant: str, now: float) -> str | None:
        """Record that ``claimant`` (an execution) handles this trigger; return the earlier claimant on a redelivery."""
        try:
            self._call(
                "put_item",
                Item={
                    "pk": {"S": f"TRIGGER#{dedup_key}"},
                    "sk": {"S": "TRIGGER"},
                    "claimant": {"S": claimant},
                    "claimed_at": {"N": str(now)},
                    "expires_at": {"N": str(int(now + TRIGGER_RETENTION_SECONDS))},
                },
                ConditionExpression="attribute_not_exists(pk) OR claimant = :claimant",
                ExpressionAttributeValues={":claimant": {"S": claimant}},
            )
            return None
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self._call(
            "get_item", Key={"pk": {"S": f"TRIGGER#{dedup_key}"}, "sk": {"S": "TRIGGER"}}, ConsistentRead=True
        ).get("Item", {})
        return item.get("claimant", {}).get("S", "unknown")

    def note_object_event(self, bucket: str, key: str, position: str) -> str | None:
        """Remember the latest event position (a padded S3 sequencer) for an object key. Returns the later
        position already seen when this event is older (delivered out of order), else None. Equal
        positions cannot be ordered and count as not older."""
        object_pk = {"S": "OBJECT#" + hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()}
        try:
            self._call(
                "put_item",
                Item={"pk": object_pk, "sk": {"S": "SEQUENCER"}, "position": {"S": position}},
                ConditionExpression="attribute_not_exists(pk) OR #position <= :position",
                ExpressionAttributeNames={"#position": "position"},
                ExpressionAttributeValues={":position": {"S": position}},
            )
            return None
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self._call("get_item", Key={"pk": object_pk, "sk": {"S": "SEQUENCER"}}, ConsistentRead=True)
        return item.get("Item", {}).get("position", {}).get("S", "unknown")

    def acquire_lock(self, model: str, run_id: str, now: float, lease_seconds: float,
                     execution: str = "") -> LockResult:
        """Take the model's lock, or renew it for its holder; a lapsed lease can be taken over.
        ``execution`` (the Step Functions execution taking it) lets that execution's failure path release
        a lock it took even when it never learnt that it did (``release_lock_of_execution``)."""
        expires = now + lease_seconds
        try:
            self._call(
                "put_item",
                Item={
                    "pk": {"S": f"MODEL#{model}"},
                    "sk": {"S": "LOCK"},
                    "holder": {"S": run_id},
                    "execution": {"S": execution},
                    "lease_expires_at": {"N": str(expires)},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_expires_at < :now OR holder = :run",
                ExpressionAttributeValues={":now": {"N": str(now)}, ":run": {"S": run_id}},
            )
            return LockResult(True, run_id, expires)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self.lock(model) or {}
        return LockResult(False, item.get("holder", "unknown"), float(item.get("lease_expires_at", 0)))

    def renew_lock(self, model: str, run_id: str, now: float, lease_seconds: float) -> LockResult:
        """Extend the lease of a lock ``run_id`` still holds. Unlike ``acquire_lock`` this never takes a
        free lock: a run whose lock was released or taken over has lost it for good."""
        expires = now + lease_seconds
        try:
            self._call(
                "update_item",
                Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "LOCK"}},
                UpdateExpression="SET lease_expires_at = :expires",
                ConditionExpression="holder = :run",
                ExpressionAttributeValues={":expires": {"N": str(expires)}, ":run": {"S": run_id}},
            )
            return LockResult(True, run_id, expires)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self.lock(model) or {}
        return LockResult(False, item.get("holder", "nobody"), float(item.get("lease_expires_at", 0)))

    def require_lock(self, model: str, run_id: str, now: float, lease_seconds: float) -> float:
        """Renew the lease before a step that changes shared state; raise LockLostError if another run
        (or nobody) holds the lock now. Returns the new lease expiry."""
        renewal = self.renew_lock(model, run_id, now, lease_seconds)
        if not renewal.acquired:
            raise LockLostError(f"run {run_id} no longer holds the lock of model {model} "
                                f"(holder now: {renewal.holder}); its lease lapsed and was taken over")
        return renewal.expires_at

    def lock(self, model: str) -> dict[str, Any] | None:
        item = self._call(
            "get_item", Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "LOCK"}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        lock = {"holder": item["holder"]["S"], "lease_expires_at": float(item["lease_expires_at"]["N"])}
        if item.get("execution", {}).get("S"):
            lock["execution"] = item["execution"]["S"]
        return lock

    def release_lock(self, model: str, run_id: str) -> bool:
        """Release only a lock this run holds; True when released (False: someone else's or none)."""
        try:
            self._call(
                "delete_item",
                Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "LOCK"}},
                ConditionExpression="holder = :run",
                ExpressionAttributeValues={":run": {"S": run_id}},
            )
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def release_lock_of_execution(self, model: str, execution: str) -> str | None:
        """Release the lock if ``execution`` took it (an Admit that failed after taking the lock, before
        its run id reached the state); returns the released holder's run id, else None."""
        item = self.lock(model)
        if not item or not execution or item.get("execution") != execution:
            return None
        try:
            self._call(
                "delete_item",
                Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "LOCK"}},
                ConditionExpression="#execution = :execution AND holder = :run",
                ExpressionAttributeNames={"#execution": "execution"},
                ExpressionAttributeValues={":execution": {"S": execution}, ":run": {"S": item["holder"]}},
            )
            return item["holder"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise

    def _put_document(self, pk: str, sk: str, document: dict[str, Any], **extra: dict[str, Any]) -> None:
        self._call("put_item", Item={"pk": {"S": pk}, "sk": {"S": sk}, "document": {"S": _dumps(document)}, **extra})

    def _get_document(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")
        return json.loads(item["document"]["S"]) if item else None

    def champion(self, model: str) -> dict[str, Any] | None:
        return self._get_document(f"MODEL#{model}", "CHAMPION")

    def put_champion(self, model: str, champion: dict[str, Any]) -> None:
        self._put_document(f"MODEL#{model}", "CHAMPION", champion)

    def add_pending(self, model: str, dedup_key: str, trigger: dict[str, Any]) -> None:
        self._put_document(f"MODEL#{model}", f"PENDING#{dedup_key}", trigger)

    def remove_pending(self, model: str, dedup_key: str) -> None:
        self._call("delete_item", Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": f"PENDING#{dedup_key}"}})

    def _query(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sk)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":sk": {"S": sk_prefix}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("query", **kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def pending(self, model: str) -> dict[str, dict[str, Any]]:
        """The deferred triggers by de-duplication key. The caller removes each one (``remove_pending``)
        only once it has handed it on: a trigger is never deleted before it is safe elsewhere."""
        return {item["sk"]["S"].removeprefix("PENDING#"): json.loads(item["document"]["S"])
                for item in self._query(f"MODEL#{model}", "PENDING#")}

    def put_run(self, model: str, record: dict[str, Any]) -> None:
        """Store the run record; one too large for an item keeps its summary (``record_truncated``), and
        the full record stays at its ``record_uri``."""
        sort_key = f"RUN#{record['started_at']}#{record['run_id']}"
        if len(_dumps(record).encode()) > MAX_RECORD_BYTES:
            record = {key: record[key] for key in RECORD_SUMMARY_FIELDS if key in record} | {
                "record_truncated": True}
        self._put_document(
            f"MODEL#{model}", sort_key, record,
            outcome={"S": record["outcome"]}, run_id={"S": record["run_id"]},
            recorded_at={"N": str(Decimal(str(round(self._clock(), 3))))},
        )

    def runs(self, model: str) -> list[dict[str, Any]]:
        return [json.loads(item["document"]["S"]) for item in self._query(f"MODEL#{model}", "RUN#")]
