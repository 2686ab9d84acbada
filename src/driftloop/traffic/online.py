"""Online A/B analysis: from the feedback log to continue, promote or roll back.

The feedback log is cut into windows in which the traffic split did not change (one per bake, each
labelled with the stage that served it); windows where both variants have matured requests are the
strata of the judgement (``driftloop.traffic.judgement``). The guardrails (errors, latency) are judged
on all of the challenger's requests first.

Conversions are only counted for requests whose attribution window has closed ("matured"): a
request served a minute ago has not had its chance to convert yet, and counting it as a miss would
bias the newer variant (which gets more recent traffic as its share grows) downwards. Errors and
latency are known at once, so the guardrails use every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import InvalidInputError
from driftloop.traffic.judgement import ABJudge, ABTestConfig, ABVerdict, Action
from driftloop.traffic.stages import TrafficPlan
from driftloop.traffic.stratified import ArmCounts, Stratum

__all__ = ["FeedbackCounts", "FeedbackWindow", "StageDecision", "analyse_stage", "stratify_feedback",
           "summarise_feedback"]

FEEDBACK_COLUMNS = ("variant", "served_at", "converted", "latency_ms", "error")


@dataclass(frozen=True)
class FeedbackCounts:
    """One variant's feedback so far.

    ``served``: every logged request. ``matured``: requests served at least one attribution window
    before the analysis time; ``conversions`` counts conversions among those only.
    """

    variant: str
    served: int
    matured: int
    conversions: int
    errors: int
    latency_p95_ms: float | None  # None when no request has a latency

    def __post_init__(self) -> None:
        if not 0 <= self.conversions <= self.matured <= self.served or not 0 <= self.errors <= self.served:
            raise InvalidInputError(f"inconsistent feedback counts for variant {self.variant!r}: {self}")

    @classmethod
    def empty(cls, variant: str) -> FeedbackCounts:
        return cls(variant, served=0, matured=0, conversions=0, errors=0, latency_p95_ms=None)

    @property
    def conversion_rate(self) -> float | None:
        return self.conversions / self.matured if self.matured else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.served if self.served else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "conversion_rate": self.conversion_rate, "error_rate": self.error_rate}


def _as_table(feedback: Any) -> pa.Table:
    if isinstance(feedback, pa.Table):
        return feedback
    try:
        return pa.Table.from_pandas(feedback, preserve_index=False)
    except (TypeError, AttributeError, pa.ArrowException) as error:
        raise InvalidInputError(f"feedback must be a pyarrow Table or pandas DataFrame: {error}") from error


def summarise_feedback(
    feedback: Any, attribution_window: timedelta, now: datetime
) -> dict[str, FeedbackCounts]:
    """Per-variant counts from a feedback log (see docs/data-contracts.md), keyed by variant name.

    Null ``converted``/``error`` count as false; null latencies are left out of the percentile.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInputError(f"analysis time {now!r} must be timezone-aware")
    if attribution_window < timedelta(0):
        raise InvalidInputError(f"attribution window must not be negative, got {attribution_window}")
    table = _as_table(feedback)
    missing = [name for name in FEEDBACK_COLUMNS if name not in table.column_names]
    if missing:
        raise InvalidInputError(f"feedback log lacks columns {missing}")
    served_at = table.column("served_at")
    if not pa.types.is_timestamp(served_at.type) or served_at.type.tz is None:
        raise InvalidInputError(f"served_at must be a timezone-aware timestamp, got {served_at.type}")
    for name in ("variant", "served_at"):
        if table.column(name).null_count:
            raise InvalidInputError(f"feedback column {name!r} has nulls")

    encoded = pc.dictionary_encode(table.column("variant").cast(pa.string())).combine_chunks()
    variant_names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    n_variants = len(variant_names)

    served_us = served_at.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    cutoff = pa.scalar(now - attribution_window).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py()
    matured = served_us <= cutoff
    converted = _true_mask(table.column("converted"))
    errors = _true_mask(table.column("error"))
    latency = table.column("latency_ms").cast(pa.float64()).to_numpy(zero_copy_only=False)

    served_counts = np.bincount(codes, minlength=n_variants)
    matured_counts = np.bincount(codes[matured], minlength=n_variants)
    conversion_counts = np.bincount(codes[matured & converted], minlength=n_variants)
    error_counts = np.bincount(codes[errors], minlength=n_variants)
    has_latency = ~np.isnan(latency)
    summary = {}
    for code, name in enumerate(variant_names):
        latencies = latency[(codes == code) & has_latency]
        summary[name] = FeedbackCounts(
            variant=name,
            served=int(served_counts[code]),
            matured=int(matured_counts[code]),
            conversions=int(conversion_counts[code]),
            errors=int(error_counts[code]),
            latency_p95_ms=float(np.quantile(latencies, 0.95)) if latencies.size else None,
        )
    return dict(sorted(summary.items()))


