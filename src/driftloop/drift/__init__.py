"""Data and concept drift: reference profiles, streaming comparison, decision policy, reports."""

from driftloop.drift.baseline import (
    Baseline,
    BaselineSettings,
    CategoricalSummary,
    NumericSummary,
    build_baseline,
)
from driftloop.drift.compare import DriftReport, FeatureDrift, QualityViolation, compare_to_baseline
from driftloop.drift.policy import DriftPolicy

__all__ = [
    "Baseline",
    "BaselineSettings",
    "CategoricalSummary",
    "DriftPolicy",
    "DriftReport",
    "FeatureDrift",
    "NumericSummary",
    "QualityViolation",
    "build_baseline",
    "compare_to_baseline",
]
