"""The run ledger's conditional writes on DynamoDB (moto): de-duplication, the lock and its lease, pending triggers."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from driftloop.adapters.ledger import Ledger
from driftloop.errors import LockLostError, TransientError

TABLE = "driftloop-ledger-test"
MODEL = "recommender"
LEASE = 600.0


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Ledger(client, TABLE)


def test_a_trigger_is_claimed_once_and_a_retry_of_the_claimant_is_not_a_duplicate(ledger: Ledger) -> None:
    assert ledger.claim_trigger("key-1", "execution-a", 1000.0) is None
    assert ledger.claim_trigger("key-1", "execution-a", 1001.0) is None, "a retried Admit of the same execution"
    for redelivery in ("execution-b", "execution-c"):
        assert ledger.claim_trigger("key-1", redelivery, 1002.0) == "execution-a"
    assert ledger.claim_trigger("key-2", "execution-b", 1003.0) is None


def test_one_holder_at_a_time_until_its_lease_lapses(ledger: Ledger) -> None:
    first = ledger.acquire_lock(MODEL, "run-1", 0.0, LEASE)
    assert first.acquired and first.expires_at == LEASE
    second = ledger.acquire_lock(MODEL, "run-2", LEASE - 1, LEASE)
    assert not second.acquired and second.holder == "run-1" and second.expires_at == LEASE
    taken_over = ledger.acquire_lock(MODEL, "run-2", LEASE + 1, LEASE)
    assert taken_over.acquired, "a lapsed lease can be taken over"
    assert ledger.lock(MODEL) == {"holder": "run-2", "lease_expires_at": 2 * LEASE + 1}


def test_renewal_keeps_the_lock_through_a_long_run(ledger: Ledger) -> None:
    ledger.acquire_lock(MODEL, "run-1", 0.0, LEASE)
    for now in (500.0, 1000.0, 1500.0, 2000.0):
        assert ledger.require_lock(MODEL, "run-1", now, LEASE) == now + LEASE
        assert not ledger.acquire_lock(MODEL, "run-2", now + 1, LEASE).acquired, "renewed: no take-over"
    assert ledger.lock(MODEL)["holder"] == "run-1"


def test_a_run_whose_lease_was_taken_over_has_lost_the_lock_for_good(ledger: Ledger) -> None:
    ledger.acquire_lock(MODEL, "run-1", 0.0, LEASE)
    assert ledger.acquire_lock(MODEL, "run-2", LEASE + 1, LEASE).acquired
    lost = ledger.renew_lock(MODEL, "run-1", LEASE + 2, LEASE)
    assert not lost.acquired and lost.holder == "run-2"
    with pytest.raises(LockLostError, match="run-2"):
        ledger.require_lock(MODEL, "run-1", LEASE + 2, LEASE)
    assert ledger.lock(MODEL)["holder"] == "run-2", "the loser's renewal changed nothing"
    assert not ledger.release_lock(MODEL, "run-1"), "the loser cannot release the winner's lock"
    assert ledger.release_lock(MODEL, "run-2")


def test_renewal_never_takes_a_free_lock(ledger: Ledger) -> None:
    ledger.acquire_lock(MODEL, "run-1", 0.0, LEASE)
    assert ledger.release_lock(MODEL, "run-1")
    assert not ledger.renew_lock(MODEL, "run-1", 10.0, LEASE).acquired
    with pytest.raises(LockLostError, match="nobody"):
        ledger.require_lock(MODEL, "run-1", 10.0, LEASE)
    assert ledger.lock(MODEL) is None


def test_an_expired_lease_nobody_took_can_still_be_renewed(ledger: Ledger) -> None:
    ledger.acquire_lock(MODEL, "run-1", 0.0, LEASE)
    assert ledger.require_lock(MODEL, "run-1", 3 * LEASE, LEASE) == 4 * LEASE


def test_pending_triggers_stay_until_removed_one_by_one(ledger: Ledger) -> None:
    for index in range(5):
        ledger.add_pending(MODEL, f"key-{index}", {"type": "upload", "key": f"incoming/{index}.parquet"})
    ledger.add_pending(MODEL, "key-1", {"type": "upload", "key": "incoming/1.parquet"})  # redelivered
    ledger.remove_pending(MODEL, "key-4")
    pending = ledger.pending(MODEL)
    assert {key: trigger["key"] for key, trigger in pending.items()} == {
        f"key-{index}": f"incoming/{index}.parquet" for index in range(4)}
    assert ledger.pending(MODEL) == pending, "reading does not remove: only a handed-on trigger is removed"
    for key in pending:
        ledger.remove_pending(MODEL, key)
    assert ledger.pending(MODEL) == {}


def test_a_lock_is_released_by_the_execution_that_took_it_and_by_no_other(ledger: Ledger) -> None:
    ledger.acquire_lock(MODEL, "run-1", 0.0, LEASE, execution="arn:execution-a")
    assert ledger.lock(MODEL)["execution"] == "arn:execution-a"
    assert ledger.release_lock_of_execution(MODEL, "arn:execution-b") is None
    assert ledger.release_lock_of_execution(MODEL, "") is None
    assert ledger.release_lock_of_execution(MODEL, "arn:execution-a") == "run-1"
    assert ledger.lock(MODEL) is None


def test_a_run_record_too_large_for_an_item_keeps_its_summary(ledger: Ledger) -> None:
    record = {"run_id": "run-1", "started_at": "2026-01-01T00:00:00", "outcome": "failed",
              "record_uri": "s3://bucket/runs/run-1/record.json", "error": {"error": "X", "cause": "why"},
              "evidence": {"drift": {"features": {f"feature_{index}": {"psi": 0.1} for index in range(30_000)}}}}
    ledger.put_run(MODEL, record)
    stored = ledger.runs(MODEL)[0]
    assert stored["record_truncated"] is True and "evidence" not in stored
    assert {key: stored[key] for key in ("run_id", "outcome", "record_uri", "error")} == {
        key: record[key] for key in ("run_id", "outcome", "record_uri", "error")}
    small = {**record, "run_id": "run-2", "evidence": {}}
    ledger.put_run(MODEL, small)
    assert small in ledger.runs(MODEL), "a record that fits is stored whole"


def test_dynamodb_throttling_is_transient_and_other_errors_are_not() -> None:
    client = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("get_item", service_error_code="ProvisionedThroughputExceededException")
    stubber.add_client_error("get_item", service_error_code="ThrottlingException")
    stubber.add_client_error("get_item", service_error_code="AccessDeniedException")
    with stubber:
        ledger = Ledger(client, TABLE)
        for _ in range(2):
            with pytest.raises(TransientError, match="DynamoDB get_item"):
                ledger.champion(MODEL)
        with pytest.raises(ClientError):
            ledger.champion(MODEL)


def test_an_object_event_older_than_one_already_seen_is_reported_with_the_later_position(ledger: Ledger) -> None:
    bucket, key = "data-bucket", "incoming/2025-07.parquet"
    older, newer = "0" * 48 + "0066A8D0E77DE42B", "0" * 48 + "0066A8D0E77DE42C"
    assert ledger.note_object_event(bucket, key, newer) is None
    assert ledger.note_object_event(bucket, key, older) == newer
    assert ledger.note_object_event(bucket, key, newer) is None, "an equal position cannot be ordered: not older"
    assert ledger.note_object_event(bucket, "incoming/other.parquet", older) is None, "positions are per key"
    assert ledger.note_object_event("other-bucket", key, older) is None, "and per bucket"
