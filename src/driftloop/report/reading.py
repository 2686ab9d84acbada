"""Everything the report shows, read once from a bucket's objects (in a local workspace or in S3).

It reads ``runs/<run_id>/record.json`` (run records), ``reports/<run_id>/...`` (drift reports and A/B
stage decisions) and the feedback, as the pipeline does (docs/feedback.md): the feedback log
``feedback/<endpoint>/date=YYYY-MM-DD/*.parquet`` when there is one, else SageMaker Data Capture
(``datacapture/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``) joined with the purchases of the uploads
(``incoming/``) and of the purchase events (``purchases/``) by :func:`driftloop.attribution.attribute`.

Feedback is reduced file by file to counts per time unit, variant and endpoint, so the report's
memory does not grow with the number of requests served (the purchases, needed for the join, are held
in memory). The unit (second, minute or hour) follows the days the feedback spans, which bounds the
counts to about 86,400 per variant.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from driftloop.attribution import PURCHASES_SCHEMA, UNREADABLE_PURCHASES, PurchaseIndex, read_purchase_file
from driftloop.capture import CaptureReader, ServedRecommendation
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.fetching import fetch_in_order
from driftloop.layout import (
    CAPTURE,
    DEFAULT_INCOMING_PREFIX,
    FEEDBACK,
    PURCHASE_EVENTS,
    RUNS,
    WorkspaceLayout,
    ab_look,
    capture_hour,
    feedback_day,
    feedback_endpoint,
    is_record_key,
    report_prefix,
    s3_uri,
)
from driftloop.pipeline.contracts import RunRecord, problems
from driftloop.report.decisions import DecisionRow, decision_rows
from driftloop.report.extract import (
    ABWindow,
    ConversionSeries,
    CostSummary,
    DriftScores,
    Lineage,
    RunMarker,
    RunSummary,
    ab_windows,
    conversion_series,
    count_unit,
    drift_scores,
    lineage,
    run_labels,
    run_markers,
    summarise_run,
    training_costs,
)
from driftloop.storage import is_parquet_name


class ObjectStore(Protocol):
    """Read-only access to one bucket's objects by key."""

    @property
    def location(self) -> str:
        """How the bucket is named to readers of the report."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...

    def read(self, key: str) -> bytes: ...


def read_json(store: ObjectStore, key: str) -> Any:
    return json.loads(store.read(key))


class WorkspaceStore:
    """The data bucket of a local workspace (``driftloop --workspace DIR``), read from its S3 snapshot.

    The snapshot is written when a local command ends, so a command still running is not yet seen.
    Without ``bucket``, the bucket holding run records (else feedback) is the data bucket.
    """

    def __init__(self, workspace: Path, bucket: str | None = None) -> None:
        layout = WorkspaceLayout(workspace)
        if not layout.index_file.exists():
            raise NotFoundError(f"{workspace} is not a driftloop workspace with S3 objects "
                                f"(no {layout.index_file.relative_to(workspace)})")
        entries = json.loads(layout.index_file.read_text()).values()
        self.bucket = bucket or _data_bucket(entries, workspace)
        self.workspace = workspace
        self._objects = layout.objects
        self._blobs = {entry["key"]: entry["sha256"] for entry in entries if entry["bucket"] == self.bucket}

    @property
    def location(self) -> str:
        return f"{s3_uri(self.bucket)} in workspace {self.workspace}"

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self._blobs if key.startswith(prefix))

    def read(self, key: str) -> bytes:
        if key not in self._blobs:
            raise NotFoundError(f"{s3_uri(self.bucket, key)} is not in workspace {self.workspace}")
        return (self._objects / self._blobs[key]).read_bytes()


def _data_bucket(entries: Any, workspace: Path) -> str:
    buckets: dict[str, set[str]] = {}
    for entry in entries:
        buckets.setdefault(entry["bucket"], set()).add(entry["key"].split("/", 1)[0] + "/")
    for prefix in (RUNS, FEEDBACK, CAPTURE):
        holding = sorted(name for name, prefixes in buckets.items() if prefix in prefixes)
        if holding:
            return holding[0]
    raise NotFoundError(f"workspace {workspace} holds no run records or feedback yet")


class S3Store:
    """A data bucket in AWS, through a boto3 S3 client (passed in; this module does not import boto3)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    @property
    def location(self) -> str:
        return s3_uri(self.bucket)

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(entry["Key"] for entry in page.get("Contents", []))
        return sorted(found)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


