"""Replay history period by period under each retraining strategy, in one process.

For each period after the original ones, every strategy's model in force (trained only on data
before the period) is scored on the period's purchases: users seen before the period, items they
bought in it and had not bought before (``exclude="interactions"``: had not interacted with before).
The same users and targets are used for every strategy and for the popularity reference, and no list
offers a user an excluded item (one the user already bought, or interacted with). Then each
strategy decides, from data up to the end of the period, whether to retrain for the next one.
Identical trainings (same rows, same configuration) are fitted once and charged to every strategy
that asks for them.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from driftloop.backtest.config import STRATEGIES, BacktestConfig
from driftloop.backtest.datasets import History
from driftloop.backtest.periods import period_of
from driftloop.drift import Baseline, build_baseline, compare_to_baseline
from driftloop.errors import InvalidInputError
from driftloop.model.data import ITEM, TIME, USER, at_or_after, before, holdout_items, target_rows, time_quantile
from driftloop.model.jobs import estimate_training_cost
from driftloop.model.metrics import evaluate, per_user_metrics, popularity_ranking, popularity_recommendations
from driftloop.model.recommender import Recommender, RecommenderConfig
from driftloop.storage import ParquetSource

K = 10
NDCG, HIT_RATE = f"ndcg_at_{K}", f"hit_rate_at_{K}"
POPULARITY = "popularity"


@dataclass(frozen=True)
class Period:
    label: str
    interactions: pa.Table
    features: pa.Table


def split_history(history: History, config: BacktestConfig) -> list[Period]:
    """Non-empty periods in time order; at least ``initial_periods`` + 1 of them."""
    micros = history.interactions.column(TIME).cast(pa.int64()).to_numpy()
    numbers, starts = period_of(micros.astype("datetime64[us]"), config.period)
    present = np.unique(numbers)
    lows, highs = np.searchsorted(numbers, present, "left"), np.searchsorted(numbers, present, "right")
    periods = [
        Period(
            config.period.label(starts[number]),
            history.interactions.slice(low, high - low),
            history.features.slice(low, high - low),
        )
        for number, low, high in zip(present.tolist(), lows.tolist(), highs.tolist(), strict=True)
    ]
    needed = config.initial_periods + 1
    if len(periods) < needed:
        span = f"{periods[0].label} to {periods[-1].label}"
        raise InvalidInputError(
            f"{history.name}: {len(periods)} non-empty {config.period} period(s) ({span}), but the backtest needs "
            f"at least {needed} ({config.initial_periods} original + 1 to evaluate): use a shorter --period "
            "(week, N-days) or fewer --initial-periods"
        )
    return periods


@dataclass(frozen=True)
class PeriodScore:
    """``retrained``: the model scored here was (re)trained right before this period."""

    period: str
    ndcg_at_10: float | None
    hit_rate_at_10: float | None
    users: int
    retrained: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            NDCG: self.ndcg_at_10,
            HIT_RATE: self.hit_rate_at_10,
            "users": self.users,
            "retrained": self.retrained,
        }


def _mean(scores: Sequence[PeriodScore], metric: str) -> float | None:
    values = [getattr(score, metric) for score in scores if score.users]
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class StrategyResult:
    """Means are over the evaluated periods that had users, each period weighing the same."""

    name: str
    description: str
    per_period: tuple[PeriodScore, ...]
    retrains: int
    training_seconds: float
    training_cost: float | None
    drift_checks: tuple[dict[str, Any], ...] = ()

    @property
    def mean_ndcg_at_10(self) -> float | None:
        return _mean(self.per_period, NDCG)

    @property
    def mean_hit_rate_at_10(self) -> float | None:
        return _mean(self.per_period, HIT_RATE)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "description": self.description,
            f"mean_{NDCG}": self.mean_ndcg_at_10,
            f"mean_{HIT_RATE}": self.mean_hit_rate_at_10,
            "retrains": self.retrains,
            "training_seconds": round(self.training_seconds, 3),
            "training_cost": self.training_cost,
            "per_period": [score.to_dict() for score in self.per_period],
        }
        if self.drift_checks:
            data["drift_checks"] = [dict(check) for check in self.drift_checks]
        return data


@dataclass(frozen=True)
class BacktestResult:
    dataset: str
    periods: tuple[str, ...]
    initial_periods: int
    strategies: dict[str, StrategyResult]
    popularity: StrategyResult
    initial_training_seconds: float
    config: BacktestConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "periods": list(self.periods),
            "original_periods": list(self.periods[: self.initial_periods]),
            "evaluated_periods": list(self.periods[self.initial_periods :]),
            "initial_training_seconds": round(self.initial_training_seconds, 3),
            "cost_basis": _cost_basis(self.config),
            "strategies": {name: result.to_dict() for name, result in self.strategies.items()},
            POPULARITY: self.popularity.to_dict(),
            "config": self.config.to_dict(),
        }


def _cost_basis(config: BacktestConfig) -> dict[str, Any]:
    estimate = estimate_training_cost(
        config.instance_type, 0, None, spot=False, hourly_price_usd=config.hourly_price_usd
    )
    return {
        "instance_type": config.instance_type,
        "hourly_price_usd": estimate["hourly_price_usd"],
        "price_source": estimate["price_source"],
        "billing": "measured local training seconds, each fit rounded up to a whole second, on demand",
    }


@dataclass(frozen=True)
class _Fit:
    model: Recommender
    seconds: float

    @property
    def billed_seconds(self) -> int:
        return max(1, math.ceil(self.seconds))


class _Trainer:
    """Fits models once per (rows, configuration) and remembers how long each fit took."""

    def __init__(self, periods: Sequence[Period]) -> None:
        self._periods = periods
        self._tables: dict[tuple[int, ...], pa.Table] = {}
        self._fits: dict[tuple[Any, str], _Fit] = {}

    def table(self, indices: tuple[int, ...]) -> pa.Table:
        if indices not in self._tables:
            self._tables[indices] = pa.concat_tables(self._periods[index].interactions for index in indices)
        return self._tables[indices]

    def fit(self, indices: tuple[int, ...], config: RecommenderConfig) -> _Fit:
        return self.fit_rows(indices, lambda: self.table(indices), config)

    def fit_rows(self, key: Any, rows: Callable[[], pa.Table], config: RecommenderConfig) -> _Fit:
        cache_key = (key, json.dumps(config.to_dict(), sort_keys=True))
        if cache_key not in self._fits:
            table = rows()
            started = time.perf_counter()
            model = Recommender.fit(table, config)
            self._fits[cache_key] = _Fit(model, time.perf_counter() - started)
        return self._fits[cache_key]


@dataclass
class _Ledger:
    """One strategy's running state."""

    name: str
    model: Recommender
    scores: list[PeriodScore] = field(default_factory=list)
    retrains: int = 0
    training_seconds: float = 0.0
    billed_seconds: int = 0
    retrained: bool = False
    baseline_periods: tuple[int, ...] = ()
    drift_checks: list[dict[str, Any]] = field(default_factory=list)

    def charge(self, fits: Sequence[_Fit], extra_seconds: float = 0.0) -> None:
        self.training_seconds += sum(fit.seconds for fit in fits) + extra_seconds
        self.billed_seconds += sum(fit.billed_seconds for fit in fits) + math.ceil(extra_seconds)


