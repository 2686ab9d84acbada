"""How a backtest runs: which strategies, how history is cut, and each strategy's knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftloop.backtest.periods import PeriodSpec
from driftloop.decision import RetrainCostModel
from driftloop.decision.cost import DEFAULT_AB_EXPOSURE_COST, DEFAULT_STARTUP_SECONDS, DEFAULT_VALUE_PER_POINT
from driftloop.drift import DriftPolicy
from driftloop.errors import InvalidInputError
from driftloop.model.jobs import TRAINING_PRICES_USD_PER_HOUR
from driftloop.model.recommender import ALGORITHMS, RecommenderConfig

STRATEGIES = {
    "never": "the original model forever",
    "every": "retrain every period on all data so far",
    "A": "every K periods, retrain on the original data only with stronger regularisation",
    "B": "every K periods, tune hyperparameters on a validation slice of the original data; train on the original",
    "C": "every K periods, train a different algorithm from scratch on the newest periods only",
    "D": "when driftloop's drift check says retrain, train on the original plus all new data",
    "auto": "driftloop's cost-aware rule (CARA cumulative threshold, default parameters); train on all data",
    "schedule": "every K periods, retrain on all data so far",
    "oracle": "hindsight: the keep/retrain schedule with the lowest training + staleness cost",
}

EXCLUSIONS = ("purchases", "interactions")


@dataclass(frozen=True)
class BacktestConfig:
    """``every_k``: A, B, C and ``schedule`` act before every K-th new period. ``initial_periods``: how many leading
    periods form the original training data. ``model`` is the champion's configuration; A multiplies
    its l2 by ``regularisation_factor``; B searches ``tuning_l2_factors`` x ``tuning_half_lives``,
    validating on the last ``validation_fraction`` of the original events; C trains
    ``challenger_algorithm`` on the newest ``newest_periods`` periods. ``exclude``: what a user is
    never recommended again, and never scored on: ``purchases`` (a shop: viewed items may still be
    bought) or ``interactions`` (e.g. MovieLens, where every rating means the film was watched).
    ``value_per_point``, ``startup_seconds`` and ``ab_exposure_cost`` price retraining and staleness
    (:class:`driftloop.decision.RetrainCostModel`) for every strategy and for ``auto``'s decisions."""

    strategies: tuple[str, ...] = tuple(STRATEGIES)
    period: PeriodSpec = field(default_factory=lambda: PeriodSpec("month"))
    initial_periods: int = 1
    every_k: int = 3
    model: RecommenderConfig = field(default_factory=RecommenderConfig)
    regularisation_factor: float = 4.0
    tuning_l2_factors: tuple[float, ...] = (0.25, 1.0, 4.0, 16.0)
    tuning_half_lives: tuple[float | None, ...] = (30.0, 90.0, None)
    validation_fraction: float = 0.2
    challenger_algorithm: str = "item_knn"
    newest_periods: int = 1
    drift_policy: DriftPolicy = field(default_factory=DriftPolicy)
    instance_type: str = "ml.m5.xlarge"
    hourly_price_usd: float | None = None
    exclude: str = "purchases"
    value_per_point: float = DEFAULT_VALUE_PER_POINT
    startup_seconds: float = DEFAULT_STARTUP_SECONDS
    ab_exposure_cost: float = DEFAULT_AB_EXPOSURE_COST

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", tuple(self.strategies))
        unknown = [name for name in self.strategies if name not in STRATEGIES]
        if unknown or not self.strategies:
            raise InvalidInputError(f"strategies must be some of {list(STRATEGIES)}, not {list(self.strategies)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise InvalidInputError(f"strategies repeat: {list(self.strategies)}")
        if self.initial_periods < 1 or self.every_k < 1 or self.newest_periods < 1:
            raise InvalidInputError("initial_periods, every_k and newest_periods must be >= 1")
        if self.regularisation_factor <= 0 or any(factor <= 0 for factor in self.tuning_l2_factors):
            raise InvalidInputError("regularisation and tuning l2 factors must be > 0")
        if not self.tuning_l2_factors or not self.tuning_half_lives:
            raise InvalidInputError("B needs at least one l2 factor and one half-life to try")
        if not 0 < self.validation_fraction < 1:
            raise InvalidInputError(f"validation_fraction must be in (0, 1), not {self.validation_fraction}")
        if self.challenger_algorithm not in ALGORITHMS or self.challenger_algorithm == self.model.algorithm:
            raise InvalidInputError(
                f"challenger_algorithm must be one of {ALGORITHMS} other than the champion's {self.model.algorithm!r}"
            )
        if self.hourly_price_usd is None and self.instance_type not in TRAINING_PRICES_USD_PER_HOUR:
            raise InvalidInputError(f"no list price for {self.instance_type}: give hourly_price_usd")
        if self.exclude not in EXCLUSIONS:
            raise InvalidInputError(f"exclude must be one of {EXCLUSIONS}, not {self.exclude!r}")
        self.cost_model  # noqa: B018 - rejects a price or value that makes no sense now, not mid-run

    @property
    def cost_model(self) -> RetrainCostModel:
        hourly = self.hourly_price_usd
        return RetrainCostModel(
            value_per_point=self.value_per_point,
            hourly_price=TRAINING_PRICES_USD_PER_HOUR[self.instance_type] if hourly is None else hourly,
            startup_seconds=self.startup_seconds,
            ab_exposure_cost=self.ab_exposure_cost,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategies": list(self.strategies),
            "period": str(self.period),
            "initial_periods": self.initial_periods,
            "every_k": self.every_k,
            "model": self.model.to_dict(),
            "regularisation_factor": self.regularisation_factor,
            "tuning_l2_factors": list(self.tuning_l2_factors),
            "tuning_half_lives": list(self.tuning_half_lives),
            "validation_fraction": self.validation_fraction,
            "challenger_algorithm": self.challenger_algorithm,
            "newest_periods": self.newest_periods,
            "drift_policy": self.drift_policy.to_dict(),
            "instance_type": self.instance_type,
            "hourly_price_usd": self.hourly_price_usd,
            "exclude": self.exclude,
            "cost_model": self.cost_model.to_dict(),
        }
