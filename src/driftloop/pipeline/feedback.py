"""The one reader of feedback: which recommendations were served, and which converted.

The A/B analysis (:mod:`driftloop.pipeline.ab_analysis`) and the concept-drift check
(:mod:`driftloop.pipeline.drift`) both read it here, so they always see the same rows. Two inputs
(docs/feedback.md):

- **Data Capture plus purchases** (the default): the endpoint's captured requests
  (:mod:`driftloop.capture`) joined with the shop's purchases (:mod:`driftloop.attribution`), which come
  from the uploads under the incoming prefix (the versions a run fixed, where it did) and from purchase
  events under ``purchases/date=…/`` (the uploads' columns, for shops that send purchases more often
  than they upload data: they start no run and are not training data).
- **A feedback log** ``feedback/<endpoint>/date=…/*.parquet`` for teams that already log conversions.
  When it has rows in the window it wins: the team's own attribution is taken as it is, and Data
  Capture is not read.

The evidence says which input was used and counts everything that could not be read, per reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from driftloop.adapters.s3 import exists, get_json, list_objects
from driftloop.attribution import (
    INFERENCE_ID_COLUMN,
    PURCHASES_SCHEMA,
    UNREADABLE_PURCHASES,
    attribute,
    read_purchase_file,
)
from driftloop.capture import CaptureReader, ServedRecommendation
from driftloop.drift.metrics import publish_conversion
from driftloop.errors import InvalidInputError
from driftloop.fetching import fetch_in_order
from driftloop.layout import (
    PURCHASE_EVENTS,
    capture_hour,
    day_partition_prefix,
    endpoint_capture_prefix,
    feedback_prefix,
    inputs_key,
    partition_day,
    s3_uri,
)
from driftloop.pipeline.capture_digest import (
    CaptureDigest,
    DigestedFile,
    DigestKeys,
    load_digest,
    save_digest,
    variant_names,
)
from driftloop.pipeline.services import Services
from driftloop.storage import ParquetSource, is_parquet_name, s3_source

FEEDBACK_SCHEMA = pa.schema([("variant", pa.string()), ("served_at", pa.timestamp("us", tz="UTC")),
                             ("converted", pa.bool_()), ("latency_ms", pa.float64()), ("error", pa.bool_())])
_UNREADABLE_LISTED = 20


@dataclass(frozen=True)
class Feedback:
    """Feedback rows (at least the columns of ``FEEDBACK_SCHEMA``) and where they came from."""

    table: pa.Table
    evidence: dict[str, Any]

    @property
    def lacks_purchases(self) -> bool:
        """Requests were captured but not one purchase was found to join them with: more likely missing
        purchase data than customers who all stopped buying."""
        return (self.evidence.get("source") == "data_capture" and self.table.num_rows > 0
                and self.evidence["purchases"]["purchases"] == 0)


def _dated_keys(services: Services, prefix: str, since: datetime, until: datetime | None) -> list[str]:
    """Parquet objects of ``prefix``'s ``date=`` partitions that can hold rows of [``since``, ``until``)."""
    first_day = since.date().isoformat()
    last_day = None if until is None else (until - timedelta(microseconds=1)).date().isoformat()
    keys = []
    pages = services.s3.get_paginator("list_objects_v2").paginate(
        Bucket=services.settings.data_bucket, Prefix=prefix, StartAfter=day_partition_prefix(prefix, first_day))
    for page in pages:
        for entry in page.get("Contents", []):
            day = partition_day(prefix, entry["Key"])
            if day is None or not is_parquet_name(entry["Key"]):
                continue
            if last_day is not None and day > last_day:
                return keys
            if day >= first_day:
                keys.append(entry["Key"])
    return keys


def feedback_keys(services: Services, since: datetime, until: datetime | None = None) -> list[str]:
    """Feedback-log objects in the ``date=`` partitions that can hold rows served in [``since``, ``until``)."""
    return _dated_keys(services, feedback_prefix(services.settings.endpoint_name), since, until)


def feedback_source(services: Services, since: datetime, until: datetime | None = None) -> ParquetSource:
    """The feedback-log files that can hold rows served in [``since``, ``until``), to stream."""
    return s3_source(services.s3, services.settings.data_bucket, feedback_keys(services, since, until))


def _in_window(table: pa.Table, column: str, since: datetime, until: datetime | None) -> pa.Table:
    moments = table[column].cast(pa.timestamp("us", tz="UTC"))
    keep = pc.greater_equal(moments, pa.scalar(since, moments.type))
    if until is not None:
        keep = pc.and_(keep, pc.less(moments, pa.scalar(until, moments.type)))
    return table.filter(keep)