@dataclass(frozen=True)
class _Tuning:
    model: Recommender
    fits: tuple[_Fit, ...]
    validation_seconds: float
    chosen: RecommenderConfig


class _Backtest:
    def __init__(self, history: History, config: BacktestConfig, workdir: Path) -> None:
        self.history = history
        self.config = config
        self.periods = split_history(history, config)
        self.original = tuple(range(config.initial_periods))
        self.trainer = _Trainer(self.periods)
        self.workdir = workdir
        self._tuning: _Tuning | None = None
        self._baselines: dict[tuple[int, ...], Baseline] = {}
        self._feature_paths: dict[int, str] = {}
        if "D" in config.strategies and history.features.num_columns == 0:
            raise InvalidInputError(
                f"{history.name}: strategy D needs feature columns besides user, item and time to check for drift"
            )

    def run(self) -> BacktestResult:
        initial = self.trainer.fit(self.original, self.config.model)
        ledgers = [_Ledger(name, initial.model) for name in self.config.strategies]
        popularity_scores: list[PeriodScore] = []
        known_users: set[str] = set()
        seen: dict[str, set[str]] = {}
        targets = self.config.model.target_event_types
        for index in self.original:
            self._remember(self.periods[index].interactions, known_users, seen)
        for p in range(len(self.original), len(self.periods)):
            if p > len(self.original):
                for ledger in ledgers:
                    self._decide(ledger, p)
            period = self.periods[p]
            holdout = _holdout(period.interactions, targets, known_users, seen)
            users = sorted(holdout)
            ranking = popularity_ranking(self.trainer.table(tuple(range(p))), targets)
            popular = popularity_recommendations(ranking, users, seen, K)
            popularity_scores.append(_score(period.label, popular, holdout, retrained=False))
            for ledger in ledgers:
                lists = _unseen_top_k(ledger.model, users, seen)
                ledger.scores.append(_score(period.label, lists, holdout, ledger.retrained))
            self._remember(period.interactions, known_users, seen)
        return BacktestResult(
            dataset=self.history.name,
            periods=tuple(period.label for period in self.periods),
            initial_periods=len(self.original),
            strategies={ledger.name: self._result(ledger) for ledger in ledgers},
            popularity=StrategyResult(
                POPULARITY,
                "reference: the most bought items so far that the user has not seen",
                tuple(popularity_scores),
                0,
                0.0,
                None,
            ),
            initial_training_seconds=initial.seconds,
            config=self.config,
        )

    def _remember(self, interactions: pa.Table, known_users: set[str], seen: dict[str, set[str]]) -> None:
        """Add a period's users, and the items each user has now bought (or interacted with)."""
        known_users.update(interactions.column(USER).unique().to_pylist())
        if self.config.exclude == "purchases":
            interactions = target_rows(interactions, self.config.model.target_event_types)
        users, items = interactions.column(USER).to_pylist(), interactions.column(ITEM).to_pylist()
        for user, item in zip(users, items, strict=True):
            seen.setdefault(user, set()).add(item)

    def _result(self, ledger: _Ledger) -> StrategyResult:
        cost = estimate_training_cost(
            self.config.instance_type,
            ledger.billed_seconds,
            None,
            spot=False,
            hourly_price_usd=self.config.hourly_price_usd,
        )["cost_usd"]
        return StrategyResult(
            ledger.name,
            STRATEGIES[ledger.name],
            tuple(ledger.scores),
            ledger.retrains,
            ledger.training_seconds,
            cost,
            tuple(ledger.drift_checks),
        )

    def _scheduled(self, p: int) -> bool:
        return (p - len(self.original)) % self.config.every_k == 0

    def _decide(self, ledger: _Ledger, p: int) -> None:
        """Before period ``p``: retrain or keep the model, from data of periods ``< p``."""
        config = self.config
        so_far = tuple(range(p))
        ledger.retrained = False
        if ledger.name == "every":
            self._install(ledger, [self.trainer.fit(so_far, config.model)])
        elif ledger.name == "A" and self._scheduled(p):
            stronger = replace(config.model, l2=config.model.l2 * config.regularisation_factor)
            self._install(ledger, [self.trainer.fit(self.original, stronger)])
        elif ledger.name == "B" and self._scheduled(p):
            tuning = self._tune()
            ledger.charge(tuning.fits, tuning.validation_seconds)
            ledger.model, ledger.retrained = tuning.model, True
            ledger.retrains += 1
        elif ledger.name == "C" and self._scheduled(p):
            newest = tuple(range(max(len(self.original), p - config.newest_periods), p))
            challenger = replace(config.model, algorithm=config.challenger_algorithm)
            self._install(ledger, [self.trainer.fit(newest, challenger)])
        elif ledger.name == "D":
            self._check_drift(ledger, p)

    def _install(self, ledger: _Ledger, fits: Sequence[_Fit]) -> None:
        ledger.charge(fits)
        ledger.model, ledger.retrained = fits[-1].model, True
        ledger.retrains += 1

    def _check_drift(self, ledger: _Ledger, p: int) -> None:
        reference = ledger.baseline_periods or self.original
        started = time.perf_counter()
        report = compare_to_baseline(
            self._baseline(reference), self._features_source((p - 1,)), self.config.drift_policy
        )
        ledger.drift_checks.append(
            {
                "period": self.periods[p - 1].label,
                "against": [self.periods[index].label for index in (reference[0], reference[-1])],
                "decision": report.decision,
                "drifted_features": report.drifted_features,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        if report.decision == "retrain":
            ledger.baseline_periods = tuple(range(p))
            self._install(ledger, [self.trainer.fit(ledger.baseline_periods, self.config.model)])

    def _baseline(self, indices: tuple[int, ...]) -> Baseline:
        if indices not in self._baselines:
            self._baselines[indices] = build_baseline(self._features_source(indices))
        return self._baselines[indices]

    def _features_source(self, indices: tuple[int, ...]) -> ParquetSource:
        for index in indices:
            if index not in self._feature_paths:
                path = str(self.workdir / f"period-{index:04d}.parquet")
                pq.write_table(self.periods[index].features, path)
                self._feature_paths[index] = path
        return ParquetSource(pafs.LocalFileSystem(), tuple(self._feature_paths[index] for index in indices))

    def _tune(self) -> _Tuning:
        """B's search: fit each candidate on the original data before the validation cut, keep the one
        with the best NDCG@10 on the rest (the first on ties), refit it on all the original data. The
        inputs never change, so neither does the outcome: it is computed once and charged every time."""
        if self._tuning is None:
            config = self.config
            original = self.trainer.table(self.original)
            cutoff = time_quantile(original, 1 - config.validation_fraction)
            fit_rows, validation = before(original, cutoff), at_or_after(original, cutoff)
            fits, validation_seconds, best, best_score = [], 0.0, config.model, -1.0
            for factor in config.tuning_l2_factors:
                for half_life in config.tuning_half_lives:
                    candidate = replace(config.model, l2=config.model.l2 * factor, recency_half_life_days=half_life)
                    fit = self.trainer.fit_rows(("validation", self.original), lambda: fit_rows, candidate)
                    started = time.perf_counter()
                    score = float(evaluate(fit.model, fit_rows, validation, k=K).model[NDCG])
                    validation_seconds += time.perf_counter() - started
                    fits.append(fit)
                    if score > best_score:
                        best, best_score = candidate, score
            final = self.trainer.fit(self.original, best)
            self._tuning = _Tuning(final.model, (*fits, final), validation_seconds, best)
        return self._tuning


def _holdout(
    interactions: pa.Table, targets: Sequence[str], known_users: set[str], seen: dict[str, set[str]]
) -> dict[str, set[str]]:
    holdout = {}
    for user, items in holdout_items(interactions, targets).items():
        if user in known_users:
            fresh = items - seen.get(user, set())
            if fresh:
                holdout[user] = fresh
    return holdout


def _unseen_top_k(model: Recommender, users: Sequence[str], seen: dict[str, set[str]]) -> dict[str, list[str]]:
    """The model's top ``K`` per user without the user's excluded items, which the model may not know
    (it excludes only the purchases in its own training data)."""
    longest = max((len(seen.get(user, ())) for user in users), default=0)
    ranked = model.recommend(users, k=min(K + longest, max(model.n_items, 1)))
    return {
        user: [item for item in items if item not in seen.get(user, ())][:K]
        for user, items in zip(users, ranked, strict=True)
    }


def _score(label: str, lists: dict[str, list[str]], holdout: dict[str, set[str]], retrained: bool) -> PeriodScore:
    if not holdout:
        return PeriodScore(label, None, None, 0, retrained)
    metrics = per_user_metrics(lists, holdout, K)
    return PeriodScore(label, float(metrics[NDCG].mean()), float(metrics[HIT_RATE].mean()), len(holdout), retrained)


def run_backtest(history: History, config: BacktestConfig | None = None) -> BacktestResult:
    """Replay ``history`` under every strategy of ``config``; deterministic except the measured seconds
    (and so the training cost)."""
    with tempfile.TemporaryDirectory(prefix="driftloop-backtest-") as workdir:
        return _Backtest(history, config or BacktestConfig(), Path(workdir)).run()