COUNT_SCHEMA = pa.schema([
    ("time", pa.timestamp("us", tz="UTC")),
    ("endpoint", pa.string()),
    ("variant", pa.string()),
    ("served", pa.int64()),
    ("conversions", pa.int64()),
])
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
DEFAULT_ATTRIBUTION_WINDOW_MINUTES = 60.0  # template.yaml AttributionWindowMinutes default
_FOLD_EVERY = 64  # batches whose counts are summed at once, so the counts held stay bounded
_RECORDS_PER_COUNT = 50_000  # captured requests attributed and counted at once (one group-by per batch)


@dataclass(frozen=True)
class FeedbackOrigin:
    """Where the conversion counts came from, and what could not be used, for the chart's caption.

    ``source`` is ``feedback_log``, ``data_capture`` or ``none`` (the pipeline's ``feedback.source``);
    ``window_from_runs`` says whether the attribution window was the one the runs used or the default.
    """

    source: str = "none"
    files: int = 0
    attribution_window_minutes: float | None = None
    window_from_runs: bool = False
    capture: dict[str, Any] = field(default_factory=dict)
    purchases: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One or two sentences for the reader of the report."""
        if self.source == "feedback_log":
            return f"Counted from the feedback log under {FEEDBACK} ({self.files:,} files)."
        if self.source != "data_capture":
            return f"Neither a feedback log under {FEEDBACK} nor Data Capture under {CAPTURE} was found."
        window = self.attribution_window_minutes
        where = ("the window the runs used" if self.window_from_runs
                 else "the template's default: no run recorded the window it used")
        skipped = self.capture.get("skipped", {})
        skipped_text = (", ".join(f"{count:,} {reason}" for reason, count in skipped.items()) if skipped
                        else "none")
        unreadable = self.purchases.get("unreadable", 0)
        return (f"Counted from SageMaker Data Capture under {CAPTURE} ({self.files:,} files, "
                f"{self.capture.get('records', 0):,} requests) joined with {self.purchases.get('purchases', 0):,} "
                f"purchases ({self.purchases.get('objects_read', 0):,} objects under {DEFAULT_INCOMING_PREFIX} and "
                f"{PURCHASE_EVENTS}" + (f"; {unreadable:,} unreadable" if unreadable else "") + ") "
                f"within an attribution window of {window:g} minutes ({where}). "
                f"Captured lines skipped: {skipped_text}.")


@dataclass(frozen=True)
class ReportInput:
    """Run records oldest first; per run its drift report and A/B stage decisions; feedback counts."""

    location: str
    records: list[dict[str, Any]]
    drift_reports: dict[str, dict[str, Any]]
    ab_stages: dict[str, list[dict[str, Any]]]
    feedback: pa.Table
    feedback_unit: str = "minute"
    feedback_origin: FeedbackOrigin = field(default_factory=FeedbackOrigin)


def time_counts(feedback: pa.Table, endpoint: str, unit: str) -> pa.Table:
    """Requests served and converted per ``unit`` of time and variant (null ``converted`` counts as no)."""
    if unit not in UNIT_SECONDS:
        raise InvalidInputError(f"unit must be one of {sorted(UNIT_SECONDS)}, got {unit!r}")
    for column in ("variant", "served_at", "converted"):
        if column not in feedback.column_names:
            raise InvalidInputError(f"feedback of endpoint {endpoint!r} lacks column {column!r}")
    served_at = feedback.column("served_at")
    if not pa.types.is_timestamp(served_at.type) or served_at.type.tz is None:
        raise InvalidInputError(f"feedback served_at must be a timezone-aware timestamp, got {served_at.type}")
    table = pa.table({
        "time": pc.floor_temporal(served_at.cast(pa.timestamp("us", tz="UTC")), unit=unit),
        "variant": feedback.column("variant").cast(pa.string()),
        "converted": pc.fill_null(feedback.column("converted").cast(pa.bool_()), False).cast(pa.int64()),
    }).filter(pc.is_valid(pc.field("variant")) & pc.is_valid(pc.field("time")))
    grouped = table.group_by(["time", "variant"]).aggregate([("converted", "count"), ("converted", "sum")])
    return pa.table({
        "time": grouped.column("time"),
        "endpoint": pa.array([endpoint] * grouped.num_rows, pa.string()),
        "variant": grouped.column("variant"),
        "served": grouped.column("converted_count").cast(pa.int64()),
        "conversions": grouped.column("converted_sum").cast(pa.int64()),
    }, schema=COUNT_SCHEMA)


def combine_counts(tables: list[pa.Table]) -> pa.Table:
    """Counts of several files summed per time, endpoint and variant, in time order."""
    if not tables:
        return COUNT_SCHEMA.empty_table()
    grouped = pa.concat_tables(tables).group_by(["time", "endpoint", "variant"]).aggregate(
        [("served", "sum"), ("conversions", "sum")])
    table = pa.table({name: grouped.column(f"{name}_sum" if name in ("served", "conversions") else name)
                      for name in COUNT_SCHEMA.names}, schema=COUNT_SCHEMA)
    return table.sort_by([("time", "ascending"), ("endpoint", "ascending"), ("variant", "ascending")])


def load_feedback(store: ObjectStore, records: list[dict[str, Any]] | None = None
                  ) -> tuple[pa.Table, str, FeedbackOrigin]:
    """Counts per time unit, endpoint and variant, their unit and their origin: the feedback log when
    there is one, else Data Capture joined with purchases (with the attribution window of ``records``)."""
    keys = [key for key in store.keys(FEEDBACK) if is_parquet_name(key)]
    if not keys:
        return load_captured_feedback(store, records or [])
    unit = count_unit(sorted({date.fromisoformat(day) for day in map(feedback_day, keys) if day}))
    counts = []
    for key in keys:
        endpoint = feedback_endpoint(key)
        table = pq.read_table(io.BytesIO(store.read(key)), columns=["variant", "served_at", "converted"])
        counts.append(time_counts(table, endpoint, unit))
    return combine_counts(counts), unit, FeedbackOrigin("feedback_log", len(keys))


def recorded_attribution_window(records: list[dict[str, Any]]) -> float | None:
    """The attribution window (minutes) of the latest run whose feedback evidence records one."""
    for record in reversed(records):
        for feedback in _feedback_evidence(record.get("evidence")):
            window = feedback.get("attribution_window_minutes")
            if isinstance(window, int | float) and not isinstance(window, bool) and window >= 0:
                return float(window)
    return None


def _feedback_evidence(document: Any) -> Iterator[dict[str, Any]]:
    """Every ``feedback`` object in a record's evidence (the A/B stage's and the concept check's)."""
    if isinstance(document, dict):
        for name, value in document.items():
            if name == "feedback" and isinstance(value, dict):
                yield value
            yield from _feedback_evidence(value)
    elif isinstance(document, list):
        for value in document:
            yield from _feedback_evidence(value)


