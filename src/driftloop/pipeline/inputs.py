"""Which uploads a run works on: everything under the incoming prefix its champion's data has not consumed.

The list is fixed once per run (``runs/<run_id>/inputs.json``) so the drift, merge and evaluation
steps all see the same files, and uploads arriving later go to the next run instead of being lost.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.adapters.s3 import ObjectInfo, exists, get_json, list_objects, put_json
from driftloop.data.inputs import READ_ERRORS, inspect_file, quarantine
from driftloop.data.schema import unify_schemas
from driftloop.errors import InvalidInputError, UnsafeSchemaChangeError
from driftloop.layout import (
    inputs_key,
    object_path,
    quarantine_dir,
    quarantine_key,
    quarantine_marker_key,
    s3_uri,
    validate_object_key,
)
from driftloop.pipeline.lineage import champion_manifest, consumed_sources
from driftloop.pipeline.services import Services
from driftloop.storage import ParquetSource, is_parquet_name, s3_filesystem, s3_source


def pin(services: Services, obj: ObjectInfo) -> ObjectInfo:
    """The object's version now (ETag, size and version id from one HEAD): every later read of the run
    asks for this version, so an overwrite in the middle of a run is left for the next run."""
    bucket = services.settings.data_bucket
    try:
        head = services.s3.head_object(Bucket=bucket, Key=obj.key)
    except ClientError as error:
        raise_for_client_error(error, obj.uri(bucket))
    return replace(obj, etag=head["ETag"].strip('"'), size=int(head["ContentLength"]),
                   version_id=head.get("VersionId"))


def upload_source(services: Services, entries: list[dict[str, Any]]) -> ParquetSource:
    """The uploads of ``inputs.json`` entries, each read as the version the run fixed."""
    return s3_source(services.s3, services.settings.data_bucket, [entry["key"] for entry in entries],
                     {entry["key"]: entry.get("version_id") for entry in entries})


def check_upload(services: Services, obj: ObjectInfo,
                 reference: pa.Schema | None) -> tuple[str | None, pa.Schema | None]:
    """Open the upload once and read it whole, as drift and merge will: the reason it cannot be used (not
    Parquet, no rows, an unreadable footer, duplicate column names, a column whose type cannot be widened
    from ``reference``, data pages that do not decode), else None and the reference widened by its
    columns. One row group at a time, so memory stays at one group."""
    if not is_parquet_name(obj.key):
        return "not a .parquet object", None
    if obj.size == 0:
        return "empty object (0 bytes)", None
    source = upload_source(services, [{"key": obj.key, "version_id": obj.version_id}])
    with ExitStack() as opened:
        try:
            parquet = pq.ParquetFile(opened.enter_context(source.filesystem.open_input_file(source.paths[0])))
        except Exception as error:  # noqa: BLE001 - any reader failure makes the file unusable; say why
            return f"unreadable Parquet: {type(error).__name__}: {error}"[:300], None
        if parquet.metadata.num_rows == 0:
            return "Parquet file with no rows", None
        try:
            names = parquet.schema_arrow.names
            duplicated = sorted({name for name in names if names.count(name) > 1})
            if duplicated:
                return f"duplicate column names: {', '.join(map(repr, duplicated))}"[:300], None
            widened = unify_schemas([(source.label(0), parquet.schema_arrow)], base=reference)
            for row_group in range(parquet.num_row_groups):
                parquet.read_row_group(row_group)
        except UnsafeSchemaChangeError as error:
            return f"unsafe schema change: {error}"[:300], None
        except READ_ERRORS as error:
            return f"corrupt Parquet data: {type(error).__name__}: {error}"[:300], None
    return None, widened


def reference_schema(services: Services, champion: dict[str, Any] | None,
                     manifest: dict[str, Any] | None) -> pa.Schema | None:
    """The schema of the champion's training data (its first data file), or None before the first one."""
    files = (manifest or {}).get("files") or []
    if not champion or not files:
        return None
    path = object_path(services.settings.data_bucket, f"{champion['dataset_dir']}/{files[0]['path']}")
    with s3_filesystem(services.s3).open_input_file(path) as handle:
        return pq.read_schema(handle)


def quarantine_upload(services: Services, run_id: str, obj: ObjectInfo, reason: str) -> dict[str, Any]:
    """Copy an upload (the version the run pinned) to ``quarantine/<run_id>/`` with its reason, and
    remember it so no later run reads it again. The upload itself stays where it is."""
    bucket = services.settings.data_bucket
    source = upload_source(services, [{"key": obj.key, "version_id": obj.version_id}])
    rejected = inspect_file(0, source, 0, "new", obj.etag).rejected(reason)
    name = f"{hashlib.sha256(obj.key.encode()).hexdigest()[:8]}-{obj.key.rsplit('/', 1)[-1]}"
    copy = quarantine(rejected, s3_filesystem(services.s3), object_path(bucket, quarantine_dir(run_id)), name)
    mark_quarantined(services, run_id, [copy], {obj.uri(bucket): obj.etag})
    return {"key": obj.key, "etag": obj.etag, "size": obj.size, "version_id": obj.version_id, "reason": reason,
            "copy": s3_uri(bucket, quarantine_key(run_id, name))}


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
    """List the unconsumed uploads once per run (idempotent: a retry reads the saved list), each pinned
    to its version id.

    ``readable`` go to drift and the merge. ``unreadable`` ones (a bad footer, no rows, or a full read
    that fails: duplicate column names, a type that cannot be widened from the champion's data or an
    earlier upload, corrupt data pages) are copied to ``quarantine/<run_id>/`` with their reason here,
    at the first step that reads them, and no later run opens them again. ``rejected`` keys (a relative
    segment, control characters, not NFC: see ``validate_object_key``) are never opened, since a path
    built from them could resolve to another object; ``quarantined`` are versions an earlier run already
    quarantined. All of them stay where they are."""
    settings = services.settings
    bucket = settings.data_bucket
    key = inputs_key(run_id)
    if exists(services.s3, bucket, key):
        return get_json(services.s3, bucket, key)
    manifest = champion_manifest(services, champion)
    consumed = consumed_sources(manifest)
    reference = reference_schema(services, champion, manifest)
    readable, unreadable, rejected, quarantined = [], [], [], []
    for listed in list_objects(services.s3, bucket, settings.incoming_prefix):
        if (listed.uri(bucket), listed.etag) in consumed:
            continue
        if exists(services.s3, bucket, quarantine_marker_key(listed.uri(bucket), listed.etag)):
            quarantined.append({"key": listed.key, "etag": listed.etag})
            continue
        entry = {"key": listed.key, "etag": listed.etag, "size": listed.size}
        try:
            validate_object_key(listed.key, (settings.incoming_prefix,))
        except InvalidInputError as error:
            rejected.append({**entry, "reason": str(error)})
            continue
        obj = pin(services, listed)
        if (obj.uri(bucket), obj.etag) in consumed:
            continue
        reason, widened = check_upload(services, obj, reference)
        if reason is None:
            reference = widened
            readable.append({"key": obj.key, "etag": obj.etag, "size": obj.size, "version_id": obj.version_id})
        else:
            unreadable.append(quarantine_upload(services, run_id, obj, reason))
    document = {"run_id": run_id, "readable": readable, "unreadable": unreadable, "rejected": rejected,
                "quarantined": quarantined}
    put_json(services.s3, bucket, key, document)
    return document