def read_feedback_log(services: Services, since: datetime, until: datetime | None = None) -> tuple[pa.Table, int]:
    """The feedback log's rows served in [``since``, ``until``) (empty with its schema) and its file count."""
    source = feedback_source(services, since, until)
    tables = []
    for path in source.paths:
        with source.filesystem.open_input_file(path) as handle:
            tables.append(pq.read_table(handle))
    if not tables:
        return FEEDBACK_SCHEMA.empty_table(), 0
    table = pa.concat_tables(tables, promote_options="permissive")
    if "served_at" not in table.column_names:
        raise InvalidInputError("feedback log lacks column 'served_at'")
    return _in_window(table, "served_at", since, until), len(source.paths)


@dataclass(frozen=True)
class CaptureRead:
    """What :func:`read_captured` found: the rows served in the window, every file parsed (the digest a
    later read can start from), and how many files came from the given digest and how many were fetched."""

    rows: list[ServedRecommendation]
    digest: CaptureDigest
    reused_files: int
    read_files: int


def read_captured(services: Services, reader: CaptureReader, since: datetime, until: datetime | None = None,
                  digest: CaptureDigest | None = None) -> CaptureRead:
    """Requests captured in [``since``, ``until``), from the hour folders that can hold them (one hour
    earlier too: a file lands in the folder of the hour it was written, which can follow its first record).
    The files are fetched a few at a time (:func:`driftloop.fetching.fetch_in_order`) and counted in the
    listing's order; a listed file that ``digest`` holds with the same ETag is counted from it, not fetched
    (:mod:`driftloop.pipeline.capture_digest`)."""
    settings = services.settings
    bucket = settings.data_bucket
    first_hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    listed = [(key, etag, where[0]) for key, etag in _capture_objects(services, first_hour, until)
              if (where := capture_hour(key, settings.endpoint_name)) is not None]
    known = digest or CaptureDigest(None, {})

    def fetch(key: str) -> bytes | ClientError:
        try:
            return services.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:  # e.g. deleted between the listing and the read
            return error

    unread = [key for key, etag, _ in listed if known.reusable(key, etag) is None]
    rows: list[ServedRecommendation] = []
    consumed: dict[str, DigestedFile] = {}
    with closing(fetch_in_order(fetch, unread)) as fetched:
        for key, etag, variant in listed:
            kept = known.reusable(key, etag)
            if kept is None:
                _, body = next(fetched)
                if isinstance(body, ClientError):
                    reader.skip_file(s3_uri(bucket, key), f"{body.response['Error'].get('Code')}: {body}")
                    continue
                kept = DigestedFile(etag, reader.parse(body, variant, s3_uri(bucket, key)))
            consumed[key] = kept
            rows.extend(row for row in reader.add(kept.parsed)
                        if row.served_at >= since and (until is None or row.served_at < until))
    return CaptureRead(rows, CaptureDigest(variant_names(reader.known_variants), consumed),
                       len(listed) - len(unread), len(unread))


def _capture_objects(services: Services, first_hour: datetime, until: datetime | None) -> list[tuple[str, str]]:
    """(key, ETag) of the capture objects of every variant folder from ``first_hour``'s folder on (one
    listing per variant, starting at that hour), before ``until``'s hour ends."""
    settings = services.settings
    base = endpoint_capture_prefix(settings.endpoint_name)
    paginator = services.s3.get_paginator("list_objects_v2")
    folders = [entry["Prefix"] for page in paginator.paginate(Bucket=settings.data_bucket, Prefix=base, Delimiter="/")
               for entry in page.get("CommonPrefixes", [])]
    objects = []
    for folder in folders:
        start = f"{folder}{first_hour:%Y/%m/%d/%H}"
        for page in paginator.paginate(Bucket=settings.data_bucket, Prefix=folder, StartAfter=start):
            page_objects = [(entry["Key"], entry["ETag"]) for entry in page.get("Contents", [])]
            hours = [capture_hour(key, settings.endpoint_name) for key, _ in page_objects]
            late = [index for index, located in enumerate(hours)
                    if located is not None and until is not None and located[1] >= until]
            objects.extend(page_objects[:late[0]] if late else page_objects)
            if late:
                break
    return objects


def _pinned_versions(services: Services, run_id: str | None) -> dict[str, str | None]:
    """Upload key -> the version the run fixed (``runs/<run_id>/inputs.json``), when it fixed any."""
    bucket = services.settings.data_bucket
    if not run_id or not exists(services.s3, bucket, inputs_key(run_id)):
        return {}
    return {entry["key"]: entry.get("version_id") for entry in get_json(services.s3, bucket, inputs_key(run_id))
            .get("readable", [])}


