"""Concept drift from outcomes: the champion's conversion per period, tested for a real drop.

Two complementary tests on the feedback log's ``converted`` flag (``ConversionMonitor``):
- a one-sided two-proportion z-test of the recent window against the baseline window (pooled; the
  same statistic as the A/B test's, ``driftloop.traffic.stratified.two_proportion_z``), which
  decides; a drop must also be at least ``min_relative_drop`` so that tiny effects on huge traffic
  do not trigger retraining;
- Page-Hinkley (``PageHinkley``) on per-period rates normalised by the baseline rate, which reports
  the first period where a sustained decrease started (useful to date the change).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.config import PERIOD_UNITS
from driftloop.drift.reading import iter_batches, read_source_schema
from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.storage import ParquetSource
from driftloop.traffic.stratified import ArmCounts, two_proportion_information, two_proportion_z

_NUMPY_UNITS = {"hour": "h", "day": "D", "week": "W"}


@dataclass(frozen=True)
class ConversionPeriod:
    """One period of the feedback log: ``served`` requests, ``conversions`` among them."""

    label: str
    served: int
    conversions: int

    def __post_init__(self) -> None:
        if self.served < 0 or not 0 <= self.conversions <= self.served:
            raise ValueError(f"period {self.label}: need 0 <= conversions <= served")

    @property
    def rate(self) -> float:
        return self.conversions / self.served if self.served else 0.0


@dataclass(frozen=True)
class ConversionMonitor:
    """Has the champion's conversion rate dropped? A test of the last periods against the ones before.

    The last ``baseline_periods + recent_periods`` periods form the window; the recent rate is compared
    with the baseline rate by a one-sided pooled two-proportion z-test. A drop is detected when it is
    significant at ``alpha`` *and* at least ``min_relative_drop`` of the baseline rate. Page-Hinkley on
    the window's per-period rates (divided by the baseline rate) dates the start of the decrease; it
    informs, it does not decide. ``evaluate`` needs a full window; ``assess`` also accepts a short
    history and says it is untested. Both return a ``ConceptDriftResult``.

    Parameters
    ----------
    baseline_periods
        Periods before the recent ones that define the normal rate.
    recent_periods
        The latest periods, tested for a drop.
    alpha
        Level of the one-sided test.
    min_relative_drop
        Smallest drop, relative to the baseline rate, worth retraining for (0.05 = 5 %).
    min_served
        Requests each of the baseline and the recent windows needs before anything is tested.
    page_hinkley_delta
        ``PageHinkley``'s ``delta``, in units of the baseline rate.
    page_hinkley_threshold
        ``PageHinkley``'s ``threshold``, in units of the baseline rate.

    Example
    -------
    >>> from driftloop.drift.concept import ConversionMonitor, ConversionPeriod
    >>> history = [ConversionPeriod(f"d{day}", 20_000, 1_000) for day in range(7)]
    >>> history += [ConversionPeriod(f"d{day}", 20_000, 820) for day in range(7, 10)]
    >>> result = ConversionMonitor().evaluate(history)
    >>> result.decision, round(result.relative_change, 2), result.change_period
    ('retrain', -0.18, 'd7')
    >>> ConversionMonitor().assess(history[:4]).tested
    False
    >>> ConversionMonitor(alpha=1.5)
    Traceback (most recent call last):
    ...
    ValueError: alpha must be in (0, 1) and min_relative_drop in [0, 1)

    References
    ----------
    Agresti, A. (2013). Categorical Data Analysis, 3rd ed., section 3.1 (comparing two proportions).
    Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
    """

    baseline_periods: int = 7
    recent_periods: int = 3
    alpha: float = 0.01
    min_relative_drop: float = 0.05
    min_served: int = 1000
    page_hinkley_delta: float = 0.02
    page_hinkley_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.baseline_periods < 1 or self.recent_periods < 1:
            raise ValueError("baseline_periods and recent_periods must be at least 1")
        if not 0 < self.alpha < 1 or not 0 <= self.min_relative_drop < 1:
            raise ValueError("alpha must be in (0, 1) and min_relative_drop in [0, 1)")
        if self.min_served < 1 or self.page_hinkley_delta < 0 or self.page_hinkley_threshold <= 0:
            raise ValueError("min_served >= 1, page_hinkley_delta >= 0, page_hinkley_threshold > 0 are required")
        PageHinkley(self.page_hinkley_delta, self.page_hinkley_threshold)  # rejects what is not a finite number

    @property
    def needed_periods(self) -> int:
        return self.baseline_periods + self.recent_periods

    def assess(self, periods: Sequence[ConversionPeriod]) -> ConceptDriftResult:
        """Like ``evaluate``, but too little history is an untested result that says so, not an error."""
        if len(periods) < self.needed_periods:
            served, conversions = sum(p.served for p in periods), sum(p.conversions for p in periods)
            rate = _rate(conversions, served)
            return ConceptDriftResult(
                False, rate, rate, 0.0, 0.0, 1.0, None,
                [f"too little conversion history to test: {len(periods)} periods with traffic, "
                 f"need {self.needed_periods} ({self.baseline_periods} baseline + {self.recent_periods} recent)"],
                tested=False,
            )
        return self.evaluate(periods)

    def evaluate(self, periods: Sequence[ConversionPeriod]) -> ConceptDriftResult:
        """Test the last ``needed_periods`` periods; fewer raise ``InvalidInputError``."""
        needed = self.needed_periods
        if len(periods) < needed:
            raise InvalidInputError(f"need at least {needed} periods of feedback, got {len(periods)}")
        window = list(periods[-needed:])
        baseline, recent = window[: self.baseline_periods], window[self.baseline_periods :]
        served_b, conv_b = sum(p.served for p in baseline), sum(p.conversions for p in baseline)
        served_r, conv_r = sum(p.served for p in recent), sum(p.conversions for p in recent)
        if min(served_b, served_r) < self.min_served:
            return ConceptDriftResult(
                False,
                _rate(conv_b, served_b),
                _rate(conv_r, served_r),
                0.0,
                0.0,
                1.0,
                None,
                [f"too little traffic to test (baseline {served_b}, recent {served_r}, need {self.min_served})"],
                tested=False,
            )
        z, pvalue = _drop_test(ArmCounts(int(served_b), int(conv_b)), ArmCounts(int(served_r), int(conv_r)))
        baseline_rate, recent_rate = conv_b / served_b, conv_r / served_r
        relative = (recent_rate - baseline_rate) / baseline_rate if baseline_rate else 0.0
        change_at = page_hinkley_decrease(
            [p.rate / baseline_rate if baseline_rate else 0.0 for p in window],
            self.page_hinkley_delta,
            self.page_hinkley_threshold,
        )
        change_label = window[change_at].label if change_at is not None else None
        detected = pvalue < self.alpha and -relative >= self.min_relative_drop
        summary = (
            f"conversion {baseline_rate:.4f} -> {recent_rate:.4f} ({relative:+.1%}), "
            f"one-sided two-proportion p={pvalue:.3g}"
        )
        reasons = [f"conversion dropped: {summary}" if detected else f"no significant conversion drop: {summary}"]
        if change_label is not None:
            reasons.append(f"Page-Hinkley signals a sustained decrease from period {change_label}")
        return ConceptDriftResult(detected, baseline_rate, recent_rate, relative, z, pvalue, change_label, reasons)


def _rate(conversions: int, served: int) -> float:
    return conversions / served if served else 0.0


@dataclass(frozen=True)
class ConceptDriftResult:
    """The evidence of one concept-drift test: rates, relative change, z and one-sided p-value, the
    period Page-Hinkley dates the decrease to (or None), and the reasons in words. ``tested`` is False
    when there was too little history or traffic to test, and then ``detected`` is False."""

    detected: bool
    baseline_rate: float
    recent_rate: float
    relative_change: float
    z_statistic: float
    pvalue: float
    change_period: str | None
    reasons: list[str]
    tested: bool = True

    @property
    def decision(self) -> str:
        return "retrain" if self.detected else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "detected": self.detected,
            "tested": self.tested,
            "baseline_rate": self.baseline_rate,
            "recent_rate": self.recent_rate,
            "relative_change": self.relative_change,
            "z_statistic": self.z_statistic,
            "pvalue": self.pvalue,
            "change_period": self.change_period,
            "reasons": list(self.reasons),
        }


def detect_conversion_drop(
    periods: Sequence[ConversionPeriod], monitor: ConversionMonitor | None = None
) -> ConceptDriftResult:
    """``ConversionMonitor.evaluate`` with the given monitor, or the default one."""
    return (monitor or ConversionMonitor()).evaluate(periods)


def _drop_test(baseline: ArmCounts, recent: ArmCounts) -> tuple[float, float]:
    """z and one-sided p-value for H1: recent rate < baseline rate; no information means p = 1."""
    if two_proportion_information(baseline, recent) == 0:
        return 0.0, 1.0
    z = two_proportion_z(baseline, recent)
    return z, 0.5 * math.erfc(-z / math.sqrt(2))


class PageHinkley:
    """Page-Hinkley test for a sustained decrease of the mean of a sequence.

    Each value updates the running mean ``x̄_t`` and the cumulative sum ``m_t = Σ (x_i - x̄_i + delta)``,
    which keeps rising while values stay above the running mean minus ``delta`` and falls once they stay
    below it. A drift is detected when ``m_t`` has fallen more than ``threshold`` below its largest value
    ``M_t``; the change is dated to the value after the one where ``M_t`` was reached.

    Life cycle: ``update`` with each value in order, then read ``drift_detected`` and, once detected,
    ``change_index`` (the 0-based position, among the values seen, where the decrease began). The update
    after a detection starts afresh, from that value on.

    Parameters
    ----------
    delta
        Decrease of the mean, in the values' units, tolerated without counting towards a drift.
    threshold
        How far (``lambda``) the cumulative sum must fall below its peak to signal a drift; larger
        means fewer false alarms and later detection.

    Example
    -------
    >>> from driftloop.drift.concept import PageHinkley
    >>> detector = PageHinkley(delta=0.02, threshold=0.3)
    >>> rates = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.0, 0.82, 0.81, 0.83, 0.82]
    >>> for position, rate in enumerate(rates):
    ...     if detector.update(rate).drift_detected:
    ...         print(f"detected at {position}, decrease began at {detector.change_index}")
    detected at 9, decrease began at 7
    >>> PageHinkley(threshold=0)
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: threshold must be a positive number, got 0

    References
    ----------
    Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
    Hinkley, D. V. (1971). Inference about the change-point from cumulative sum tests. Biometrika
    58(3), 509-523.
    Gama, J., Zliobaite, I., Bifet, A., Pechenizkiy, M. and Bouchachia, A. (2014). A survey on concept
    drift adaptation. ACM Computing Surveys 46(4), article 44.
    """

    def __init__(self, delta: float = 0.02, threshold: float = 0.3) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 <= delta < math.inf:
            raise ConfigurationError(f"delta must be a number >= 0, got {delta!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < math.inf:
            raise ConfigurationError(f"threshold must be a positive number, got {threshold!r}")
        self.delta = float(delta)
        self.threshold = float(threshold)
        self._reset()

    def _reset(self) -> None:
        self.n_seen = 0
        self._mean = self._cumulative = self._peak = 0.0
        self._peak_index = 0
        self.drift_detected = False
        self.change_index: int | None = None

    def update(self, value: float) -> PageHinkley:
        """Take the next value; returns the detector so that ``update(x).drift_detected`` reads well."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInputError(f"Page-Hinkley needs finite numbers, got {value!r}")
        if self.drift_detected:
            self._reset()
        index = self.n_seen
        self.n_seen += 1
        self._mean += (value - self._mean) / self.n_seen
        self._cumulative += value - self._mean + self.delta
        if self._cumulative > self._peak:
            self._peak, self._peak_index = self._cumulative, index
        if self._peak - self._cumulative > self.threshold:
            self.drift_detected, self.change_index = True, self._peak_index + 1
        return self


