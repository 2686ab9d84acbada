"""Online A/B analysis: from the feedback log to continue, promote or roll back.

Conversions are only counted for requests whose attribution window has closed ("matured"): a
request served a minute ago has not had its chance to convert yet, and counting it as a miss would
bias the newer variant (which gets more recent traffic as its share grows) downwards. Errors and
latency are known at once, so the guardrails use every request.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.traffic.significance import MSPRT, TWO_PROPORTION, TestResult, msprt_test, two_proportion_test
from driftloop.traffic.stages import TrafficPlan

__all__ = [
    "FeedbackCounts",
    "OnlineTestConfig",
    "StageDecision",
    "TestResult",
    "analyse_stage",
    "msprt_test",
    "summarise_feedback",
    "two_proportion_test",
]

FEEDBACK_COLUMNS = ("variant", "served_at", "converted", "latency_ms", "error")
Action = Literal["continue", "promote", "rollback"]
ACTIONS: tuple[Action, ...] = ("continue", "promote", "rollback")


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
class OnlineTestConfig:
    """How an A/B stage is judged.

    ``min_lift`` is the smallest relative conversion lift (0.02 = 2 % better) that counts as a win.
    ``max_waits`` bounds how often one stage may be re-checked for lack of samples before rolling
    back. Guardrails are judged once the challenger has served ``min_guardrail_requests``.
    ``msprt_tau`` is the scale of conversion-rate differences the always-valid test is tuned to.
    """

    alpha: float = 0.05
    min_samples_per_variant: int = 500
    min_lift: float = 0.0
    max_error_rate: float = 0.02
    max_latency_p95_ms: float = 500.0
    method: Literal["two_proportion", "msprt"] = TWO_PROPORTION
    max_waits: int = 6
    min_guardrail_requests: int = 100
    msprt_tau: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigurationError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_samples_per_variant < 1:
            raise ConfigurationError("min_samples_per_variant must be at least 1")
        if not math.isfinite(self.min_lift) or self.min_lift < 0:
            raise ConfigurationError(f"min_lift must be a non-negative number, got {self.min_lift}")
        if not 0 <= self.max_error_rate <= 1:
            raise ConfigurationError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")
        if not self.max_latency_p95_ms > 0:
            raise ConfigurationError(f"max_latency_p95_ms must be positive, got {self.max_latency_p95_ms}")
        if self.method not in (TWO_PROPORTION, MSPRT):
            raise ConfigurationError(f"method must be {TWO_PROPORTION!r} or {MSPRT!r}, got {self.method!r}")
        if self.max_waits < 0:
            raise ConfigurationError("max_waits must not be negative")
        if self.min_guardrail_requests < 1:
            raise ConfigurationError("min_guardrail_requests must be at least 1")
        if not self.msprt_tau > 0 or not math.isfinite(self.msprt_tau):
            raise ConfigurationError(f"msprt_tau must be a positive number, got {self.msprt_tau}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StageDecision:
    """What to do after judging a stage.

    ``continue`` either waits at the same stage (``next_stage_index == stage_index``, ``waits``
    incremented) or moves on (``next_stage_index == stage_index + 1``, ``waits`` reset to 0).
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
    counts_by_variant: dict[str, FeedbackCounts],
    champion_variant: str,
    challenger_variant: str,
    stage_index: int,
    stages: TrafficPlan,
    config: OnlineTestConfig,
    waits: int = 0,
) -> StageDecision:
    """Judge one stage from cumulative feedback; ``waits`` is how often this stage already waited."""
    if waits < 0:
        raise InvalidInputError(f"waits must not be negative, got {waits}")
    percent = stages.challenger_percent(stage_index)
    champion = counts_by_variant.get(champion_variant) or FeedbackCounts.empty(champion_variant)
    challenger = counts_by_variant.get(challenger_variant) or FeedbackCounts.empty(challenger_variant)
    evidence: dict[str, Any] = {
        "champion": champion.to_dict(),
        "challenger": challenger.to_dict(),
        "challenger_percent": percent,
        "stage_count": len(stages.stages),
        "config": config.to_dict(),
    }

    def decide(
        action: Action, reason: str, next_stage_index: int | None = None, next_waits: int = 0
    ) -> StageDecision:
        if next_stage_index is not None:
            weights = stages.weights_for_stage(next_stage_index, champion_variant, challenger_variant)
        else:
            challenger_share = 100 if action == "promote" else 0
            weights = {champion_variant: 100 - challenger_share, challenger_variant: challenger_share}
        return StageDecision(action, reason, stage_index, next_stage_index, next_waits, weights, evidence)

    breaches = _guardrail_breaches(challenger, config)
    evidence["guardrail_breaches"] = breaches
    if breaches:
        return decide("rollback", "guardrail breached: " + "; ".join(breaches))

    short = [c for c in (champion, challenger) if c.matured < config.min_samples_per_variant]
    if short:
        shortfall = ", ".join(
            f"{c.variant} has {c.matured}/{config.min_samples_per_variant} matured samples" for c in short
        )
        if champion in short and percent == 100:
            return decide(
                "rollback",
                f"not enough samples and the champion gets no traffic at this stage, so waiting cannot help: "
                f"{shortfall}",
            )
        if waits >= config.max_waits:
            return decide(
                "rollback", f"not enough samples after {waits} waits at stage {stage_index}: {shortfall}"
            )
        return decide(
            "continue", f"waiting for samples at stage {stage_index}: {shortfall}", stage_index, waits + 1
        )

    test = _run_test(champion, challenger, config)
    evidence["test"] = test.to_dict()
    summary = _describe(test)
    if test.significant and test.difference < 0:
        return decide("rollback", f"challenger converts significantly worse: {summary}")
    is_win = test.significant and test.difference > 0 and _lift_at_least(test, config.min_lift)
    last = stages.is_last(stage_index)
    if is_win and last:
        return decide("promote", f"challenger wins at the last stage: {summary}")
    if is_win and config.method == MSPRT:
        return decide("promote", f"always-valid test shows a significant win, stopping early: {summary}")
    if not last:
        return decide(
            "continue", f"stage {stage_index} passed, moving to the next stage: {summary}", stage_index + 1
        )
    return decide("rollback", f"last stage ended without a win: {summary}")


