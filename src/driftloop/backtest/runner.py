"""Replay history period by period under each retraining strategy, in one process.

For each period after the original ones, every strategy's model in force (trained only on data
before the period) is scored on the period's purchases: users seen before the period, items they
bought in it and had not bought before (``exclude="interactions"``: had not interacted with before).
Each model scores a user with the user's interactions since the model's training data ended (the
request's ``recent`` items, see :meth:`Recommender.recommend`), as the endpoint does: a model that is
not retrained still follows what customers did since, and a retrain is worth only what the model
itself learns. The same users and targets are used for every strategy and for the popularity
reference, and no list offers a user an excluded item. Then each strategy decides, from data up to
the end of the period, whether to retrain for the next one.

Every model trained on all data before some period is fitted and scored on every later period (the
*score matrix*): ``every``, ``D``, ``auto``, ``schedule`` and ``oracle`` read their scores from it, and
it prices every strategy's staleness against the best model available (see
:mod:`driftloop.backtest.hindsight`). Identical trainings are fitted once and charged to every
strategy that asks for them.
"""

from __future__ import annotations

import bisect
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from driftloop.backtest.config import STRATEGIES, BacktestConfig
from driftloop.backtest.datasets import History
from driftloop.backtest.hindsight import (
    HeldOutCosts,
    fresh_scores,
    frontier,
    held_out_costs,
    oracle_schedule,
    staleness_of,
)
from driftloop.backtest.periods import period_of
from driftloop.decision import (
    ChallengerGain,
    CostAwareRetrainPolicy,
    RetrainCostModel,
    RetrainPolicy,
    challenger_cut,
    measure_challenger_gain,
    measure_signals,
)
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
ORACLE = "oracle"
_MICROS_PER_DAY = 86_400 * 1_000_000
_FROM_MATRIX = ("every", "D", "auto", "schedule")


@dataclass(frozen=True)
class Period:
    label: str
    interactions: pa.Table
    features: pa.Table
    start_micros: int
    end_micros: int

    @property
    def days(self) -> float:
        return (self.end_micros - self.start_micros) / _MICROS_PER_DAY


def split_history(history: History, config: BacktestConfig) -> list[Period]:
    """Non-empty periods in time order; at least ``initial_periods`` + 1 of them."""
    micros = history.interactions.column(TIME).cast(pa.int64()).to_numpy()
    numbers, starts = period_of(micros.astype("datetime64[us]"), config.period)
    present = np.unique(numbers)
    lows, highs = np.searchsorted(numbers, present, "left"), np.searchsorted(numbers, present, "right")
    bounds = starts.astype(np.int64)
    periods = [
        Period(
            config.period.label(starts[number]),
            history.interactions.slice(low, high - low),
            history.features.slice(low, high - low),
            int(bounds[number]),
            int(bounds[number + 1]),
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
    """``retrained``: the model scored here was (re)trained right before this period. ``staleness_cost``:
    USD the period's shortfall against the best model available cost (see :mod:`driftloop.backtest.hindsight`)."""

    period: str
    ndcg_at_10: float | None
    hit_rate_at_10: float | None
    users: int
    retrained: bool
    staleness_cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            NDCG: self.ndcg_at_10,
            HIT_RATE: self.hit_rate_at_10,
            "users": self.users,
            "retrained": self.retrained,
            "staleness_cost": round(self.staleness_cost, 6),
        }


def _mean(scores: Sequence[PeriodScore], metric: str) -> float | None:
    values = [getattr(score, metric) for score in scores if score.users]
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class StrategyResult:
    """Means are over the evaluated periods that had users, each period weighing the same. Costs in USD:
    ``training_cost`` (every retrain's jobs, start-up and A/B exposure), ``staleness_cost`` (the sum over
    periods), ``regret`` (total cost minus the oracle's)."""

    name: str
    description: str
    per_period: tuple[PeriodScore, ...]
    retrains: int
    training_seconds: float
    training_cost: float | None
    drift_checks: tuple[dict[str, Any], ...] = ()
    decisions: tuple[dict[str, Any], ...] = ()
    regret: float | None = None

    @property
    def mean_ndcg_at_10(self) -> float | None:
        return _mean(self.per_period, NDCG)

    @property
    def mean_hit_rate_at_10(self) -> float | None:
        return _mean(self.per_period, HIT_RATE)

    @property
    def staleness_cost(self) -> float:
        return sum(score.staleness_cost for score in self.per_period)

    @property
    def total_cost(self) -> float | None:
        return None if self.training_cost is None else self.training_cost + self.staleness_cost

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "description": self.description,
            f"mean_{NDCG}": self.mean_ndcg_at_10,
            f"mean_{HIT_RATE}": self.mean_hit_rate_at_10,
            "retrains": self.retrains,
            "training_seconds": round(self.training_seconds, 3),
            "training_cost": _rounded(self.training_cost),
            "staleness_cost": round(self.staleness_cost, 6),
            "total_cost": _rounded(self.total_cost),
            "regret": _rounded(self.regret),
            "per_period": [score.to_dict() for score in self.per_period],
        }
        if self.drift_checks:
            data["drift_checks"] = [dict(check) for check in self.drift_checks]
        if self.decisions:
            data["decisions"] = [dict(decision) for decision in self.decisions]
        return data


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass(frozen=True)
class BacktestResult:
    dataset: str
    periods: tuple[str, ...]
    initial_periods: int
    strategies: dict[str, StrategyResult]
    popularity: StrategyResult
    initial_training_seconds: float
    config: BacktestConfig
    frontier: dict[int, float] = field(default_factory=dict)
    held_out: HeldOutCosts | None = None

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
            "frontier": {str(retrains): ndcg for retrains, ndcg in self.frontier.items()},
            "held_out": None if self.held_out is None else self.held_out.to_dict(),
            "config": self.config.to_dict(),
        }