def page_hinkley_decrease(values: Sequence[float], delta: float, threshold: float) -> int | None:
    """Index where a sustained decrease of ``values`` began, or None: ``PageHinkley``'s first detection.

    >>> page_hinkley_decrease([1.0, 1.0, 1.0, 0.5, 0.5, 0.5], delta=0.01, threshold=0.5)
    3
    >>> page_hinkley_decrease([1.0, 1.0, 1.0], delta=0.01, threshold=0.5) is None
    True
    """
    detector = PageHinkley(delta, threshold)
    for value in values:
        if detector.update(float(value)).drift_detected:
            return detector.change_index
    return None


def period_start(moment: datetime, period_unit: str) -> datetime:
    """Start of the period holding ``moment`` (UTC; weeks are numpy's, starting on Thursdays)."""
    if period_unit not in _NUMPY_UNITS:
        raise ValueError(f"period_unit must be one of {PERIOD_UNITS}, not {period_unit!r}")
    instant = np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")
    floored = instant.astype(f"datetime64[{_NUMPY_UNITS[period_unit]}]").astype("datetime64[us]")
    return floored.item().replace(tzinfo=UTC)


def complete_periods_window(until: datetime, period_unit: str, periods: int) -> tuple[datetime, datetime]:
    """[start, end) of the last ``periods`` complete periods before ``until``."""
    end = np.datetime64(period_start(until, period_unit).replace(tzinfo=None), "us")
    step = np.timedelta64(1, _NUMPY_UNITS[period_unit]).astype("timedelta64[us]")
    start = end - periods * step
    return start.item().replace(tzinfo=UTC), end.item().replace(tzinfo=UTC)


