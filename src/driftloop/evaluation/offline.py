"""Offline gate: does the challenger beat the champion on the same time-split holdout?

Per-user metric values are compared pairwise (the same users, the same held-out interactions)
and the mean difference gets a percentile bootstrap interval from resampling users
(``paired_bootstrap``); ``offline_gate`` decides from those intervals under an ``OfflineGateConfig``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from driftloop.errors import ConfigurationError, InvalidInputError

MODELS = ("champion", "challenger")
# Bootstrap replicates are drawn in blocks of about this many numbers, to bound memory.
_BLOCK_ELEMENTS = 1 << 18
# Measured cost of one distinct value in a multinomial draw, in units of one resampled user.
_COST_PER_DISTINCT_VALUE = 10


@dataclass(frozen=True)
class OfflineGateConfig:
    """How the offline gate judges a challenger.

    Parameters
    ----------
    primary_metric
        The per-user metric that decides (its name in the evaluation's per-user output).
    margin
        The challenger's mean gain on ``primary_metric`` must be at least this (absolute, >= 0).
    confidence
        Level of the two-sided bootstrap intervals, in (0, 1).
    n_bootstrap
        Bootstrap resamples of users per metric (at least 100).
    seed
        Seed of the resampling, so that a decision can be recomputed exactly.
    min_users
        Holdout users the gate needs before it judges at all (at least 2).
    block_on_secondary_regression
        Fail when another metric's whole interval is below zero.
    """

    primary_metric: str = "ndcg_at_10"
    margin: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 2000
    seed: int = 0
    min_users: int = 50
    block_on_secondary_regression: bool = True

    def __post_init__(self) -> None:
        if not self.primary_metric:
            raise ConfigurationError("primary_metric must be named")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise ConfigurationError(f"margin must be a non-negative number, got {self.margin}")
        if not 0 < self.confidence < 1:
            raise ConfigurationError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.n_bootstrap < 100:
            raise ConfigurationError(f"n_bootstrap must be at least 100, got {self.n_bootstrap}")
        if self.min_users < 2:
            raise ConfigurationError(f"min_users must be at least 2, got {self.min_users}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of (challenger - champion) over users, with its bootstrap interval.

    ``fraction_not_positive`` is the share of bootstrap means at or below zero: a one-sided,
    p-value-like measure of how plausible "the challenger is not better" is.
    """

    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    fraction_not_positive: float
    n_users: int
    n_bootstrap: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """``baseline`` is ``"champion"``, or ``"popularity"`` on a first deployment."""

    passed: bool
    reason: str
    baseline: str
    primary_metric: str
    n_users: int
    metrics: dict[str, dict[str, float]]
    differences: dict[str, BootstrapResult] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_vector(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one value per user, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{name} has missing or infinite values")
    return array


def _bootstrap_means(differences: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_bootstrap`` resamples of users, drawn in whichever of two exact ways is cheaper.

    Per-user differences are mostly ties (most users score the same under both models, often 0), so:
    either draw how often each distinct value is picked (a multinomial), or draw how many picks fall
    outside the most common value (a binomial) and resample only those users.
    """
    n_users = differences.size
    values, counts = np.unique(differences, return_counts=True)
    mode = int(np.argmax(counts))
    n_other = n_users - int(counts[mode])
    if values.size * _COST_PER_DISTINCT_VALUE <= n_other:
        return _multinomial_means(values, counts / n_users, n_users, n_bootstrap, rng)
    return values[mode] + _resampled_means(
        differences[differences != values[mode]] - values[mode], n_users, n_bootstrap, rng
    )


def _multinomial_means(
    values: np.ndarray, probabilities: np.ndarray, n_users: int, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    means = np.empty(n_bootstrap)
    block = max(1, _BLOCK_ELEMENTS // values.size)
    for start in range(0, n_bootstrap, block):
        stop = min(start + block, n_bootstrap)
        means[start:stop] = rng.multinomial(n_users, probabilities, size=stop - start) @ values / n_users
    return means


def _resampled_means(others: np.ndarray, n_users: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of ``n_users`` values that are 0 except for the ``others``."""
    if others.size == 0:
        return np.zeros(n_bootstrap)
    means = np.empty(n_bootstrap)
    block = max(1, _BLOCK_ELEMENTS // others.size)
    for start in range(0, n_bootstrap, block):
        stop = min(start + block, n_bootstrap)
        picks = rng.binomial(n_users, others.size / n_users, size=stop - start)
        drawn = others[rng.integers(0, others.size, size=int(picks.sum()))]
        running = np.concatenate(([0.0], np.cumsum(drawn)))
        ends = np.cumsum(picks)
        means[start:stop] = (running[ends] - running[ends - picks]) / n_users
    return means


def paired_bootstrap(
    champion: Any,
    challenger: Any,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap interval of mean(challenger - champion); arrays are aligned by user.

    Users are resampled with replacement, each carrying both models' values, so the interval accounts
    for the pairing (the same users, the same held-out interactions).

    Parameters
    ----------
    champion, challenger
        One finite metric value per user, in the same user order.
    n_bootstrap
        Resamples drawn.
    confidence
        Level of the two-sided interval, in (0, 1).
    seed
        Seed of the resampling: the same inputs and seed give the same interval.

    Example
    -------
    >>> from driftloop.evaluation.offline import paired_bootstrap
    >>> champion = [0.0, 0.2, 0.5, 0.1, 0.0, 0.3, 0.4, 0.0, 0.6, 0.2]
    >>> challenger = [0.1, 0.3, 0.5, 0.2, 0.0, 0.4, 0.5, 0.1, 0.6, 0.3]
    >>> result = paired_bootstrap(champion, challenger, n_bootstrap=1000)
    >>> round(result.mean_difference, 2), round(result.ci_low, 2), round(result.ci_high, 2)
    (0.07, 0.04, 0.1)
    >>> paired_bootstrap([0.1, 0.2], [0.3])
    Traceback (most recent call last):
    ...
    driftloop.errors.InvalidInputError: per-user arrays differ in length: champion 2, challenger 1

    References
    ----------
    Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall,
    chapter 13 (the percentile interval).
    Smucker, M. D., Allan, J. and Carterette, B. (2007). A comparison of statistical significance
    tests for information retrieval evaluation. CIKM 2007, 623-632.
    """
    champion_values = _as_vector(champion, "champion")
    challenger_values = _as_vector(challenger, "challenger")
    if champion_values.size != challenger_values.size:
        raise InvalidInputError(
            f"per-user arrays differ in length: champion {champion_values.size}, challenger {challenger_values.size}"
        )
    if champion_values.size == 0:
        raise InvalidInputError("no users to compare")
    if n_bootstrap < 1:
        raise ConfigurationError(f"n_bootstrap must be positive, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be in (0, 1), got {confidence}")
    differences = challenger_values - champion_values
    means = _bootstrap_means(differences, n_bootstrap, np.random.default_rng(seed))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return BootstrapResult(
        mean_difference=float(differences.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        fraction_not_positive=float(np.mean(means <= 0)),
        n_users=int(differences.size),
        n_bootstrap=n_bootstrap,
    )


def _validated_per_user(
    per_user: Mapping[str, Mapping[str, Any]], primary_metric: str
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    missing_models = [model for model in MODELS if model not in per_user]
    if missing_models:
        raise InvalidInputError(f"per-user metrics lack {missing_models}; expected keys {list(MODELS)}")
    names = {model: set(per_user[model]) for model in MODELS}
    if names["champion"] != names["challenger"]:
        raise InvalidInputError(
            f"champion and challenger report different metrics: "
            f"{sorted(names['champion'])} vs {sorted(names['challenger'])}"
        )
    if primary_metric not in names["champion"]:
        raise InvalidInputError(f"primary metric {primary_metric!r} not among {sorted(names['champion'])}")
    ordered = [primary_metric, *sorted(names["champion"] - {primary_metric})]
    arrays = {
        model: {metric: _as_vector(per_user[model][metric], f"{model}.{metric}") for metric in ordered}
        for model in MODELS
    }
    lengths = {array.size for by_metric in arrays.values() for array in by_metric.values()}
    if len(lengths) != 1:
        raise InvalidInputError(f"per-user arrays must all have one value per holdout user, got lengths {lengths}")
    return arrays, lengths.pop()


def offline_gate(
    per_user: Mapping[str, Mapping[str, Any]],
    config: OfflineGateConfig,
    first_deployment: bool = False,
) -> GateDecision:
    """Pass only if the challenger beats the baseline on the primary metric by ``margin`` on average
    with the interval's lower bound above zero (and, if configured, no other metric is significantly
    worse). On a first deployment, ``per_user["champion"]`` holds the popularity baseline's values.

    Example
    -------
    >>> import numpy as np
    >>> from driftloop.evaluation.offline import OfflineGateConfig, offline_gate
    >>> rng = np.random.default_rng(1)
    >>> champion = rng.random(200)
    >>> challenger = champion + rng.normal(0.02, 0.05, 200)
    >>> decision = offline_gate({"champion": {"ndcg_at_10": champion}, "challenger": {"ndcg_at_10": challenger}},
    ...                         OfflineGateConfig(n_bootstrap=1000))
    >>> decision.passed, decision.differences["ndcg_at_10"].ci_low > 0
    (True, True)
    >>> offline_gate({"champion": {"ndcg_at_10": [0.1]}, "challenger": {"ndcg_at_10": [0.2]}},
    ...              OfflineGateConfig()).reason
    'holdout has 1 users; the gate needs at least 50'
    """
    arrays, n_users = _validated_per_user(per_user, config.primary_metric)
    baseline = "popularity" if first_deployment else "champion"
    means = {model: {metric: float(values.mean()) for metric, values in arrays[model].items()} for model in MODELS}

    def decide(passed: bool, reason: str, differences: dict[str, BootstrapResult]) -> GateDecision:
        return GateDecision(
            passed, reason, baseline, config.primary_metric, n_users, means, differences, config.to_dict()
        )

    if n_users < config.min_users:
        return decide(False, f"holdout has {n_users} users; the gate needs at least {config.min_users}", {})
    differences = {
        metric: paired_bootstrap(
            arrays["champion"][metric],
            arrays["challenger"][metric],
            config.n_bootstrap,
            config.confidence,
            config.seed,
        )
        for metric in arrays["champion"]
    }
    primary = differences[config.primary_metric]
    summary = (
        f"{config.primary_metric} {means['challenger'][config.primary_metric]:.4f} vs {baseline} "
        f"{means['champion'][config.primary_metric]:.4f}, difference {primary.mean_difference:+.4f} "
        f"({config.confidence:.0%} CI [{primary.ci_low:+.4f}, {primary.ci_high:+.4f}], {n_users} users)"
    )
    if primary.ci_low <= 0:
        return decide(False, f"challenger is not significantly better than the {baseline}: {summary}", differences)
    if primary.mean_difference < config.margin:
        return decide(False, f"challenger's gain is below the margin {config.margin}: {summary}", differences)
    regressions = [
        f"{metric} {result.mean_difference:+.4f} (CI high {result.ci_high:+.4f})"
        for metric, result in differences.items()
        if metric != config.primary_metric and result.ci_high < 0
    ]
    if regressions and config.block_on_secondary_regression:
        return decide(
            False,
            f"challenger is significantly worse on {', '.join(regressions)} despite {summary}",
            differences,
        )
    return decide(True, f"challenger beats the {baseline}: {summary}", differences)