def load_purchases(store: ObjectStore) -> tuple[pa.Table, dict[str, Any]]:
    """Every purchase of the uploads and purchase events, and how many objects were read or unreadable."""
    keys = [key for prefix in (DEFAULT_INCOMING_PREFIX, PURCHASE_EVENTS) for key in store.keys(prefix)
            if is_parquet_name(key)]
    tables, unreadable = [], 0
    for key in keys:
        try:
            tables.append(read_purchase_file(pq.ParquetFile(io.BytesIO(store.read(key)))))
        except UNREADABLE_PURCHASES:
            unreadable += 1
    purchases = pa.concat_tables(tables) if tables else PURCHASES_SCHEMA.empty_table()
    return purchases, {"objects_read": len(keys), "unreadable": unreadable, "purchases": purchases.num_rows}


def load_captured_feedback(store: ObjectStore, records: list[dict[str, Any]]
                           ) -> tuple[pa.Table, str, FeedbackOrigin]:
    """Counts of the captured requests, attributed against the bucket's purchases in batches of files."""
    located = []
    for key in store.keys(CAPTURE):
        endpoint = key.removeprefix(CAPTURE).split("/", 1)[0]
        where = capture_hour(key, endpoint)
        if where is not None:
            located.append((key, endpoint, *where))
    if not located:
        return COUNT_SCHEMA.empty_table(), count_unit([]), FeedbackOrigin()
    recorded = recorded_attribution_window(records)
    minutes = DEFAULT_ATTRIBUTION_WINDOW_MINUTES if recorded is None else recorded
    unit = count_unit(sorted({hour.date() for *_, hour in located}))
    purchases, purchase_counts = load_purchases(store)
    index = PurchaseIndex(purchases)
    reader = CaptureReader()
    counts: list[pa.Table] = []
    for endpoint, served in _served_batches(store, reader, located):
        counts.append(time_counts(index.attribute(served, timedelta(minutes=minutes)), endpoint, unit))
        if len(counts) >= _FOLD_EVERY:
            counts = [combine_counts(counts)]
    origin = FeedbackOrigin("data_capture", len(located), minutes, recorded is not None, reader.evidence(),
                            purchase_counts)
    return combine_counts(counts), unit, origin