def _cost_basis(config: BacktestConfig) -> dict[str, Any]:
    estimate = estimate_training_cost(
        config.instance_type, 0, None, spot=False, hourly_price_usd=config.hourly_price_usd
    )
    cost = config.cost_model
    return {
        "instance_type": config.instance_type,
        "hourly_price_usd": estimate["hourly_price_usd"],
        "price_source": estimate["price_source"],
        "billing": "per retrain: measured local training seconds (each fit rounded up to a whole second) plus "
        f"{cost.startup_seconds:g} s start-up, on demand, plus ${cost.ab_exposure_cost:g} A/B test exposure",
        "staleness": f"per period: (NDCG@10 of the model trained on everything before it - the strategy's) / 0.01 x "
        f"${cost.value_per_point:g} per point per day x the period's days",
        "value_per_point": cost.value_per_point,
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


class _RecentItems:
    """Per user, the excluded-kind items (purchases, or every interaction) in period order, so that the
    items since any period can be handed to a model as the request's ``recent``."""

    def __init__(self) -> None:
        self._periods: dict[str, list[int]] = {}
        self._items: dict[str, list[str]] = {}

    def add(self, period: int, users: Sequence[str], items: Sequence[str]) -> None:
        for user, item in zip(users, items, strict=True):
            self._periods.setdefault(user, []).append(period)
            self._items.setdefault(user, []).append(item)

    def since(self, first_period: int, users: Sequence[str]) -> dict[str, list[str]]:
        recent = {}
        for user in users:
            periods = self._periods.get(user)
            if periods:
                start = bisect.bisect_left(periods, first_period)
                if start < len(periods):
                    recent[user] = self._items[user][start:]
        return recent


@dataclass
class _Ledger:
    """One strategy's running state. ``trained_until``: the first period the model in force did not
    train on (its interactions since then are the users' recent items)."""

    name: str
    model: Recommender
    trained_until: int
    scores: list[PeriodScore] = field(default_factory=list)
    retrains: int = 0
    training_seconds: float = 0.0
    training_cost: float = 0.0
    retrained: bool = False
    baseline_periods: tuple[int, ...] = ()
    drift_checks: list[dict[str, Any]] = field(default_factory=list)
    policy: RetrainPolicy | None = None
    pending_signals: Any = None
    replaced_until: int | None = None
    pending_gain: tuple[float, float, float] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    challenger_fits: int = 0
    models: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Tuning:
    model: Recommender
    fits: tuple[_Fit, ...]
    validation_seconds: float
    chosen: RecommenderConfig


@dataclass(frozen=True)
class _Scored:
    """A model's means on one period, and its per-user NDCG@10 (users sorted by id)."""

    ndcg: float | None
    hit_rate: float | None
    users: int
    per_user: np.ndarray | None = None


class _Backtest:
    def __init__(self, history: History, config: BacktestConfig, workdir: Path) -> None:
        self.history = history
        self.config = config
        self.cost: RetrainCostModel = config.cost_model
        self.periods = split_history(history, config)
        self.original = tuple(range(config.initial_periods))
        self.first = len(self.original)
        self.trainer = _Trainer(self.periods)
        self.workdir = workdir
        self._tuning: _Tuning | None = None
        self._baselines: dict[tuple[int, ...], Baseline] = {}
        self._feature_paths: dict[int, str] = {}
        self.matrix: dict[int, dict[int, _Scored]] = {}
        self.recent = _RecentItems()
        if "D" in config.strategies and history.features.num_columns == 0:
            raise InvalidInputError(
                f"{history.name}: strategy D needs feature columns besides user, item and time to check for drift"
            )

    def _model(self, t: int) -> _Fit:
        """The model trained on every period before ``t``."""
        return self.trainer.fit(tuple(range(t)), self.config.model)

    def run(self, on_period: Callable[[str], None] | None = None) -> BacktestResult:
        initial = self._model(self.first)
        replayed = [name for name in self.config.strategies if name != ORACLE]
        ledgers = [_Ledger(name, initial.model, self.first) for name in replayed]
        for ledger in ledgers:
            if ledger.name == "auto":
                ledger.policy = CostAwareRetrainPolicy(self.cost)
        popularity_scores: list[PeriodScore] = []
        known_users: set[str] = set()
        seen: dict[str, set[str]] = {}
        targets = self.config.model.target_event_types
        for index in self.original:
            self._remember(index, known_users, seen)
        for p in range(self.first, len(self.periods)):
            if p > self.first:
                for ledger in ledgers:
                    self._decide(ledger, p)
            period = self.periods[p]
            holdout = _holdout(period.interactions, targets, known_users, seen)
            users = sorted(holdout)
            ranking = popularity_ranking(self.trainer.table(tuple(range(p))), targets)
            popular = popularity_recommendations(ranking, users, seen, K)
            popularity_scores.append(_as_score(period.label, _score(popular, holdout), retrained=False))
            for t in range(self.first, p + 1):
                self.matrix.setdefault(t, {})[p] = self._score_model(self._model(t).model, t, users, seen, holdout)
            for ledger in ledgers:
                if ledger.name in _FROM_MATRIX or ledger.name == "never":
                    scored = self.matrix[ledger.trained_until][p]
                    ledger.models.append(ledger.trained_until)
                else:
                    scored = self._score_model(ledger.model, ledger.trained_until, users, seen, holdout)
                ledger.scores.append(_as_score(period.label, scored, ledger.retrained))
                if ledger.policy is not None and p + 1 < len(self.periods):
                    ledger.pending_signals = self._signals(ledger, p, seen)
                    ledger.pending_gain = self._delivered_gain(ledger, p)
            self._remember(p, known_users, seen)
            if on_period is not None:
                on_period(period.label)
        return self._result(ledgers, popularity_scores, initial)

    def _result(self, ledgers: list[_Ledger], popularity_scores: list[PeriodScore], initial: _Fit) -> BacktestResult:
        evaluated = list(range(self.first, len(self.periods)))
        ndcg = {t: {p: scored.ndcg for p, scored in row.items()} for t, row in self.matrix.items()}
        best = fresh_scores(ndcg, evaluated)
        days = {p: self.periods[p].days for p in evaluated}
        retrain_costs = {p: self._retrain_cost(self._model(p).billed_seconds) for p in evaluated}
        oracle = oracle_schedule(ndcg, evaluated, days, retrain_costs, self.cost)
        oracle_result = self._oracle_result(oracle.models, retrain_costs, best)
        results: dict[str, StrategyResult] = {}
        for ledger in ledgers:
            priced = tuple(
                replace(score, staleness_cost=staleness_of(score.ndcg_at_10, best[p], days[p], self.cost))
                for p, score in zip(evaluated, ledger.scores, strict=True)
            )
            results[ledger.name] = StrategyResult(
                ledger.name,
                STRATEGIES[ledger.name],
                priced,
                ledger.retrains,
                ledger.training_seconds,
                ledger.training_cost,
                tuple(ledger.drift_checks),
                tuple(ledger.decisions),
            )
        if ORACLE in self.config.strategies:
            results[ORACLE] = oracle_result
        oracle_total = oracle_result.total_cost or 0.0
        held_out = held_out_costs(
            {t: {p: scored.per_user for p, scored in row.items()} for t, row in self.matrix.items()},
            evaluated,
            days,
            retrain_costs,
            self.cost,
            {ledger.name: (ledger.models, ledger.training_cost) for ledger in ledgers if ledger.models},
        )
        ordered = {
            name: replace(results[name], regret=(results[name].total_cost or 0.0) - oracle_total)
            for name in self.config.strategies
        }
        return BacktestResult(
            dataset=self.history.name,
            periods=tuple(period.label for period in self.periods),
            initial_periods=self.first,
            strategies=ordered,
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
            frontier=frontier(ndcg, evaluated),
            held_out=held_out,
        )

    def _oracle_result(
        self, models: Sequence[int], retrain_costs: dict[int, float], best: dict[int, float | None]
    ) -> StrategyResult:
        scores, retrains, seconds, training_cost, previous = [], 0, 0.0, 0.0, models[0]
        for p, t in zip(range(self.first, len(self.periods)), models, strict=True):
            retrained = t != previous
            if retrained:
                retrains += 1
                seconds += self._model(t).seconds
                training_cost += retrain_costs[t]
            scored = self.matrix[t][p]
            staleness = staleness_of(scored.ndcg, best[p], self.periods[p].days, self.cost)
            scores.append(replace(_as_score(self.periods[p].label, scored, retrained), staleness_cost=staleness))
            previous = t
        return StrategyResult(ORACLE, STRATEGIES[ORACLE], tuple(scores), retrains, seconds, training_cost)

    def _retrain_cost(self, billed_seconds: float) -> float:
        return self.cost.job_cost(billed_seconds) + self.cost.ab_exposure_cost

    def _score_model(
        self,
        model: Recommender,
        trained_until: int,
        users: Sequence[str],
        seen: dict[str, set[str]],
        holdout: dict[str, set[str]],
    ) -> _Scored:
        return _score(_unseen_top_k(model, users, seen, self.recent.since(trained_until, users)), holdout)

    def _signals(self, ledger: _Ledger, p: int, seen: dict[str, set[str]]) -> Any:
        """What ``auto`` measures on period ``p``'s upload with its model in force (before ``p`` is remembered)."""
        period, t = self.periods[p], ledger.trained_until
        upload_users = period.interactions.column(USER).unique().to_pylist()
        return measure_signals(
            ledger.model,
            period.interactions,
            histories=self.recent.since(t, upload_users),
            seen=seen,
            days_since_training=(period.end_micros - self.periods[t - 1].end_micros) / _MICROS_PER_DAY,
            interactions_since_training=sum(self.periods[index].interactions.num_rows for index in range(t, p + 1)),
            data_drift=None,
            period_days=period.days,
            k=K,
            challenger_gain=self._challenger_gain(ledger, p, seen),
        )

    def _challenger_gain(self, ledger: _Ledger, p: int, seen: dict[str, set[str]]) -> ChallengerGain | None:
        """What retraining would have bought on period ``p``'s upload, measured directly: a challenger
        fitted on all the data before a cut, scored with the champion on the purchases after it. The cut
        is the upload's start when the champion has missed data before it, else the upload's median
        event time (the first upload after a retrain: the challenger also learns its first half). The
        fit is real compute: it is charged to ``auto`` (job and start-up, no A/B test)."""
        period, t = self.periods[p], ledger.trained_until
        period_start = datetime.fromtimestamp(period.start_micros / 1_000_000, UTC) if t < p else None
        split = challenger_cut(period.interactions, period_start)
        if split is None:
            return None
        if t < p:
            fit, extra = self._model(p), None
        else:
            extra = split.learned
            fit = self.trainer.fit_rows(
                ("challenger", p),
                lambda: pa.concat_tables([self.trainer.table(tuple(range(p))), extra]),
                self.config.model,
            )
        rows, cut_micros = split.scored, round(split.cut.timestamp() * 1_000_000)
        ledger.training_seconds += fit.seconds
        ledger.training_cost += self.cost.job_cost(fit.billed_seconds)
        ledger.challenger_fits += 1
        users = rows.column(USER).unique().to_pylist()
        champion_recent = self.recent.since(t, users)
        seen_at_cut = seen
        if extra is not None:
            seen_at_cut = {user: set(items) for user, items in seen.items()}
            extra_users, extra_items = self._excluded_kind(extra)
            for user, item in zip(extra_users, extra_items, strict=True):
                seen_at_cut.setdefault(user, set()).add(item)
                champion_recent.setdefault(user, []).append(item)
        return measure_challenger_gain(
            ledger.model,
            fit.model,
            holdout_items(rows, self.config.model.target_event_types),
            missed_days=(cut_micros - self.periods[t - 1].end_micros) / _MICROS_PER_DAY,
            champion_histories=champion_recent,
            challenger_histories={},
            seen=seen_at_cut,
            k=K,
        )

    def _delivered_gain(self, ledger: _Ledger, p: int) -> tuple[float, float, float] | None:
        """On the first period after a retrain: NDCG@10 of the new model - the replaced one's, its
        standard error (paired over users), and the days of data the replaced one had missed by then."""
        replaced, ledger.replaced_until = ledger.replaced_until, None
        if replaced is None:
            return None
        new, old = self.matrix[ledger.trained_until][p].per_user, self.matrix[replaced][p].per_user
        if new is None or old is None:
            return None
        differences = new - old
        error = float(differences.std(ddof=1) / math.sqrt(differences.size)) if differences.size > 1 else math.inf
        missed = (self.periods[p].start_micros - self.periods[replaced - 1].end_micros) / _MICROS_PER_DAY
        return float(differences.mean()), error, missed

    def _remember(self, index: int, known_users: set[str], seen: dict[str, set[str]]) -> None:
        """Add a period's users, and the items each user has now bought (or interacted with)."""
        interactions = self.periods[index].interactions
        known_users.update(interactions.column(USER).unique().to_pylist())
        users, items = self._excluded_kind(interactions)
        for user, item in zip(users, items, strict=True):
            seen.setdefault(user, set()).add(item)
        self.recent.add(index, users, items)

    def _excluded_kind(self, interactions: pa.Table) -> tuple[list[str], list[str]]:
        """Users and items of the interactions that count as seen: purchases, or every interaction."""
        if self.config.exclude == "purchases":
            interactions = target_rows(interactions, self.config.model.target_event_types)
        return interactions.column(USER).to_pylist(), interactions.column(ITEM).to_pylist()

    def _scheduled(self, p: int) -> bool:
        return (p - self.first) % self.config.every_k == 0

    def _decide(self, ledger: _Ledger, p: int) -> None:
        """Before period ``p``: retrain or keep the model, from data of periods ``< p``."""
        config = self.config
        ledger.retrained = False
        if ledger.name == "every" or (ledger.name == "schedule" and self._scheduled(p)):
            self._install(ledger, [self._model(p)], p)
        elif ledger.name == "A" and self._scheduled(p):
            stronger = replace(config.model, l2=config.model.l2 * config.regularisation_factor)
            self._install(ledger, [self.trainer.fit(self.original, stronger)], self.first)
        elif ledger.name == "B" and self._scheduled(p):
            tuning = self._tune()
            ledger.training_seconds += sum(fit.seconds for fit in tuning.fits) + tuning.validation_seconds
            billed = sum(fit.billed_seconds for fit in tuning.fits) + math.ceil(tuning.validation_seconds)
            ledger.training_cost += self._retrain_cost(billed)
            ledger.model, ledger.trained_until, ledger.retrained = tuning.model, self.first, True
            ledger.retrains += 1
        elif ledger.name == "C" and self._scheduled(p):
            newest = tuple(range(max(self.first, p - config.newest_periods), p))
            challenger = replace(config.model, algorithm=config.challenger_algorithm)
            self._install(ledger, [self.trainer.fit(newest, challenger)], p)
        elif ledger.name == "D":
            self._check_drift(ledger, p)
        elif ledger.name == "auto":
            self._decide_auto(ledger, p)

    def _decide_auto(self, ledger: _Ledger, p: int) -> None:
        """``auto`` decides on the upload of period ``p - 1``; the first upload after a retrain also
        reports the gain that retrain delivered (new model vs the replaced one on the same purchases)."""
        assert ledger.policy is not None
        if ledger.pending_gain is not None:
            gain, error, missed_days = ledger.pending_gain
            ledger.policy.observe_gain(gain, age_days=missed_days, standard_error=error)
        decision = ledger.policy.update(ledger.pending_signals)
        ledger.decisions.append(
            {
                "period": self.periods[p - 1].label,
                "retrain": decision.retrain,
                "expected_gain": round(decision.expected_gain or 0.0, 6),
                "gain_sources": {
                    name: None if value is None else round(value, 6) for name, value in decision.gain_sources.items()
                },
                "champion_ndcg_at_10": decision.signals.accuracy.ndcg_at_10,
                "challenger_gain": (
                    None if decision.signals.challenger_gain is None else decision.signals.challenger_gain.to_dict()
                ),
                "item_novelty": decision.signals.item_novelty,
                "staleness_cost": round(decision.staleness_cost, 6),
                "retraining_cost": round(decision.retraining_cost, 6),
                "reason": decision.reasons[0],
            }
        )
        if decision.retrain:
            ledger.replaced_until = ledger.trained_until
            fit = self._model(p)
            self._install(ledger, [fit], p)
            ledger.policy.retrained(job_seconds=fit.billed_seconds)

    def _install(self, ledger: _Ledger, fits: Sequence[_Fit], trained_until: int) -> None:
        ledger.training_seconds += sum(fit.seconds for fit in fits)
        ledger.training_cost += self._retrain_cost(sum(fit.billed_seconds for fit in fits))
        ledger.model, ledger.trained_until, ledger.retrained = fits[-1].model, trained_until, True
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
            self._install(ledger, [self._model(p)], p)

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


def _unseen_top_k(
    model: Recommender, users: Sequence[str], seen: dict[str, set[str]], recent: dict[str, list[str]]
) -> dict[str, list[str]]:
    """The model's top ``K`` per user, scored with the user's ``recent`` items, without the user's
    excluded items (which the model may not know)."""
    longest = max((len(seen.get(user, ())) for user in users), default=0)
    ranked = model.recommend(users, k=min(K + longest, max(model.n_items, 1)), recent=recent)
    return {
        user: [item for item in items if item not in seen.get(user, ())][:K]
        for user, items in zip(users, ranked, strict=True)
    }


def _score(lists: dict[str, list[str]], holdout: dict[str, set[str]]) -> _Scored:
    if not holdout:
        return _Scored(None, None, 0)
    metrics = per_user_metrics(lists, holdout, K)
    return _Scored(float(metrics[NDCG].mean()), float(metrics[HIT_RATE].mean()), len(holdout), metrics[NDCG])


def _as_score(label: str, scored: _Scored, retrained: bool) -> PeriodScore:
    return PeriodScore(label, scored.ndcg, scored.hit_rate, scored.users, retrained)


def run_backtest(
    history: History, config: BacktestConfig | None = None, on_period: Callable[[str], None] | None = None
) -> BacktestResult:
    """Replay ``history`` under every strategy of ``config``; deterministic except the measured seconds
    (and so the training cost). ``on_period`` is called with each evaluated period's label once it is done."""
    with tempfile.TemporaryDirectory(prefix="driftloop-backtest-") as workdir:
        return _Backtest(history, config or BacktestConfig(), Path(workdir)).run(on_period)
