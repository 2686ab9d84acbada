"""SageMaker Model Monitor interoperability: its baseline and violation files, read and written.

Readers accept ``statistics.json``, ``constraints.json`` and ``constraint_violations.json`` (data and
model quality). Descriptions are free text, so numbers are parsed with tolerant patterns and left
as None when a description does not match. Writers produce the same shapes from our baseline and
drift report, so teams can mix Model Monitor schedules and driftloop runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftloop.drift.baseline import (
    Baseline,
    BaselineSettings,
    CategoricalSummary,
    Moments,
    NumericSummary,
)
from driftloop.drift.compare import DriftReport
from driftloop.drift.policy import DriftPolicy
from driftloop.drift.sketch import QuantileSketch
from driftloop.drift.statistics import coarse_bounds, coarse_cuts, coarsen
from driftloop.errors import InvalidInputError

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_DISTANCE = re.compile(rf"distance:?\s*{_NUMBER}.*?threshold:?\s*'?{_NUMBER}", re.IGNORECASE | re.DOTALL)
_METRIC = re.compile(
    rf"Metric\s+(\S+)\s+with\s+{_NUMBER}(?:\s*\+/-\s*{_NUMBER})?\s+was\s+(\w+)\s+'?{_NUMBER}", re.IGNORECASE
)
_EXPECTED_PERCENT = re.compile(rf"Expected[^:]*:\s*{_NUMBER}\s*%", re.IGNORECASE)
_OBSERVED_PERCENT = re.compile(rf"Observed[^0-9+-]*{_NUMBER}\s*%", re.IGNORECASE)
_SKETCH_C = 0.64


@dataclass(frozen=True)
class Violation:
    """One entry of ``constraint_violations.json``; numbers are None when not in the description."""

    check_type: str
    description: str
    feature_name: str | None = None
    metric_name: str | None = None
    distance: float | None = None
    threshold: float | None = None
    observed: float | None = None
    expected: float | None = None

    @property
    def is_drift(self) -> bool:
        return self.check_type == "baseline_drift_check"

    @property
    def subject(self) -> str:
        return self.feature_name or self.metric_name or ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"constraint_check_type": self.check_type, "description": self.description}
        if self.feature_name is not None:
            data["feature_name"] = self.feature_name
        if self.metric_name is not None:
            data["metric_name"] = self.metric_name
        return data


def parse_violations(document: Mapping[str, Any]) -> list[Violation]:
    """Parse a ``constraint_violations.json`` document (data-quality or model-quality)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("violations"), list):
        raise InvalidInputError("not a constraint_violations document: expected an object with a 'violations' list")
    violations = []
    for index, entry in enumerate(document["violations"]):
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"violation {index} is not an object")
        description = str(entry.get("description") or "")
        check = str(entry.get("constraint_check_type") or "unknown")
        feature = entry.get("feature_name")
        metric = entry.get("metric_name")
        parsed: dict[str, float | None] = {"distance": None, "threshold": None, "observed": None, "expected": None}
        if match := _DISTANCE.search(description):
            parsed["distance"], parsed["threshold"] = float(match.group(1)), float(match.group(2))
        elif match := _METRIC.search(description):
            metric = metric or match.group(1)
            parsed["observed"], parsed["threshold"] = float(match.group(2)), float(match.group(5))
        else:
            if match := _EXPECTED_PERCENT.search(description):
                parsed["expected"] = float(match.group(1)) / 100
            if match := _OBSERVED_PERCENT.search(description):
                parsed["observed"] = float(match.group(1)) / 100
        violations.append(
            Violation(
                check,
                description,
                None if feature is None else str(feature),
                None if metric is None else str(metric),
                **parsed,
            )
        )
    return violations


def violations_document(report: DriftReport) -> dict[str, Any]:
    """``constraint_violations.json`` for a drift report: drifted features and quality findings."""
    entries: list[dict[str, Any]] = []
    for name, feature in report.features.items():
        if not feature.drifted:
            continue
        thresholds = report.policy.thresholds(name)
        psi, js = feature.statistics["psi"], feature.statistics["js_distance"]
        distance, threshold = (
            (psi, thresholds.psi_threshold) if psi >= thresholds.psi_threshold else (js, thresholds.js_threshold)
        )
        kind = "Numerical" if feature.kind == "numeric" else "Categorical"
        entries.append(
            {
                "feature_name": name,
                "constraint_check_type": "baseline_drift_check",
                "description": f"{kind} distance: {distance} exceeds {kind.lower()} threshold: {threshold}",
            }
        )
    entries += [
        {"feature_name": v.feature, "constraint_check_type": v.check, "description": v.detail} for v in report.quality
    ]
    return {"violations": entries}


