"""From run records, drift reports and feedback counts to the report's series and tables (plain data)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.drift.policy import DriftPolicy
from driftloop.errors import InvalidInputError

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class TimeBucket:
    label: str
    seconds: int


BUCKETS = (
    TimeBucket("5 seconds", 5), TimeBucket("10 seconds", 10), TimeBucket("30 seconds", 30),
    TimeBucket("minute", 60), TimeBucket("5 minutes", 300), TimeBucket("15 minutes", 900),
    TimeBucket("hour", 3600), TimeBucket("6 hours", 21600), TimeBucket("day", 86400),
    TimeBucket("week", 7 * 86400),
)
MONTH = TimeBucket("month", 31 * 86400)  # calendar months; ``seconds``, the longest, is what a chart spans
MONTHS_FROM = timedelta(days=180)


def choose_bucket(span: timedelta, max_buckets: int = 120, finest_seconds: int = 1) -> TimeBucket:
    """The finest bucket (no finer than the counts) that cuts ``span`` into at most ``max_buckets``;
    half a year or more is counted per calendar month."""
    if max_buckets < 1:
        raise InvalidInputError("max_buckets must be at least 1")
    if span >= MONTHS_FROM:
        return MONTH
    usable = [bucket for bucket in BUCKETS if bucket.seconds >= finest_seconds] or [BUCKETS[-1]]
    for bucket in usable:
        if span.total_seconds() / bucket.seconds <= max_buckets:
            return bucket
    return usable[-1]


def count_unit(dates: list[date]) -> str:
    """How finely to count feedback, from the days its partitions cover: at most ~86,400 counts per variant."""
    if not dates:
        return "minute"
    days = (max(dates) - min(dates)).days + 1
    return "second" if days <= 1 else "minute" if days <= 60 else "hour"


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _get(document: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(document, dict):
            return None
        document = document.get(name)
    return document


# -- conversion per variant over time ---------------------------------------------------------
@dataclass(frozen=True)
class VariantSeries:
    """One variant's requests and conversions per bucket (buckets without requests are left out)."""

    name: str
    starts: list[datetime]
    served: list[int]
    conversions: list[int]

    @property
    def rates(self) -> list[float]:
        return [c / s for c, s in zip(self.conversions, self.served, strict=True)]

    def wilson_intervals(self) -> list[tuple[float, float]]:
        """95% Wilson score interval of each bucket's conversion rate."""
        intervals = []
        for conversions, served in zip(self.conversions, self.served, strict=True):
            rate, z2 = conversions / served, Z_95 * Z_95
            centre = (rate + z2 / (2 * served)) / (1 + z2 / served)
            half = Z_95 * math.sqrt(rate * (1 - rate) / served + z2 / (4 * served * served)) / (1 + z2 / served)
            intervals.append((max(0.0, centre - half), min(1.0, centre + half)))
        return intervals

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "starts": [start.isoformat() for start in self.starts], "served": self.served,
                "conversions": self.conversions, "rates": self.rates}


@dataclass(frozen=True)
class ConversionSeries:
    bucket: TimeBucket
    variants: list[VariantSeries]

    @property
    def total_served(self) -> int:
        return sum(sum(variant.served) for variant in self.variants)

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": asdict(self.bucket), "variants": [variant.to_dict() for variant in self.variants]}


