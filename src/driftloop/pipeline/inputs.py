"""Which uploads a run works on: everything under the incoming prefix its champion's data has not consumed.

The list is fixed once per run (``runs/<run_id>/inputs.json``) so the drift, merge and evaluation
steps all see the same files, and uploads arriving later go to the next run instead of being lost.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.adapters.s3 import ObjectInfo, exists, get_json, list_objects, put_json
from driftloop.errors import InvalidInputError
from driftloop.pipeline.services import Services
from driftloop.storage import is_parquet_name, s3_filesystem
from driftloop.triggers import validate_object_key


def inputs_key(run_id: str) -> str:
    return f"runs/{run_id}/inputs.json"


def consumed_sources(services: Services, champion: dict[str, Any] | None) -> set[tuple[str, str]]:
    """(URI, ETag) of every upload already merged into the champion's training data: a new version
    of an object under the same key is new data, the same version is not."""
    if not champion or not champion.get("dataset_manifest_key"):
        return set()
    manifest = get_json(services.s3, services.settings.data_bucket, champion["dataset_manifest_key"])
    return {(entry["source"], entry.get("version") or "") for entry in manifest.get("consumed_sources", [])}


def upload_already_merged(services: Services, key: str, champion: dict[str, Any] | None) -> str | None:
    """Why an upload brings nothing new (the version its key holds now is already in the champion's
    training data), or None. A missing object is left to the drift step to report."""
    bucket = services.settings.data_bucket
    try:
        current = services.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as error:
        if error.response["Error"].get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise_for_client_error(error, f"s3://{bucket}/{key}")
    if (f"s3://{bucket}/{key}", current) in consumed_sources(services, champion):
        return (f"s3://{bucket}/{key} (ETag {current}) is already merged into the champion's training data "
                f"({(champion or {}).get('dataset_dir')})")
    return None


def probe_parquet(services: Services, obj: ObjectInfo) -> str | None:
    """None when the object is readable Parquet with at least one row, else the reason it is not."""
    bucket = services.settings.data_bucket
    if not is_parquet_name(obj.key):
        return "not a .parquet object"
    if obj.size == 0:
        return "empty object (0 bytes)"
    try:
        with s3_filesystem(services.s3).open_input_file(f"{bucket}/{obj.key}") as handle:
            metadata = pq.ParquetFile(handle).metadata
    except Exception as error:  # noqa: BLE001 - any reader failure makes the file unusable; say why
        return f"unreadable Parquet: {type(error).__name__}: {error}"[:300]
    if metadata.num_rows == 0:
        return "Parquet file with no rows"
    return None


def quarantine_marker_key(uri: str, etag: str) -> str:
    return f"quarantine/_seen/{hashlib.sha256(f'{uri}#{etag}'.encode()).hexdigest()}.json"


def mark_quarantined(services: Services, run_id: str, quarantined: list[dict[str, Any]],
                     etags: dict[str, str]) -> None:
    """Remember which upload versions a merge quarantined, so later runs do not count them again
    (they are never consumed by a champion's lineage, and would otherwise weigh on every run's bad share)."""
    for entry in quarantined:
        uri = entry["source"]
        if uri in etags:
            put_json(services.s3, services.settings.data_bucket, quarantine_marker_key(uri, etags[uri]),
                     {"source": uri, "etag": etags[uri], "reason": entry.get("reason"), "run_id": run_id})


def fix_inputs(services: Services, run_id: str, champion: dict[str, Any] | None) -> dict[str, Any]:
    """List the unconsumed uploads once per run (idempotent: a retry reads the saved list).

    ``readable`` and ``unreadable`` go to the merge (the latter to quarantine); ``rejected`` keys (a
    relative segment, control characters, not NFC: see ``validate_object_key``) are never opened,
    since a path built from them could resolve to another object; ``quarantined`` are versions an
    earlier merge already quarantined. All of them stay where they are."""
    settings = services.settings
    bucket = settings.data_bucket
    key = inputs_key(run_id)
    if exists(services.s3, bucket, key):
        return get_json(services.s3, bucket, key)
    consumed = consumed_sources(services, champion)
    readable, unreadable, rejected, quarantined = [], [], [], []
    for obj in list_objects(services.s3, bucket, settings.incoming_prefix):
        if (obj.uri(bucket), obj.etag) in consumed:
            continue
        if exists(services.s3, bucket, quarantine_marker_key(obj.uri(bucket), obj.etag)):
            quarantined.append({"key": obj.key, "etag": obj.etag})
            continue
        entry = {"key": obj.key, "etag": obj.etag, "size": obj.size}
        try:
            validate_object_key(obj.key, (settings.incoming_prefix,))
        except InvalidInputError as error:
            rejected.append({**entry, "reason": str(error)})
            continue
        reason = probe_parquet(services, obj)
        if reason is None:
            readable.append(entry)
        else:
            unreadable.append({**entry, "reason": reason})
    document = {"run_id": run_id, "readable": readable, "unreadable": unreadable, "rejected": rejected,
                "quarantined": quarantined}
    put_json(services.s3, bucket, key, document)
    return document