def _guardrail_breaches(challenger: FeedbackCounts, config: OnlineTestConfig) -> list[str]:
    if challenger.served < config.min_guardrail_requests:
        return []
    breaches = []
    if challenger.error_rate is not None and challenger.error_rate > config.max_error_rate:
        breaches.append(f"error rate {challenger.error_rate:.4f} > {config.max_error_rate}")
    if challenger.latency_p95_ms is not None and challenger.latency_p95_ms > config.max_latency_p95_ms:
        breaches.append(f"p95 latency {challenger.latency_p95_ms:.1f} ms > {config.max_latency_p95_ms} ms")
    return breaches


def _run_test(champion: FeedbackCounts, challenger: FeedbackCounts, config: OnlineTestConfig) -> TestResult:
    args = (champion.conversions, champion.matured, challenger.conversions, challenger.matured, config.alpha)
    if config.method == MSPRT:
        return msprt_test(*args, tau=config.msprt_tau)
    return two_proportion_test(*args)


def _lift_at_least(test: TestResult, min_lift: float) -> bool:
    return test.relative_lift is None or test.relative_lift >= min_lift


def _describe(test: TestResult) -> str:
    lift = "n/a" if test.relative_lift is None else f"{test.relative_lift:+.2%}"
    return (
        f"conversion {test.control_rate:.4f} -> {test.treatment_rate:.4f} (relative lift {lift}, "
        f"{test.method} p={test.p_value:.4g}, CI [{test.ci_low:+.4f}, {test.ci_high:+.4f}])"
    )
