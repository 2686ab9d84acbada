"""Compare current data against a stored baseline in one streaming pass, then apply the policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.drift.baseline import OTHER_CATEGORY, Baseline, CategoricalSummary, NumericSummary
from driftloop.drift.policy import DriftPolicy, benjamini_hochberg
from driftloop.drift.reading import (
    CATEGORICAL,
    NUMERIC,
    category_counts,
    column_kind,
    for_each_batch,
    numeric_values,
    read_source_schema,
)
from driftloop.drift.statistics import (
    BinnedSide,
    align_categories,
    chi_square_homogeneity,
    coarse_bounds,
    coarse_cuts,
    coarsen,
    compare_binned,
    compare_exact,
    jensen_shannon_distance,
    l_infinity,
    population_stability_index,
)
from driftloop.errors import InvalidInputError
from driftloop.storage import ParquetSource

DECISIONS = ("none", "warn", "retrain")
MAX_CHART_CATEGORIES = 30


@dataclass(frozen=True)
class QualityViolation:
    """One data-quality finding, named with Model Monitor's ``constraint_check_type``."""

    feature: str
    check: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"feature": self.feature, "check": self.check, "detail": self.detail}


@dataclass(frozen=True)
class Distribution:
    """What the report draws: bin or category labels with both sides' shares."""

    labels: list[str]
    reference: list[float]
    current: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "reference": self.reference, "current": self.current}


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str
    reference_count: int
    current_count: int
    current_missing: int
    statistics: dict[str, float]
    pvalue: float
    distribution: Distribution
    new_categories: list[str] = field(default_factory=list)
    missing_categories: list[str] = field(default_factory=list)
    adjusted_pvalue: float | None = None
    drifted: bool = False
    status: str = "stable"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "drifted": self.drifted,
            "status": self.status,
            "reason": self.reason,
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "current_missing": self.current_missing,
            "statistics": dict(self.statistics),
            "adjusted_pvalue": self.adjusted_pvalue,
            "distribution": self.distribution.to_dict(),
        }
        if self.kind == CATEGORICAL:
            data["new_categories"] = list(self.new_categories)
            data["missing_categories"] = list(self.missing_categories)
        return data


@dataclass(frozen=True)
class DriftReport:
    decision: str
    reasons: list[str]
    features: dict[str, FeatureDrift]
    quality: list[QualityViolation]
    policy: DriftPolicy
    reference_rows: int
    current_rows: int

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, feature in self.features.items() if feature.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "drifted_features": self.drifted_features,
            "features": {name: feature.to_dict() for name, feature in self.features.items()},
            "quality": [violation.to_dict() for violation in self.quality],
            "policy": self.policy.to_dict(),
            "rows": {"reference": self.reference_rows, "current": self.current_rows},
        }

    def to_html(self, title: str = "driftloop drift report") -> str:
        from driftloop.drift.html import render_report

        return render_report(self.to_dict(), title)


class _NumericAccumulator:
    def __init__(self, summary: NumericSummary, exact_limit: int) -> None:
        self.summary = summary
        self.counts = np.zeros(summary.edges.size + 1)
        self.missing = 0
        self.gap_below = 0.0
        self.gap_above = 0.0
        self.below_minimum = 0
        self.non_integral = 0
        self.check_integral = summary.inferred_type == "Integral"
        self.exact_limit = exact_limit
        self.raw: list[np.ndarray] | None = [] if summary.values is not None else None
        self.raw_size = 0

    def add(self, array: pa.Array) -> None:
        values, missing = numeric_values(array)
        self.missing += missing
        if not values.size:
            return
        bins = self.summary.edge_index.bins(values)
        counts = np.bincount(bins, minlength=self.counts.size)
        self.counts += counts
        with np.errstate(over="ignore"):  # values near the float limit: the gap is then infinite, and says so
            if counts[0]:
                lowest = values[bins == 0]
                self.below_minimum += int(np.count_nonzero(lowest < self.summary.edges[0]))
                self.gap_below += float(np.sum(self.summary.edges[0] - lowest))
            if counts[-1]:
                self.gap_above += float(np.sum(values[bins == counts.size - 1] - self.summary.edges[-1]))
        if self.check_integral and pa.types.is_floating(array.type):
            self.non_integral += int(np.count_nonzero(values != np.floor(values)))
        if self.raw is not None:
            self.raw_size += values.size
            self.raw = self.raw + [values] if self.raw_size <= self.exact_limit else None


