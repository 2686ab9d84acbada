"""Which uploads a run works on: everything under the incoming prefix its champion's data has not consumed.

The list is fixed once per run (``runs/<run_id>/inputs.json``) so the drift, merge and evaluation
steps all see the same files, and uploads arriving later go to the next run instead of being lost.
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from driftloop.adapters.s3 import ObjectInfo, exists, get_json, list_objects, put_json
from driftloop.pipeline.services import Services
from driftloop.storage import is_parquet_name, s3_filesystem


def inputs_key(run_id: str) -> str:
    return f"runs/{run_id}/inputs.json"


def consumed_sources(services: Services, champion: dict[str, Any] | None) -> set[tuple[str, str]]:
    """(URI, ETag) of every upload already merged into the champion's training data: a new version
    of an object under the same key is new data, the same version is not."""
    if not champion or not champion.get("dataset_manifest_key"):
        return set()
    manifest = get_json(services.s3, services.settings.data_bucket, champion["dataset_manifest_key"])
    return {(entry["source"], entry.get("version") or "") for entry in manifest.get("consumed_sources", [])}


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


def fix_inputs(services: Services, run_id: str, champion: dict[str, Any] | None) -> dict[str, Any]:
    """List the unconsumed uploads once per run (idempotent: a retry reads the saved list)."""
    bucket = services.settings.data_bucket
    key = inputs_key(run_id)
    if exists(services.s3, bucket, key):
        return get_json(services.s3, bucket, key)
    consumed = consumed_sources(services, champion)
    readable, unreadable = [], []
    for obj in list_objects(services.s3, bucket, services.settings.incoming_prefix):
        if (obj.uri(bucket), obj.etag) in consumed:
            continue
        reason = probe_parquet(services, obj)
        entry = {"key": obj.key, "etag": obj.etag, "size": obj.size}
        if reason is None:
            readable.append(entry)
        else:
            unreadable.append({**entry, "reason": reason})
    document = {"run_id": run_id, "readable": readable, "unreadable": unreadable}
    put_json(services.s3, bucket, key, document)
    return document