def read_purchases(services: Services, since: datetime, until: datetime | None = None,
                   run_id: str | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Purchases made in [``since``, ``until``) from the uploads written since ``since`` (a purchase cannot
    be in an older object; the versions the run fixed where it did) and from the purchase events."""
    settings = services.settings
    bucket = settings.data_bucket
    pinned = _pinned_versions(services, run_id)
    keys = [obj.key for obj in list_objects(services.s3, bucket, settings.incoming_prefix)
            if is_parquet_name(obj.key) and datetime.fromisoformat(obj.last_modified) >= since]
    events = _dated_keys(services, PURCHASE_EVENTS, since, None)
    source = s3_source(services.s3, bucket, keys + events, {key: pinned[key] for key in keys if pinned.get(key)})
    tables, unreadable = [], []
    for index, path in enumerate(source.paths):
        try:
            with source.filesystem.open_input_file(path) as handle:
                tables.append(_in_window(read_purchase_file(pq.ParquetFile(handle)), "event_time", since, until))
        except UNREADABLE_PURCHASES as error:
            unreadable.append({"object": source.label(index), "reason": f"{type(error).__name__}: {error}"[:300]})
    purchases = pa.concat_tables(tables) if tables else PURCHASES_SCHEMA.empty_table()
    evidence = {"uploads_read": len(keys), "purchase_event_files_read": len(events), "purchases": purchases.num_rows,
                "tagged_with_inference_id": purchases.num_rows - purchases[INFERENCE_ID_COLUMN].null_count,
                "unreadable": len(unreadable), "unreadable_objects": unreadable[:_UNREADABLE_LISTED]}
    return purchases, evidence


def read_feedback(services: Services, since: datetime, until: datetime | None = None,
                  run_id: str | None = None, digest: DigestKeys | None = None) -> Feedback:
    """The feedback of requests served in [``since``, ``until``): the feedback log when it has rows there,
    else Data Capture joined with the purchases made up to one attribution window after ``until``.

    With ``digest``, the capture files parsed by the read that wrote ``digest.previous`` are counted from
    that digest instead of fetched again, this read's are written to ``digest.current``, and
    ``capture.digest`` in the evidence says how many files were reused and read (and why the previous
    digest was not used, when it was not). The feedback and the rest of its evidence are the same."""
    settings = services.settings
    log, log_files = read_feedback_log(services, since, until)
    if log.num_rows:
        return Feedback(log, {"source": "feedback_log", "feedback_log_files": log_files})
    bucket = settings.data_bucket
    reader = CaptureReader(known_variants={settings.champion_variant, settings.challenger_variant})
    previous, rebuilt = (load_digest(services.s3, bucket, digest.previous, reader.known_variants)
                         if digest is not None and digest.previous is not None else (None, ""))
    captured = read_captured(services, reader, since, until, previous)
    window = timedelta(minutes=settings.attribution_window_minutes)
    purchases, purchase_evidence = read_purchases(
        services, since, None if until is None else until + window + timedelta(microseconds=1), run_id)
    table = attribute(captured.rows, purchases, window)
    by_variant = Counter(row.variant for row in captured.rows)
    capture = reader.evidence() | {"served_by_variant": dict(sorted(by_variant.items()))}
    if digest is not None:
        capture["digest"] = {
            "previous": None if digest.previous is None else s3_uri(bucket, digest.previous),
            "reused_files": captured.reused_files, "read_files": captured.read_files,
            "saved": save_digest(services.s3, bucket, digest.current, captured.digest),
        } | ({"rebuilt": rebuilt} if rebuilt else {})
    return Feedback(table, {"source": "data_capture" if reader.files else "none", "feedback_log_files": log_files,
                            "attribution_window_minutes": settings.attribution_window_minutes,
                            "converted": int(pc.sum(table["converted"]).as_py() or 0),
                            "capture": capture, "purchases": purchase_evidence})


def publish_variant_conversion(services: Services, counts: Iterable[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """Publish each variant's conversion (``conversions`` / ``matured``: requests whose attribution window
    has closed) as the ``conversion_rate`` and ``served`` metrics of :mod:`driftloop.drift.metrics`."""
    settings = services.settings
    rates = {entry["variant"]: (int(entry["matured"]), int(entry["conversions"])) for entry in counts if entry}
    return publish_conversion(settings.model_name, settings.endpoint_name, rates)