def statistics_document(baseline: Baseline) -> dict[str, Any]:
    """``statistics.json`` for a baseline (KLL buckets are our reference quantile bins)."""
    features = []
    for name, summary in baseline.features.items():
        common = {"num_present": summary.count, "num_missing": summary.missing}
        if isinstance(summary, NumericSummary):
            cuts = coarse_cuts(summary.counts, baseline.settings.coarse_bins)
            counts = coarsen(summary.counts, cuts)
            bounds = coarse_bounds(summary.edges, cuts)
            buckets = [
                {"lower_bound": float(bounds[i]), "upper_bound": float(bounds[i + 1]), "count": float(counts[i])}
                for i in range(counts.size)
            ]
            features.append(
                {
                    "name": name,
                    "inferred_type": summary.inferred_type,
                    "numerical_statistics": {
                        "common": common,
                        "mean": summary.moments.mean,
                        "sum": summary.moments.mean * summary.count,
                        "std_dev": summary.moments.std,
                        "min": summary.minimum,
                        "max": summary.maximum,
                        "distribution": {
                            "kll": {
                                "buckets": buckets,
                                "sketch": {
                                    "parameters": {"c": _SKETCH_C, "k": float(summary.sketch.k)},
                                    "data": [level.tolist() for level in summary.sketch.levels],
                                },
                            }
                        },
                    },
                }
            )
        else:
            ranked = sorted(summary.counts.items(), key=lambda item: (-item[1], item[0]))
            features.append(
                {
                    "name": name,
                    "inferred_type": "String",
                    "string_statistics": {
                        "common": common,
                        "distinct_count": float(len(summary.counts) + (1 if summary.truncated else 0)),
                        "distribution": {"categorical": {"buckets": [{"value": v, "count": c} for v, c in ranked]}},
                    },
                }
            )
    return {"version": 0.0, "dataset": {"item_count": baseline.row_count}, "features": features}


def constraints_document(baseline: Baseline, policy: DriftPolicy | None = None) -> dict[str, Any]:
    """``constraints.json`` for a baseline; thresholds come from the policy's JS threshold."""
    policy = policy or DriftPolicy()
    features = []
    for name, summary in baseline.features.items():
        total = summary.count + summary.missing
        entry: dict[str, Any] = {
            "name": name,
            "inferred_type": summary.inferred_type,
            "completeness": summary.count / total if total else 1.0,
        }
        if isinstance(summary, NumericSummary):
            entry["num_constraints"] = {"is_non_negative": summary.minimum >= 0}
        elif not summary.truncated:
            entry["string_constraints"] = {"domains": sorted(summary.counts)}
        entry["monitoringConfigOverrides"] = {}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0 - policy.domain_tolerance,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": policy.js_threshold,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": policy.js_threshold,
                "categorical_drift_method": "LInfinity",
            },
        },
    }


def baseline_from_model_monitor(
    statistics: Mapping[str, Any], constraints: Mapping[str, Any] | None = None
) -> Baseline:
    """A baseline from Model Monitor's ``statistics.json`` (coarse: its KLL buckets become our bins).

    Numeric CDFs are then known only at the bucket bounds, so KS and Wasserstein carry wide error
    bounds; PSI, JS and L-infinity over the buckets are exact for the reference side.
    """
    try:
        entries = statistics["features"]
        item_count = int(statistics.get("dataset", {}).get("item_count", 0))
    except (KeyError, TypeError, AttributeError) as error:
        raise InvalidInputError("not a Model Monitor statistics document (no 'features')") from error
    domains = {
        f["name"]: f.get("string_constraints", {}).get("domains") for f in (constraints or {}).get("features", [])
    }
    features: dict[str, NumericSummary | CategoricalSummary] = {}
    bins = 2
    for entry in entries:
        name = entry.get("name")
        if "numerical_statistics" in entry:
            features[name] = _numeric_from_statistics(name, entry)
            bins = max(bins, features[name].edges.size - 1)
        elif "string_statistics" in entry:
            stats = entry["string_statistics"]
            buckets = stats.get("distribution", {}).get("categorical", {}).get("buckets", [])
            counts = {str(b["value"]): float(b["count"]) for b in buckets}
            present = float(stats["common"]["num_present"])
            other = max(present - sum(counts.values()), 0.0)
            for value in domains.get(name) or []:
                counts.setdefault(str(value), 0.0)
            features[name] = CategoricalSummary(name, "String", int(stats["common"]["num_missing"]), counts, other)
    if not features:
        raise InvalidInputError("the Model Monitor statistics describe no numeric or string feature")
    settings = BaselineSettings(fine_bins=bins, coarse_bins=bins, exact_limit=0)
    return Baseline(features, tuple(features), item_count, settings)


def _numeric_from_statistics(name: str, entry: Mapping[str, Any]) -> NumericSummary:
    stats = entry["numerical_statistics"]
    common = stats["common"]
    kll = stats.get("distribution", {}).get("kll", {})
    buckets = sorted(kll.get("buckets", []), key=lambda b: float(b["lower_bound"]))
    minimum, maximum = float(stats["min"]), float(stats["max"])
    if buckets:
        edges = np.array([float(buckets[0]["lower_bound"])] + [float(b["upper_bound"]) for b in buckets])
        counts = np.concatenate([[0.0], [float(b["count"]) for b in buckets], [0.0]])
    else:
        edges, counts = np.array([minimum, maximum]), np.array([0.0, float(common["num_present"]), 0.0])
    edges, first = np.unique(edges, return_index=True)
    if edges.size < counts.size - 1:
        counts = np.concatenate([[0.0], np.add.reduceat(counts[1:-1], np.clip(first[1:] - 1, 0, None)), [0.0]])
    sketch_data = kll.get("sketch", {})
    k = int(float(sketch_data.get("parameters", {}).get("k", 2048)))
    levels = [np.asarray(level, dtype=np.float64) for level in sketch_data.get("data", [])]
    sketch = QuantileSketch(max(k, 8), 0, levels, int(sum(level.size * 2**h for h, level in enumerate(levels))))
    present = int(common["num_present"])
    std = float(stats.get("std_dev", 0.0))
    return NumericSummary(
        name,
        str(entry.get("inferred_type", "Fractional")),
        int(common["num_missing"]),
        minimum,
        maximum,
        Moments(present, float(stats.get("mean", 0.0)), std * std * present),
        edges,
        counts,
        sketch,
        None,
        float(counts.max() / max(counts.sum(), 1.0)),
    )