def conversion_series(counts: pa.Table, unit_seconds: int = 1, bucket: TimeBucket | None = None) -> ConversionSeries:
    """Counts (time, endpoint, variant, served, conversions) summed per bucket and variant.

    Variants are named ``endpoint/variant`` only when the counts cover more than one endpoint.
    """
    if counts.num_rows == 0:
        return ConversionSeries(bucket or BUCKETS[3], [])
    times = counts.column("time")
    low, high = pc.min(times).as_py(), pc.max(times).as_py()
    bucket = bucket or choose_bucket(high - low, finest_seconds=unit_seconds)
    several_endpoints = pc.count_distinct(counts.column("endpoint")).as_py() > 1
    names = pc.binary_join_element_wise(counts.column("endpoint"), counts.column("variant"), "/") \
        if several_endpoints else counts.column("variant")
    table = pa.table({
        "start": pc.floor_temporal(times, unit="month") if bucket == MONTH
        else pc.floor_temporal(times, multiple=bucket.seconds, unit="second"),
        "name": names,
        "served": counts.column("served"),
        "conversions": counts.column("conversions"),
    }).group_by(["name", "start"]).aggregate([("served", "sum"), ("conversions", "sum")])
    table = table.sort_by([("name", "ascending"), ("start", "ascending")])
    variants = []
    for name in sorted(set(table.column("name").to_pylist())):
        rows = table.filter(pc.equal(table.column("name"), name))
        served = rows.column("served_sum").to_pylist()
        keep = [index for index, value in enumerate(served) if value > 0]
        starts, conversions = rows.column("start").to_pylist(), rows.column("conversions_sum").to_pylist()
        variants.append(VariantSeries(name, [starts[i] for i in keep], [served[i] for i in keep],
                                      [conversions[i] for i in keep]))
    return ConversionSeries(bucket, variants)


@dataclass(frozen=True)
class RunMarker:
    """A change of the serving model: a promotion, or a rollback to the champion."""

    run_id: str
    kind: str  # "promoted" | "rolled_back"
    at: datetime


@dataclass(frozen=True)
class ABWindow:
    run_id: str
    start: datetime
    end: datetime


def run_markers(records: list[dict[str, Any]]) -> list[RunMarker]:
    markers = []
    for record in records:
        evidence = record.get("evidence", {})
        if record.get("outcome") == "promoted":
            at = parse_time(_get(evidence, "promotion", "champion", "promoted_at") or record.get("finished_at"))
            kind = "promoted"
        elif record.get("outcome") == "rolled_back" or _get(evidence, "rollback", "restored"):
            at, kind = parse_time(record.get("finished_at")), "rolled_back"
        else:
            continue
        if at is not None:
            markers.append(RunMarker(record["run_id"], kind, at))
    return sorted(markers, key=lambda marker: marker.at)


def ab_windows(records: list[dict[str, Any]]) -> list[ABWindow]:
    windows = []
    for record in records:
        start = parse_time(_get(record, "evidence", "traffic", "ab_started_at"))
        end = parse_time(record.get("finished_at"))
        if start is not None and end is not None:
            windows.append(ABWindow(record["run_id"], start, end))
    return windows


# -- drift per feature per run ----------------------------------------------------------------
@dataclass(frozen=True)
class DriftScores:
    """Per feature, one value per compared run (None where a run did not score that feature).

    Thresholds come from each run's drift report (its policy, with per-feature overrides); None where
    the report is not available.
    """

    run_ids: list[str]
    times: list[datetime]
    features: list[str]
    psi: dict[str, list[float | None]] = field(default_factory=dict)
    js: dict[str, list[float | None]] = field(default_factory=dict)
    drifted: dict[str, list[bool]] = field(default_factory=dict)
    psi_threshold: dict[str, list[float | None]] = field(default_factory=dict)
    js_threshold: dict[str, list[float | None]] = field(default_factory=dict)

    def policy_thresholds(self, metric: str) -> list[float | None]:
        """The threshold most features had in each run (the policy's global one unless overridden)."""
        table = self.psi_threshold if metric == "psi" else self.js_threshold
        values = []
        for index in range(len(self.run_ids)):
            column = [table[name][index] for name in self.features if table[name][index] is not None]
            values.append(max(set(column), key=column.count) if column else None)
        return values

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "times": [time.isoformat() for time in self.times]}


def drift_scores(records: list[dict[str, Any]], drift_reports: dict[str, dict[str, Any]]) -> DriftScores:
    compared = [record for record in records if _get(record, "evidence", "drift", "features")]
    features = sorted({name for record in compared for name in record["evidence"]["drift"]["features"]})
    scores = DriftScores([r["run_id"] for r in compared], [parse_time(r["started_at"]) for r in compared], features)
    for name in features:
        for table in (scores.psi, scores.js, scores.drifted, scores.psi_threshold, scores.js_threshold):
            table[name] = []
    for record in compared:
        measured = record["evidence"]["drift"]["features"]
        policy_document = _get(drift_reports.get(record["run_id"]), "policy")
        policy = DriftPolicy.from_dict(policy_document) if policy_document else None
        for name in features:
            feature = measured.get(name) or {}
            scores.psi[name].append(feature.get("psi"))
            scores.js[name].append(feature.get("js_distance"))
            scores.drifted[name].append(bool(feature.get("drifted")))
            thresholds = policy.thresholds(name) if policy else None
            scores.psi_threshold[name].append(thresholds.psi_threshold if thresholds else None)
            scores.js_threshold[name].append(thresholds.js_threshold if thresholds else None)
    return scores