class _CategoricalAccumulator:
    def __init__(self, summary: CategoricalSummary, max_categories: int) -> None:
        self.summary = summary
        self.counts: dict[str, float] = {}
        self.missing = 0
        self.cap = len(summary.counts) + 2 * max_categories

    def add(self, array: pa.Array) -> None:
        batch_counts, missing = category_counts(array)
        self.missing += missing
        for category, count in batch_counts.items():
            self.counts[category] = self.counts.get(category, 0.0) + count
        if len(self.counts) > self.cap:
            self._fold_rare_new_categories()

    def _fold_rare_new_categories(self) -> None:
        known = self.summary.counts
        new = sorted((item for item in self.counts.items() if item[0] not in known), key=lambda item: item[1])
        for category, count in new[: len(self.counts) - self.cap]:
            del self.counts[category]
            self.counts[OTHER_CATEGORY] = self.counts.get(OTHER_CATEGORY, 0.0) + count


def compare_to_baseline(baseline: Baseline, current: ParquetSource, policy: DriftPolicy | None = None) -> DriftReport:
    """Profile ``current`` against ``baseline`` feature by feature and decide none/warn/retrain."""
    policy = policy or DriftPolicy()
    schema = read_source_schema(current)
    if schema.row_count == 0:
        raise InvalidInputError("the current data has no rows")
    quality: list[QualityViolation] = []
    comparable: list[str] = []
    for name, summary in baseline.features.items():
        if name not in schema.types:
            quality.append(QualityViolation(name, "missing_column_check", "column is absent from the current data"))
        elif column_kind(schema.types[name]) != summary.kind:
            quality.append(
                QualityViolation(
                    name,
                    "data_type_check",
                    f"expected {summary.inferred_type} ({summary.kind}); current column is {schema.types[name]}",
                )
            )
        else:
            comparable.append(name)
    if not comparable:
        raise InvalidInputError(
            f"the current data shares no comparable feature with the baseline: baseline features "
            f"{list(baseline.features)}, current columns {schema.columns}"
        )
    for name in schema.columns:
        if name not in baseline.columns:
            quality.append(QualityViolation(name, "extra_column_check", "column is not in the baseline data"))

    settings = baseline.settings
    accumulators: dict[str, _NumericAccumulator | _CategoricalAccumulator] = {}
    for name in comparable:
        summary = baseline.features[name]
        if isinstance(summary, NumericSummary):
            accumulators[name] = _NumericAccumulator(summary, settings.exact_limit)
        else:
            accumulators[name] = _CategoricalAccumulator(summary, settings.max_categories)
    for_each_batch(current, comparable, {name: accumulator.add for name, accumulator in accumulators.items()})

    features: dict[str, FeatureDrift] = {}
    for name, accumulator in accumulators.items():
        if isinstance(accumulator, _NumericAccumulator):
            features[name] = _numeric_drift(accumulator, settings.coarse_bins)
        else:
            features[name] = _categorical_drift(accumulator)
        quality.extend(_quality(accumulator, features[name], policy))
    features = _apply_policy(features, policy)
    decision, reasons = _decide(features, quality, policy)
    return DriftReport(decision, reasons, features, quality, policy, baseline.row_count, schema.row_count)


