"""When a feature counts as drifted, and what the run should do about it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

OVERRIDE_KEYS = frozenset({"psi_threshold", "js_threshold", "min_samples", "ignore"})


@dataclass(frozen=True)
class FeatureThresholds:
    psi_threshold: float
    js_threshold: float
    min_samples: int
    ignore: bool = False


@dataclass(frozen=True)
class DriftPolicy:
    """A feature drifts when PSI >= ``psi_threshold`` or JS >= ``js_threshold`` (effect size) *and* its
    test (KS for numeric, chi-square for categorical) is significant at ``alpha`` after a
    Benjamini-Hochberg correction across features, with at least ``min_samples`` values on each side.

    ``retrain`` needs ``retrain_min_features`` drifted features; ``warn`` covers fewer, effects of at
    least ``warn_fraction`` of a threshold that are significant, large effects on too few samples,
    and data-quality violations.
    """

    psi_threshold: float = 0.2
    js_threshold: float = 0.1
    alpha: float = 0.05
    min_samples: int = 1000
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retrain_min_features: int = 1
    warn_fraction: float = 0.5
    completeness_tolerance: float = 0.01
    domain_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.psi_threshold <= 0 or self.js_threshold <= 0 or self.js_threshold > 1:
            raise ValueError("psi_threshold must be > 0 and js_threshold in (0, 1]")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if self.min_samples < 1 or self.retrain_min_features < 1:
            raise ValueError("min_samples and retrain_min_features must be at least 1")
        if not 0 < self.warn_fraction <= 1:
            raise ValueError("warn_fraction must be in (0, 1]")
        if not 0 <= self.completeness_tolerance <= 1 or not 0 <= self.domain_tolerance <= 1:
            raise ValueError("tolerances must be in [0, 1]")
        for name, values in self.overrides.items():
            unknown = set(values) - OVERRIDE_KEYS
            if unknown:
                raise ValueError(
                    f"override for {name!r} has unknown keys {sorted(unknown)}; use {sorted(OVERRIDE_KEYS)}"
                )
        frozen = {name: MappingProxyType(dict(values)) for name, values in self.overrides.items()}
        object.__setattr__(self, "overrides", MappingProxyType(frozen))

    def thresholds(self, feature: str) -> FeatureThresholds:
        override = self.overrides.get(feature, {})
        return FeatureThresholds(
            float(override.get("psi_threshold", self.psi_threshold)),
            float(override.get("js_threshold", self.js_threshold)),
            int(override.get("min_samples", self.min_samples)),
            bool(override.get("ignore", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi_threshold": self.psi_threshold,
            "js_threshold": self.js_threshold,
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "overrides": {name: dict(values) for name, values in self.overrides.items()},
            "retrain_min_features": self.retrain_min_features,
            "warn_fraction": self.warn_fraction,
            "completeness_tolerance": self.completeness_tolerance,
            "domain_tolerance": self.domain_tolerance,
            "correction": "benjamini-hochberg",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftPolicy:
        known = {key: value for key, value in data.items() if key != "correction"}
        return cls(**known)


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Adjusted p-values (step-up, monotone), as ``scipy.stats.false_discovery_control``."""
    values = np.asarray(pvalues, dtype=np.float64)
    if values.size == 0:
        return values
    order = np.argsort(values)
    ranked = values[order] * values.size / np.arange(1, values.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    result = np.empty_like(values)
    result[order] = np.minimum(adjusted, 1.0)
    return result