# -- runs table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    trigger: str
    outcome: str
    drift_decision: str | None
    drifted_features: list[str]
    gate_passed: bool | None
    gate_metric: str | None
    gate_baseline: str | None
    gate_champion: float | None
    gate_challenger: float | None
    gate_ci: tuple[float, float] | None
    ab_action: str | None
    ab_champion_rate: float | None
    ab_challenger_rate: float | None
    ab_z: float | None
    ab_critical_z: float | None
    cost_usd: float | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("started_at", "finished_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def describe_trigger(trigger: dict[str, Any]) -> str:
    kind = trigger.get("type", "unknown")
    detail = trigger.get("key") or _get(trigger, "detail", "alarm_name") or _get(trigger, "detail", "reason")
    return f"{kind}: {detail}" if detail else str(kind)


def summarise_run(record: dict[str, Any]) -> RunSummary:
    evidence = record.get("evidence", {})
    drift, evaluation, ab = evidence.get("drift") or {}, evidence.get("evaluation") or {}, evidence.get("ab") or {}
    metric = evaluation.get("primary_metric")
    difference = _get(evaluation, "differences", metric) if metric else None
    test = _get(ab, "evidence", "test") or {}
    error = record.get("error")
    return RunSummary(
        run_id=record["run_id"],
        started_at=parse_time(record.get("started_at")),
        finished_at=parse_time(record.get("finished_at")),
        trigger=describe_trigger(record.get("trigger") or {}),
        outcome=str(record.get("outcome")),
        drift_decision=drift.get("decision"),
        drifted_features=list(drift.get("drifted_features") or []),
        gate_passed=evaluation.get("passed"),
        gate_metric=metric,
        gate_baseline=evaluation.get("baseline"),
        gate_champion=_get(evaluation, "metrics", "champion", metric) if metric else None,
        gate_challenger=_get(evaluation, "metrics", "challenger", metric) if metric else None,
        gate_ci=(difference["ci_low"], difference["ci_high"]) if difference else None,
        ab_action=ab.get("action"),
        ab_champion_rate=test.get("champion_rate", test.get("control_rate")),
        ab_challenger_rate=test.get("challenger_rate", test.get("treatment_rate")),
        ab_z=test.get("z"),
        ab_critical_z=test.get("critical_z"),
        cost_usd=_get(evidence, "training", "cost", "cost_usd"),
        error=f"{error.get('error')}: {error.get('cause')}" if error else None,
    )


# -- training costs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CostRow:
    run_id: str
    job_name: str
    instance_type: str
    spot: bool
    training_seconds: float
    billable_seconds: float
    cost_usd: float
    on_demand_cost_usd: float
    spot_saving_usd: float


@dataclass(frozen=True)
class CostSummary:
    rows: list[CostRow]

    @property
    def total_usd(self) -> float:
        return sum(row.cost_usd for row in self.rows)

    @property
    def total_on_demand_usd(self) -> float:
        return sum(row.on_demand_cost_usd for row in self.rows)

    @property
    def total_saving_usd(self) -> float:
        return sum(row.spot_saving_usd for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(row) for row in self.rows], "total_usd": self.total_usd,
                "total_on_demand_usd": self.total_on_demand_usd, "total_saving_usd": self.total_saving_usd}