def _numeric_drift(accumulator: _NumericAccumulator, coarse_bins: int) -> FeatureDrift:
    summary = accumulator.summary
    current_count = int(accumulator.counts.sum())
    # Fine bins with one more at the bottom, below the reference's minimum, which the reference leaves
    # empty: values there are told apart from a point mass at the minimum (merged with it, a constant
    # feature moving from 5 to 3 kept PSI 0 and KS 0). The coarse bins keep both out-of-range bins apart.
    below = accumulator.below_minimum
    reference_fine = np.concatenate([[0.0], summary.counts])
    current_fine = np.concatenate([[below], accumulator.counts[:1] - below, accumulator.counts[1:]]).astype(np.float64)
    inner = reference_fine[1:-1]
    cuts = coarse_cuts(inner, coarse_bins) if inner.size > 1 else np.zeros(0, dtype=np.int64)
    reference_bins, current_bins = (np.concatenate([fine[:1], coarsen(fine[1:-1], cuts), fine[-1:]])
                                    for fine in (reference_fine, current_fine))
    statistics = {
        "psi": population_stability_index(reference_bins, current_bins),
        "js_distance": jensen_shannon_distance(reference_bins, current_bins),
        "linf": l_infinity(reference_bins, current_bins),
    }
    if current_count == 0:
        return FeatureDrift(
            summary.name,
            NUMERIC,
            summary.count,
            0,
            accumulator.missing,
            statistics,
            1.0,
            Distribution([], [], []),
        )
    if summary.values is not None and accumulator.raw is not None:
        comparison = compare_exact(summary.values, np.concatenate(accumulator.raw))
    else:
        edges = np.concatenate([[np.nextafter(summary.edges[0], -np.inf)], summary.edges])
        comparison = compare_binned(edges, BinnedSide(reference_fine),
                                    BinnedSide(current_fine, accumulator.gap_below, accumulator.gap_above))
    scale = summary.moments.std
    statistics |= {
        "ks_statistic": comparison.ks_statistic,
        "ks_pvalue": comparison.ks_pvalue,
        "ks_statistic_error_bound": comparison.ks_statistic_error_bound,
        "wasserstein": comparison.wasserstein_distance / scale if scale > 0 else comparison.wasserstein_distance,
        "wasserstein_distance": comparison.wasserstein_distance,
        "wasserstein_error_bound": comparison.wasserstein_error_bound / scale if scale > 0 else 0.0,
        "exact": float(comparison.exact),
        "current_fraction_at_or_below_reference_min": float(accumulator.counts[0] / current_count),
        "current_fraction_above_reference_max": float(accumulator.counts[-1] / current_count),
    }
    bounds = coarse_bounds(summary.edges, cuts)
    labels = [f"< {bounds[0]:.4g}", *(f"{bounds[i]:.4g}..{bounds[i + 1]:.4g}" for i in range(len(bounds) - 1)),
              f"> {bounds[-1]:.4g}"]
    distribution = Distribution(
        labels,
        (reference_bins / reference_bins.sum()).tolist(),
        (current_bins / current_count).tolist(),
    )
    return FeatureDrift(
        summary.name,
        NUMERIC,
        summary.count,
        current_count,
        accumulator.missing,
        statistics,
        comparison.ks_pvalue,
        distribution,
    )


def _categorical_drift(accumulator: _CategoricalAccumulator) -> FeatureDrift:
    summary = accumulator.summary
    current = dict(accumulator.counts)
    reference = dict(summary.counts)
    if summary.truncated:
        reference[OTHER_CATEGORY] = summary.other_count
        folded = sum(count for category, count in current.items() if category not in summary.counts)
        current = {category: count for category, count in current.items() if category in summary.counts}
        if folded:
            current[OTHER_CATEGORY] = folded
    labels, reference_counts, current_counts = align_categories(reference, current)
    test = chi_square_homogeneity(reference_counts, current_counts)
    statistics = {
        "psi": population_stability_index(reference_counts, current_counts),
        "js_distance": jensen_shannon_distance(reference_counts, current_counts),
        "linf": l_infinity(reference_counts, current_counts),
        "chi2_statistic": test.statistic,
        "chi2_pvalue": test.pvalue,
        "chi2_degrees_of_freedom": float(test.degrees_of_freedom),
        "current_fraction_outside_domain": 0.0,
    }
    new = [c for c in accumulator.counts if c not in summary.counts and c != OTHER_CATEGORY]
    vanished = [c for c in summary.counts if accumulator.counts.get(c, 0.0) == 0]
    current_count = int(sum(accumulator.counts.values()))
    if current_count and not summary.truncated:
        outside = sum(count for category, count in accumulator.counts.items() if category not in summary.counts)
        statistics["current_fraction_outside_domain"] = outside / current_count
    order = np.argsort(-(reference_counts + current_counts), kind="stable")[:MAX_CHART_CATEGORIES]
    reference_shares = reference_counts / max(reference_counts.sum(), 1.0)
    current_shares = current_counts / max(current_counts.sum(), 1.0)
    distribution = Distribution(
        [labels[i] for i in order], reference_shares[order].tolist(), current_shares[order].tolist()
    )
    return FeatureDrift(
        summary.name,
        CATEGORICAL,
        summary.count,
        current_count,
        accumulator.missing,
        statistics,
        test.pvalue,
        distribution,
        sorted(new),
        sorted(vanished),
    )


