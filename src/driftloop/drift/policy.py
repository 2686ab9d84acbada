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
    """When a feature counts as drifted, and what the run should do about it.

    A feature drifts when PSI >= ``psi_threshold`` or JS >= ``js_threshold`` (effect size) *and* its
    test (KS for numeric, chi-square for categorical) is significant at ``alpha`` after a
    Benjamini-Hochberg correction across features (``benjamini_hochberg``), with at least
    ``min_samples`` values on each side.

    ``retrain`` needs ``retrain_min_features`` drifted features; ``warn`` covers fewer, effects of at
    least ``warn_fraction`` of a threshold that are significant, large effects on too few samples,
    and data-quality violations.

    Parameters
    ----------
    psi_threshold
        Population stability index from which a shift is large enough to matter (> 0).
    js_threshold
        Jensen-Shannon distance from which a shift is large enough to matter, in (0, 1].
    alpha
        False discovery rate of the per-feature tests, in (0, 1).
    min_samples
        Values each of the baseline and the new data need for a feature to be judged.
    overrides
        Per-feature ``psi_threshold``, ``js_threshold``, ``min_samples`` or ``ignore``.
    retrain_min_features
        Drifted features that make the run retrain.
    warn_fraction
        Share of a threshold from which a significant effect is worth a warning, in (0, 1].
    completeness_tolerance
        Drop in a feature's share of non-missing values tolerated before a data-quality warning.
    domain_tolerance
        Share of new categorical values outside the baseline's domain tolerated.

    Example
    -------
    >>> from driftloop.drift.policy import DriftPolicy
    >>> policy = DriftPolicy(overrides={"price": {"psi_threshold": 0.5}, "user_id": {"ignore": True}})
    >>> policy.thresholds("price").psi_threshold, policy.thresholds("genre").psi_threshold
    (0.5, 0.2)
    >>> DriftPolicy.from_dict(policy.to_dict()) == policy
    True
    >>> DriftPolicy(overrides={"price": {"psi": 0.5}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: override for 'price' has unknown keys ['psi']; use ['ignore', 'js_threshold', ...]

    References
    ----------
    Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
    powerful approach to multiple testing. Journal of the Royal Statistical Society B 57(1), 289-300.
    Yurdakul, B. (2018). Statistical properties of population stability index. PhD dissertation,
    Western Michigan University.
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
    """Benjamini-Hochberg adjusted p-values, as ``scipy.stats.false_discovery_control``.

    The ``i``-th smallest of ``m`` p-values becomes ``min over j >= i of p_(j) m / j`` (step-up, so the
    adjusted values keep the p-values' order), capped at 1. Rejecting every hypothesis whose adjusted
    p-value is at most ``alpha`` keeps the expected share of false rejections among the rejections at
    or below ``alpha`` for independent (or positively dependent) tests.

    Parameters
    ----------
    pvalues
        One p-value per hypothesis, in any order; the result has the same order.

    Example
    -------
    >>> from driftloop.drift.policy import benjamini_hochberg
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]

    References
    ----------
    Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
    powerful approach to multiple testing. Journal of the Royal Statistical Society B 57(1), 289-300.
    Benjamini, Y. and Yekutieli, D. (2001). The control of the false discovery rate in multiple
    testing under dependency. Annals of Statistics 29(4), 1165-1188.
    """
    values = np.asarray(pvalues, dtype=np.float64)
    if values.size == 0:
        return values
    order = np.argsort(values)
    ranked = values[order] * values.size / np.arange(1, values.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    result = np.empty_like(values)
    result[order] = np.minimum(adjusted, 1.0)
    return result