def _true_mask(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(column.cast(pa.bool_()), False).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class FeedbackWindow:
    """Requests served in ``[start, end)`` while stage ``stage_index`` was running."""

    stage_index: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class StratifiedFeedback:
    """The strata the judgement uses, the windows left out (and why), and the requests per window (bake)
    at the latest window's stage."""

    strata: list[Stratum]
    left_out: list[str]
    requests_per_wait: float


def stratify_feedback(
    feedback: Any, windows: Sequence[FeedbackWindow], attribution_window: timedelta, now: datetime,
    champion_variant: str, challenger_variant: str,
) -> StratifiedFeedback:
    """One stratum per window in which both variants have matured requests (conversions counted as in
    ``summarise_feedback``). ``requests_per_wait`` is the mean number of requests, matured or not, of the
    windows at the latest window's stage."""
    table = _as_table(feedback)
    if "served_at" not in table.column_names:
        raise InvalidInputError("feedback log lacks column 'served_at'")
    served_at = table.column("served_at")
    strata, left_out, served_by_stage = [], [], {}
    for window in windows:
        mask = pc.and_(pc.greater_equal(served_at, pa.scalar(window.start, served_at.type)),
                       pc.less(served_at, pa.scalar(window.end, served_at.type)))
        counts = summarise_feedback(table.filter(mask), attribution_window, now)
        champion = counts.get(champion_variant) or FeedbackCounts.empty(champion_variant)
        challenger = counts.get(challenger_variant) or FeedbackCounts.empty(challenger_variant)
        served_by_stage.setdefault(window.stage_index, []).append(champion.served + challenger.served)
        if champion.matured and challenger.matured:
            strata.append(Stratum(window.stage_index, ArmCounts(champion.matured, champion.conversions),
                                  ArmCounts(challenger.matured, challenger.conversions)))
        else:
            left_out.append(f"stage {window.stage_index} {window.start.isoformat()}..{window.end.isoformat()}: "
                            f"matured requests champion {champion.matured}, challenger {challenger.matured}")
    latest = served_by_stage.get(windows[-1].stage_index, [0]) if windows else [0]
    return StratifiedFeedback(strata, left_out, sum(latest) / len(latest))


@dataclass(frozen=True)
class StageDecision:
    """What to do after judging a stage.

    ``continue`` either waits at the same stage (``next_stage_index == stage_index``, ``waits``
    incremented) or moves on (``next_stage_index`` the next test stage, ``waits`` reset to 0).
    ``weights`` are the traffic percentages per variant to apply next; they always sum to 100.
    """

    action: Action
    reason: str
    stage_index: int
    next_stage_index: int | None
    waits: int
    weights: dict[str, int]
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyse_stage(
    feedback: Any,
    windows: Sequence[FeedbackWindow],
    now: datetime,
    attribution_window: timedelta,
    champion_variant: str,
    challenger_variant: str,
    stage_index: int,
    judge: ABJudge,
    waits: int = 0,
) -> StageDecision:
    """Guardrails on all the challenger's requests, then the judgement on the concurrent strata. A
    feedback log that cannot be read (missing columns, nulls, naive times) rolls back with the problem."""
    config, plan = judge.config, judge.plan
    known_stage = 0 <= stage_index < len(plan.stages)
    evidence: dict[str, Any] = {
        "challenger_percent": plan.challenger_percent(stage_index) if known_stage else None,
        "plan": plan.to_dict(),
        "config": config.to_dict(),
    }
    try:
        totals = summarise_feedback(feedback, attribution_window, now)
        stratified = stratify_feedback(feedback, windows, attribution_window, now, champion_variant,
                                       challenger_variant)
    except InvalidInputError as error:
        verdict = ABVerdict("rollback", f"bad input: feedback log: {error}", stage_index, None, waits)
        return _decision(verdict, stage_index, plan, champion_variant, challenger_variant, evidence)
    champion = totals.get(champion_variant) or FeedbackCounts.empty(champion_variant)
    challenger = totals.get(challenger_variant) or FeedbackCounts.empty(challenger_variant)
    evidence.update(champion=champion.to_dict(), challenger=challenger.to_dict())
    breaches = _guardrail_breaches(challenger, config)
    evidence["guardrail_breaches"] = breaches
    if breaches:
        verdict = ABVerdict("rollback", "guardrail breached: " + "; ".join(breaches), stage_index, None, waits)
    else:
        evidence["windows_left_out"] = stratified.left_out
        verdict = judge.judge(stratified.strata, stage_index, waits, stratified.requests_per_wait)
        evidence.update(test=verdict.test, interval=verdict.interval, power=verdict.power, strata=verdict.strata)
    return _decision(verdict, stage_index, plan, champion_variant, challenger_variant, evidence)


def _decision(verdict: ABVerdict, stage_index: int, plan: TrafficPlan, champion_variant: str,
              challenger_variant: str, evidence: dict[str, Any]) -> StageDecision:
    if verdict.next_stage_index is not None:
        weights = plan.weights_for_stage(verdict.next_stage_index, champion_variant, challenger_variant)
    else:
        share = 100 if verdict.action == "promote" else 0
        weights = {champion_variant: 100 - share, challenger_variant: share}
    return StageDecision(verdict.action, verdict.reason, stage_index, verdict.next_stage_index, verdict.waits,
                         weights, evidence)


def _guardrail_breaches(challenger: FeedbackCounts, config: ABTestConfig) -> list[str]:
    if challenger.served < config.min_guardrail_requests:
        return []
    breaches = []
    if challenger.error_rate is not None and challenger.error_rate > config.max_error_rate:
        breaches.append(f"error rate {challenger.error_rate:.4f} > {config.max_error_rate}")
    if challenger.latency_p95_ms is not None and challenger.latency_p95_ms > config.max_latency_p95_ms:
        breaches.append(f"p95 latency {challenger.latency_p95_ms:.1f} ms > {config.max_latency_p95_ms} ms")
    return breaches