def conversion_periods(
    source: ParquetSource | pa.Table,
    variant: str | None = None,
    period_unit: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ConversionPeriod]:
    """Served and converted counts per period (``day``, ``week`` or ``hour``) from feedback rows (the files
    of a feedback log, or a table such as :func:`driftloop.pipeline.feedback.read_feedback` returns),
    counting rows served in [``since``, ``until``) when those (timezone-aware) bounds are given."""
    if period_unit not in _NUMPY_UNITS:
        raise ValueError(f"period_unit must be one of {PERIOD_UNITS}, not {period_unit!r}")
    bounds = [bound for bound in (since, until) if bound is not None]
    if any(bound.tzinfo is None for bound in bounds):
        raise ValueError("since and until must be timezone-aware")
    names = source.column_names if isinstance(source, pa.Table) else read_source_schema(source).columns
    required = ["served_at", "converted"] + (["variant"] if variant is not None else [])
    missing = [name for name in required if name not in names]
    if missing:
        raise InvalidInputError(f"feedback log lacks columns {missing}")
    served: dict[np.datetime64, int] = {}
    converted: dict[np.datetime64, int] = {}
    batches = source.select(required).to_batches() if isinstance(source, pa.Table) else iter_batches(source, required)
    for batch in batches:
        table = pa.Table.from_batches([batch])
        if variant is not None:
            table = table.filter(pc.equal(table["variant"].cast(pa.string()), variant))
        served_at = table["served_at"].cast(pa.timestamp("us", tz="UTC"))
        keep = pc.is_valid(served_at)
        if since is not None:
            keep = pc.and_(keep, pc.greater_equal(served_at, pa.scalar(since, served_at.type)))
        if until is not None:
            keep = pc.and_(keep, pc.less(served_at, pa.scalar(until, served_at.type)))
        table, served_at = table.filter(keep), served_at.filter(keep)
        if table.num_rows == 0:
            continue
        times = served_at.to_numpy().astype("datetime64[us]").astype(f"datetime64[{_NUMPY_UNITS[period_unit]}]")
        flags = pc.fill_null(table["converted"], False).to_numpy(zero_copy_only=False).astype(bool)
        keys, index, counts = np.unique(times, return_inverse=True, return_counts=True)
        hits = np.bincount(index, weights=flags, minlength=keys.size)
        for key, count, hit in zip(keys, counts, hits, strict=True):
            served[key] = served.get(key, 0) + int(count)
            converted[key] = converted.get(key, 0) + int(hit)
    return [ConversionPeriod(str(key), served[key], converted[key]) for key in sorted(served)]