def _served_batches(store: ObjectStore, reader: CaptureReader, located: list[tuple[str, str, str, datetime]]
                    ) -> Iterator[tuple[str, list[ServedRecommendation]]]:
    """(endpoint, its served requests) of the capture files ``located`` (key, endpoint, variant, hour), read
    in order, up to ``_RECORDS_PER_COUNT`` requests at a time: counting a batch costs one group-by."""
    where = {key: (endpoint, variant) for key, endpoint, variant, _ in located}
    batch: list[ServedRecommendation] = []
    batch_endpoint = ""
    for key, content in fetch_in_order(store.read, list(where)):
        endpoint, variant = where[key]
        if batch and (endpoint != batch_endpoint or len(batch) >= _RECORDS_PER_COUNT):
            yield batch_endpoint, batch
            batch = []
        batch_endpoint = endpoint
        batch.extend(reader.read(content, variant, key))
    if batch:
        yield batch_endpoint, batch


def read_record(store: ObjectStore, key: str) -> dict[str, Any]:
    """A run record read through its contract (``RunRecord``), which older records with fewer fields meet."""
    try:
        document = read_json(store, key)
    except ValueError as error:
        raise InvalidInputError(f"{key} is not JSON: {error}") from error
    try:
        return RunRecord.model_validate(document).dump()
    except ValidationError as error:
        raise InvalidInputError(f"{key} is not a run record: {problems(error)}") from error


def load_records(store: ObjectStore) -> list[dict[str, Any]]:
    records = [read_record(store, key) for key in store.keys(RUNS) if is_record_key(key)]
    return sorted(records, key=lambda record: (str(record.get("started_at", "")), str(record.get("run_id", ""))))


def load_report_input(store: ObjectStore) -> ReportInput:
    records = load_records(store)
    drift_reports: dict[str, dict[str, Any]] = {}
    ab_stages: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        run_id = record["run_id"]
        available = store.keys(report_prefix(run_id))
        report_key = (record.get("evidence", {}).get("drift") or {}).get("report_key")
        if report_key in available:
            drift_reports[run_id] = read_json(store, report_key)
        stage_keys = sorted((key for key in available if ab_look(key)), key=ab_look)
        if stage_keys:
            ab_stages[run_id] = [read_json(store, key) for key in stage_keys]
    feedback, unit, origin = load_feedback(store, records)
    return ReportInput(store.location, records, drift_reports, ab_stages, feedback, unit, origin)


@dataclass(frozen=True)
class ReportContent:
    source: ReportInput
    generated_at: datetime
    labels: dict[str, str]
    runs: list[RunSummary]
    decisions: list[DecisionRow]
    conversion: ConversionSeries
    markers: list[RunMarker]
    windows: list[ABWindow]
    drift: DriftScores
    costs: CostSummary
    lineage: Lineage

    @property
    def model_names(self) -> list[str]:
        return sorted({str(record["model"]) for record in self.source.records if record.get("model")})

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.source.location,
            "generated_at": self.generated_at.isoformat(),
            "runs": [run.to_dict() for run in self.runs],
            "decisions": [row.to_dict() for row in self.decisions],
            "conversion": self.conversion.to_dict(),
            "conversion_source": asdict(self.source.feedback_origin),
            "drift": self.drift.to_dict(),
            "costs": self.costs.to_dict(),
            "lineage": self.lineage.to_dict(),
        }


def build_content(source: ReportInput, generated_at: datetime) -> ReportContent:
    records = source.records
    return ReportContent(
        source=source,
        generated_at=generated_at,
        labels=run_labels(records),
        runs=[summarise_run(record) for record in records],
        decisions=decision_rows(records),
        conversion=conversion_series(source.feedback, UNIT_SECONDS[source.feedback_unit]),
        markers=run_markers(records),
        windows=ab_windows(records),
        drift=drift_scores(records, source.drift_reports),
        costs=training_costs(records),
        lineage=lineage(records),
    )