def _quality(
    accumulator: _NumericAccumulator | _CategoricalAccumulator, feature: FeatureDrift, policy: DriftPolicy
) -> list[QualityViolation]:
    summary = accumulator.summary
    violations: list[QualityViolation] = []
    reference_total = summary.count + summary.missing
    current_total = feature.current_count + accumulator.missing
    reference_completeness = summary.count / reference_total if reference_total else 1.0
    current_completeness = feature.current_count / current_total if current_total else 1.0
    if current_completeness < reference_completeness - policy.completeness_tolerance:
        violations.append(
            QualityViolation(
                feature.name,
                "completeness_check",
                f"Data completeness requirement is not met. Expected completeness: "
                f"{reference_completeness:.2%}. Observed completeness: {current_completeness:.2%}",
            )
        )
    if isinstance(accumulator, _NumericAccumulator) and accumulator.non_integral and feature.current_count:
        conforming = 1.0 - accumulator.non_integral / feature.current_count
        violations.append(
            QualityViolation(
                feature.name,
                "data_type_check",
                "Data type match requirement is not met. Expected data type: Integral, "
                f"Expected match: 100.0%. Observed: Only {conforming:.1%} of data is Integral.",
            )
        )
    outside = feature.statistics.get("current_fraction_outside_domain", 0.0)
    if isinstance(accumulator, _CategoricalAccumulator) and outside > policy.domain_tolerance:
        shown = ", ".join(feature.new_categories[:10])
        violations.append(
            QualityViolation(
                feature.name,
                "categorical_values_check",
                "Data content requirement is not met. "
                f"Expected: {1 - policy.domain_tolerance:.1%} of data within the baseline domain. "
                f"Observed: {1 - outside:.1%}. New values: {shown}",
            )
        )
    return violations


def _apply_policy(features: dict[str, FeatureDrift], policy: DriftPolicy) -> dict[str, FeatureDrift]:
    tested = [
        name
        for name, feature in features.items()
        if not policy.thresholds(name).ignore
        and min(feature.reference_count, feature.current_count) >= policy.thresholds(name).min_samples
    ]
    adjusted = dict(zip(tested, benjamini_hochberg([features[name].pvalue for name in tested]).tolist(), strict=True))
    decided: dict[str, FeatureDrift] = {}
    for name, feature in features.items():
        thresholds = policy.thresholds(name)
        psi, js = feature.statistics["psi"], feature.statistics["js_distance"]
        effect = (
            f"PSI {psi:.3g} (threshold {thresholds.psi_threshold:g}), "
            f"JS {js:.3g} (threshold {thresholds.js_threshold:g})"
        )
        large = psi >= thresholds.psi_threshold or js >= thresholds.js_threshold
        notable = (
            psi >= policy.warn_fraction * thresholds.psi_threshold
            or js >= policy.warn_fraction * thresholds.js_threshold
        )
        test_name = "KS" if feature.kind == NUMERIC else "chi-square"
        q = adjusted.get(name)
        significant = q is not None and q < policy.alpha
        if thresholds.ignore:
            status, reason = "ignored", "ignored by configuration"
        elif q is None:
            status = "insufficient_samples" if large else "stable"
            reason = f"{effect}; fewer than {thresholds.min_samples} values on a side, not tested"
        elif large and significant:
            status, reason = "drifted", f"{effect}; {test_name} adjusted p={q:.3g} < {policy.alpha:g}"
        elif notable and significant:
            status, reason = "warning", f"{effect} approaching threshold; {test_name} adjusted p={q:.3g}"
        elif large:
            status, reason = (
                "not_significant",
                f"{effect} but {test_name} adjusted p={q:.3g} >= {policy.alpha:g}",
            )
        else:
            status, reason = "stable", f"{effect}; {test_name} adjusted p={q:.3g}"
        decided[name] = FeatureDrift(
            **{
                **feature.__dict__,
                "adjusted_pvalue": q,
                "drifted": status == "drifted",
                "status": status,
                "reason": reason,
            }
        )
    return decided


def _decide(
    features: dict[str, FeatureDrift], quality: Sequence[QualityViolation], policy: DriftPolicy
) -> tuple[str, list[str]]:
    drifted = [name for name, feature in features.items() if feature.drifted]
    reasons = [f"{name} drifted: {features[name].reason}" for name in drifted]
    reasons += [
        f"{name} {feature.status.replace('_', ' ')}: {feature.reason}"
        for name, feature in features.items()
        if feature.status in ("warning", "insufficient_samples")
    ]
    reasons += [f"{violation.feature}: {violation.check}: {violation.detail}" for violation in quality]
    if len(drifted) >= policy.retrain_min_features:
        return "retrain", reasons
    if reasons:
        return "warn", reasons
    return "none", ["no feature drifted and no data-quality violation"]