def training_costs(records: list[dict[str, Any]]) -> CostSummary:
    rows = []
    for record in records:
        training = _get(record, "evidence", "training") or {}
        cost = training.get("cost")
        if not cost:
            continue
        rows.append(CostRow(
            run_id=record["run_id"], job_name=str(training.get("job_name", "")),
            instance_type=str(cost.get("instance_type", "")), spot=bool(cost.get("spot")),
            training_seconds=float(cost.get("training_seconds") or 0),
            billable_seconds=float(cost.get("billable_seconds") or 0),
            cost_usd=float(cost.get("cost_usd") or 0),
            on_demand_cost_usd=float(cost.get("on_demand_cost_usd") or cost.get("cost_usd") or 0),
            spot_saving_usd=float(cost.get("spot_saving_usd") or 0),
        ))
    return CostSummary(rows)


# -- lineage -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetVersion:
    run_id: str
    version: str
    previous: str | None
    rows_in: int
    rows_out: int
    duplicates_dropped: int
    quarantined: int
    content_hash: str
    holdout_from: str | None


@dataclass(frozen=True)
class ModelVersion:
    """A trained challenger and what became of it. ``status``: ``champion`` (serving now), ``retired``
    (champion once, since replaced), or the run's outcome (``challenger_rejected``, ``rolled_back``...)."""

    run_id: str
    dataset_version: str | None
    job_name: str
    model_artifact: str | None
    model_package_arn: str | None
    sagemaker_model: str | None
    status: str
    promoted_at: datetime | None
    previous_champion: str | None


@dataclass(frozen=True)
class Lineage:
    datasets: list[DatasetVersion]
    models: list[ModelVersion]

    @property
    def champions(self) -> list[ModelVersion]:
        """Every model that became champion, in order of promotion."""
        promoted = [model for model in self.models if model.promoted_at is not None]
        return sorted(promoted, key=lambda model: model.promoted_at or datetime.min.replace(tzinfo=UTC))

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": [asdict(d) for d in self.datasets],
                "models": [{**asdict(m), "promoted_at": m.promoted_at.isoformat() if m.promoted_at else None}
                           for m in self.models]}


def lineage(records: list[dict[str, Any]]) -> Lineage:
    datasets, models = [], []
    for record in records:
        evidence = record.get("evidence", {})
        merge = evidence.get("merge")
        if merge and merge.get("dataset_dir"):
            datasets.append(DatasetVersion(
                run_id=record["run_id"], version=merge["dataset_dir"], previous=merge.get("previous_version"),
                rows_in=int(merge.get("rows_in") or 0), rows_out=int(merge.get("rows_out") or 0),
                duplicates_dropped=int(merge.get("duplicates_dropped") or 0),
                quarantined=len(merge.get("quarantined") or []), content_hash=str(merge.get("content_hash", "")),
                holdout_from=merge.get("holdout_from")))
        training = evidence.get("training")
        if training and training.get("job_name"):
            champion = _get(evidence, "promotion", "champion") or {}
            models.append(ModelVersion(
                run_id=record["run_id"], dataset_version=(merge or {}).get("dataset_dir"),
                job_name=training["job_name"], model_artifact=training.get("model_artifact"),
                model_package_arn=_get(evidence, "evaluation", "model_package_arn"),
                sagemaker_model=champion.get("sagemaker_model") or _get(evidence, "traffic", "challenger_model"),
                status=str(record.get("outcome")),
                promoted_at=parse_time(champion.get("promoted_at")) if record.get("outcome") == "promoted" else None,
                previous_champion=champion.get("previous_champion")))
    promoted = sorted((m for m in models if m.promoted_at), key=lambda m: m.promoted_at)  # type: ignore[arg-type,return-value]
    current = promoted[-1].run_id if promoted else None
    models = [ModelVersion(**{**asdict(m), "promoted_at": m.promoted_at,
                              "status": ("champion" if m.run_id == current else "retired")})
              if m.promoted_at else m for m in models]
    return Lineage(datasets, models)


def as_array(values: list[float | None]) -> np.ndarray:
    """Values for plotting, missing ones as NaN (drawn as gaps)."""
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def run_anchor(run_id: str) -> str:
    """An HTML id for a run's details section."""
    return "run-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in run_id)


def run_labels(records: list[dict[str, Any]]) -> dict[str, str]:
    """Short names for runs in charts and tables: ``#1`` for the oldest."""
    return {record["run_id"]: f"#{number}" for number, record in enumerate(records, start=1)}
