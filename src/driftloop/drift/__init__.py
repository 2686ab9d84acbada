"""Data and concept drift: reference profiles, streaming comparison, decision policy, reports.

The names below load their module on first use (PEP 562), so that importing a light submodule such as
``driftloop.drift.metrics`` does not load numpy and pyarrow into a Lambda that never compares data.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Baseline": "baseline",
    "BaselineSettings": "baseline",
    "CategoricalSummary": "baseline",
    "NumericSummary": "baseline",
    "build_baseline": "baseline",
    "DriftReport": "compare",
    "FeatureDrift": "compare",
    "QualityViolation": "compare",
    "compare_to_baseline": "compare",
    "DriftPolicy": "policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
