"""Money on both sides of the retrain decision: what a retrain costs, and what a stale model costs.

Accuracy is NDCG@10; one *point* is 0.01 of it. A model that is ``shortfall`` NDCG@10 below a fresh one
for ``days`` of traffic costs ``shortfall / 0.01 x value_per_point x days`` dollars of lost value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from driftloop.errors import ConfigurationError

NDCG_POINT = 0.01
DEFAULT_VALUE_PER_POINT = 0.5
DEFAULT_STARTUP_SECONDS = 180.0
# The challenger's endpoint variant (the template's default ml.m5.large, $0.115/h) for a 7-day A/B test.
DEFAULT_AB_EXPOSURE_COST = round(7 * 24 * 0.115, 2)
DEFAULT_JOB_SECONDS = 120.0


@dataclass(frozen=True)
class RetrainCostModel:
    """Both costs of the retrain decision in USD.

    Parameters
    ----------
    value_per_point
        USD lost per NDCG@10 point (0.01) of shortfall per day of traffic (> 0). See docs/retrain-decision.md
        for how to choose it from a shop's recommendation-driven revenue.
    hourly_price
        Training instance USD per hour (> 0).
    startup_seconds
        Billed start-up per training job (image pull, data download), added to each job's duration (>= 0).
    ab_exposure_cost
        USD of expected loss while the A/B test sends traffic to a challenger that may be worse (>= 0).
    default_job_seconds
        Job duration assumed before any job has been measured (> 0).

    Example
    -------
    >>> cost = RetrainCostModel(value_per_point=0.5, hourly_price=0.23, startup_seconds=180, ab_exposure_cost=0.5)
    >>> round(cost.retraining_cost([60, 120]), 4)   # (mean 90 s + 180 s) x $0.23/h + $0.5
    0.5172
    >>> round(cost.staleness_cost(0.004, days=7), 4)  # 0.4 points x $0.5 x 7 days
    1.4
    >>> RetrainCostModel(value_per_point=-1, hourly_price=0.23)
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: value_per_point must be a number > 0 (USD per NDCG@10 point per day), not -1

    References
    ----------
    Mahadevan, A. & Mathioudakis, M. (2024). Cost-aware retraining for machine learning. Knowledge-Based
    Systems 293, 111610: staleness and retraining costs in one currency.
    """

    value_per_point: float = DEFAULT_VALUE_PER_POINT
    hourly_price: float = 0.23
    startup_seconds: float = DEFAULT_STARTUP_SECONDS
    ab_exposure_cost: float = DEFAULT_AB_EXPOSURE_COST
    default_job_seconds: float = DEFAULT_JOB_SECONDS

    def __post_init__(self) -> None:
        _require(self.value_per_point, "value_per_point", "(USD per NDCG@10 point per day)", positive=True)
        _require(self.hourly_price, "hourly_price", "(training instance USD per hour)", positive=True)
        _require(self.startup_seconds, "startup_seconds", "(billed start-up per job)", positive=False)
        _require(self.ab_exposure_cost, "ab_exposure_cost", "(USD per A/B test)", positive=False)
        _require(
            self.default_job_seconds, "default_job_seconds", "(job duration before any is measured)", positive=True
        )

    def job_cost(self, job_seconds: float) -> float:
        """USD of one training job that ran ``job_seconds`` (plus the start-up)."""
        return (max(job_seconds, 0.0) + self.startup_seconds) * self.hourly_price / 3600.0

    def retraining_cost(self, recent_job_seconds: Sequence[float]) -> float:
        """USD of the next retrain: the mean of the recent jobs' durations (or ``default_job_seconds``)
        plus start-up, at the hourly price, plus the A/B test's exposure."""
        measured = [float(seconds) for seconds in recent_job_seconds if math.isfinite(seconds) and seconds >= 0]
        seconds = sum(measured) / len(measured) if measured else self.default_job_seconds
        return self.job_cost(seconds) + self.ab_exposure_cost

    def staleness_cost(self, shortfall_ndcg: float, days: float) -> float:
        """USD lost by serving a model ``shortfall_ndcg`` below a fresh one for ``days`` (negatives count 0)."""
        return max(shortfall_ndcg, 0.0) / NDCG_POINT * self.value_per_point * max(days, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainCostModel:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def _require(value: Any, name: str, meaning: str, *, positive: bool) -> None:
    valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not valid or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigurationError(f"{name} must be a number {bound} {meaning}, not {value!r}")
