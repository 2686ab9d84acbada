"""What the best schedule could have done, knowing the future: the oracle and the frontier.

Both read the *score matrix*: ``scores[t][p]`` is the NDCG@10 on period ``p`` of the model trained on
periods ``0..t-1`` (``t = initial`` is the original model; ``t = p`` the freshest available before ``p``).
A schedule keeps a model in force until it retrains before some period ``p``, which installs model ``p``.

- **Staleness** of a period: ``RetrainCostModel.staleness_cost(fresh - score, days)``, where ``fresh`` is
  the score of the model trained on everything before the period (``scores[p][p]``), what retraining
  right then would have served: the shortfall against a fresh model that the retrain policies estimate,
  priced the same way. A model that beats the fresh one costs nothing (shortfalls below 0 count 0); a
  max over all older models would instead reward whichever model the period's sampling noise favoured.
- **Oracle**: the schedule with the lowest total cost (each retrain's cost plus staleness), by dynamic
  programming over the model in force (O(P^2)).
- **Frontier**: for each number of retrains R, the highest mean NDCG@10 any schedule with exactly R
  retrains reaches (dynamic programming over model in force and retrains used).
- **Held-out pricing** (:func:`held_out_costs`): the oracle picks its schedule from the very scores it is
  then priced on, so part of its margin is hindsight on which users a period happened to have. Splitting
  each period's users at random into two halves, choosing the oracle's schedule on one half and pricing
  it on the other measures that part: the gap between the oracle priced on the half it chose from and on
  the other half. Every other strategy's schedule is priced on the same halves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftloop.decision import RetrainCostModel
from driftloop.errors import InvalidInputError


@dataclass(frozen=True)
class Schedule:
    """``models[i]``: the model (its ``t``) in force in the i-th evaluated period."""

    models: tuple[int, ...]
    total_cost: float

    @property
    def retrains(self) -> int:
        return len(installed(self.models))


def fresh_scores(scores: Mapping[int, Mapping[int, float | None]], periods: Sequence[int]) -> dict[int, float | None]:
    """Per evaluated period, the score of the model trained on everything before it (``None`` when unscored)."""
    return {p: scores[p].get(p) for p in periods}


def staleness_of(score: float | None, fresh: float | None, days: float, cost: RetrainCostModel) -> float:
    if score is None or fresh is None:
        return 0.0
    return cost.staleness_cost(fresh - score, days)


def oracle_schedule(
    scores: Mapping[int, Mapping[int, float | None]],
    periods: Sequence[int],
    days: Mapping[int, float],
    retrain_costs: Mapping[int, float],
    cost: RetrainCostModel,
) -> Schedule:
    """The cheapest keep/retrain schedule over ``periods`` (the evaluated periods, in order; the first
    one is served by model ``periods[0]``, the original). ``retrain_costs[p]``: USD of installing model
    ``p`` before period ``p``. Ties keep the model (fewer retrains)."""
    best = fresh_scores(scores, periods)
    first = periods[0]
    # states: model in force -> (cost so far, path of models)
    states: dict[int, tuple[float, tuple[int, ...]]] = {
        first: (staleness_of(scores[first].get(first), best[first], days[first], cost), (first,))
    }
    for p in periods[1:]:
        cheapest_keep = min(states.items(), key=lambda state: (state[1][0], -state[0]))
        next_states = {}
        for model, (so_far, path) in states.items():
            next_states[model] = (
                so_far + staleness_of(scores[model].get(p), best[p], days[p], cost),
                (*path, model),
            )
        retrain_total = cheapest_keep[1][0] + retrain_costs[p]
        next_states[p] = (
            retrain_total + staleness_of(scores[p].get(p), best[p], days[p], cost),
            (*cheapest_keep[1][1], p),
        )
        states = next_states
    model, (total, path) = min(states.items(), key=lambda state: (state[1][0], _retrains(state[1][1])))
    return Schedule(path, total)


def installed(models: Sequence[int]) -> list[int]:
    """The models a schedule retrains into, in order (each change of the model in force)."""
    return [after for before, after in zip(models, models[1:], strict=False) if after != before]


def _retrains(path: Sequence[int]) -> int:
    return len(installed(path))


def frontier(scores: Mapping[int, Mapping[int, float | None]], periods: Sequence[int]) -> dict[int, float]:
    """``{retrains: best mean NDCG@10}`` over the evaluated periods that were scored."""
    scored = [p for p in periods if scores[periods[0]].get(p) is not None]
    if not scored:
        return {}
    first = periods[0]
    # states: (model in force, retrains used) -> best sum of scores so far
    states: dict[tuple[int, int], float] = {(first, 0): scores[first].get(first) or 0.0}
    for p in periods[1:]:
        next_states: dict[tuple[int, int], float] = {}
        for (model, used), total in states.items():
            for choice, count in ((model, used), (p, used + 1)):
                value = total + (scores[choice].get(p) or 0.0)
                if value > next_states.get((choice, count), float("-inf")):
                    next_states[(choice, count)] = value
        states = next_states
    best: dict[int, float] = {}
    for (_, used), total in states.items():
        best[used] = max(best.get(used, float("-inf")), total / len(scored))
    return dict(sorted(best.items()))


def frontier_schedules(
    scores: Mapping[int, Mapping[int, float | None]], periods: Sequence[int], retrains: Iterable[int]
) -> dict[int, tuple[int, ...]]:
    """For each number of retrains asked for (and reachable), a schedule (model per period) reaching the
    frontier's best mean NDCG@10 with that many retrains (the same dynamic program as :func:`frontier`,
    with back-pointers)."""
    count, wanted = len(periods), sorted({r for r in retrains if 0 <= r < len(periods)})
    if not wanted or not periods:
        return {}
    most = wanted[-1]
    matrix = np.array([[scores[t].get(p) or 0.0 if p >= t else 0.0 for p in periods] for t in periods])
    best = np.full((count, most + 1), -np.inf)  # [model in force, retrains used] -> best sum so far
    best[0, 0] = matrix[0, 0]
    came_from = np.zeros((count, most + 1), dtype=int)  # [period, retrains used] -> model before installing it
    for j in range(1, count):
        came_from[j] = best.argmax(axis=0)
        before_retraining = best.max(axis=0)
        best = best + matrix[:, j][:, None]
        best[j, 1:] = before_retraining[:-1] + matrix[j, j]
    schedules = {}
    for r in wanted:
        if not np.isfinite(best[:, r].max()):
            continue
        model, used, path = int(best[:, r].argmax()), r, []
        for j in range(count - 1, 0, -1):
            path.append(periods[model])
            if model == j:
                model, used = int(came_from[j][used - 1]), used - 1
        path.append(periods[model])
        schedules[r] = tuple(reversed(path))
    return schedules


def mean_score(
    models: Sequence[int], scores: Mapping[int, Mapping[int, float | None]], periods: Sequence[int]
) -> float:
    """Mean NDCG@10 of serving ``models[i]`` in ``periods[i]`` over the scored periods (as :func:`frontier`)."""
    values = [scores[t].get(p) for t, p in zip(models, periods, strict=True)]
    scored = [value for value in values if value is not None]
    return float(np.mean(scored)) if scored else 0.0


def staleness_total(
    models: Sequence[int],
    scores: Mapping[int, Mapping[int, float | None]],
    periods: Sequence[int],
    days: Mapping[int, float],
    cost: RetrainCostModel,
) -> float:
    """The staleness cost of serving ``models[i]`` in ``periods[i]``, priced against ``scores``."""
    fresh = fresh_scores(scores, periods)
    return sum(staleness_of(scores[t].get(p), fresh[p], days[p], cost) for t, p in zip(models, periods, strict=True))


def retraining_total(models: Sequence[int], retrain_costs: Mapping[int, float]) -> float:
    return sum(retrain_costs[model] for model in installed(models))


@dataclass(frozen=True)
class HeldOutCosts:
    """Total costs (USD) priced on random halves of each period's users, means over ``2 x splits`` halves.

    ``oracle_in_sample``: the oracle chosen on a half and priced on that half; ``oracle_held_out``: chosen on
    a half and priced on the other one; ``oracle_held_out - oracle_in_sample`` is what seeing the priced
    users' scores was worth to it. ``strategies``: each given schedule (its own training cost plus its
    staleness on each half). ``frontier_in_sample`` / ``frontier_held_out``: for each number of retrains
    a given schedule makes, the mean NDCG@10 of the frontier's schedule chosen on a half, on that half /
    on the other one. Halves have half the users, so their scores are noisier than the whole
    period's: the in-sample gap overstates the whole-sample one (by about sqrt(2) where the noise is
    sampling noise), and an oracle choosing from a half sees the future less clearly than one choosing
    from all of a period's users would.
    """

    splits: int
    seed: int
    oracle_in_sample: float
    oracle_held_out: float
    oracle_held_out_retrains: float
    strategies: dict[str, float] = field(default_factory=dict)
    frontier_in_sample: dict[int, float] = field(default_factory=dict)
    frontier_held_out: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "splits": self.splits,
            "seed": self.seed,
            "oracle_in_sample": round(self.oracle_in_sample, 6),
            "oracle_held_out": round(self.oracle_held_out, 6),
            "oracle_held_out_retrains": round(self.oracle_held_out_retrains, 3),
            "strategies": {name: round(total, 6) for name, total in self.strategies.items()},
            "frontier_in_sample": {str(r): round(ndcg, 6) for r, ndcg in self.frontier_in_sample.items()},
            "frontier_held_out": {str(r): round(ndcg, 6) for r, ndcg in self.frontier_held_out.items()},
        }


def held_out_costs(
    per_user: Mapping[int, Mapping[int, np.ndarray | None]],
    periods: Sequence[int],
    days: Mapping[int, float],
    retrain_costs: Mapping[int, float],
    cost: RetrainCostModel,
    schedules: Mapping[str, tuple[Sequence[int], float]],
    splits: int = 50,
    seed: int = 0,
) -> HeldOutCosts:
    """Price the oracle, chosen on one half of each period's users, on the other half; and price every
    schedule in ``schedules`` (name -> (model per period, training cost)) on the same halves.

    ``per_user[t][p]``: per-user NDCG@10 of model ``t`` on period ``p``, the same users in the same order
    for every ``t`` (``None`` when the period has no users). Halves are drawn with a seeded generator.

    >>> scores = {1: {1: np.array([0.1, 0.3]), 2: np.array([0.0, 0.2])}, 2: {2: np.array([0.3, 0.5])}}
    >>> costs = held_out_costs(scores, [1, 2], {1: 1.0, 2: 1.0}, {1: 0.0, 2: 5.0},
    ...                        RetrainCostModel(value_per_point=1.0, hourly_price=1.0),
    ...                        {"never": ((1, 1), 0.0)}, splits=4)
    >>> round(costs.strategies["never"], 6), round(costs.oracle_held_out, 6)
    (30.0, 5.0)
    """
    if splits < 1:
        raise InvalidInputError(f"splits must be >= 1, not {splits}")
    rng = np.random.default_rng(seed)
    in_sample, held_out, retrains = [], [], []
    strategies: dict[str, list[float]] = {name: [] for name in schedules}
    counts = {_retrains(models) for models, _ in schedules.values()}
    by_period = _by_period(per_user, periods)
    user_counts = _user_counts(by_period)
    frontier_in: dict[int, list[float]] = {}
    frontier_out: dict[int, list[float]] = {}
    for _ in range(splits):
        first_half = {p: rng.permutation(users) < users // 2 for p, users in user_counts.items()}
        halves = [_half_scores(per_user, by_period, first_half, first) for first in (True, False)]
        for chosen_on, priced_on in ((0, 1), (1, 0)):
            oracle = oracle_schedule(halves[chosen_on], periods, days, retrain_costs, cost)
            in_sample.append(oracle.total_cost)
            held_out.append(
                retraining_total(oracle.models, retrain_costs)
                + staleness_total(oracle.models, halves[priced_on], periods, days, cost)
            )
            retrains.append(oracle.retrains)
            for count, models in frontier_schedules(halves[chosen_on], periods, counts).items():
                frontier_in.setdefault(count, []).append(mean_score(models, halves[chosen_on], periods))
                frontier_out.setdefault(count, []).append(mean_score(models, halves[priced_on], periods))
        for name, (models, training_cost) in schedules.items():
            strategies[name].extend(
                training_cost + staleness_total(models, half, periods, days, cost) for half in halves
            )
    return HeldOutCosts(
        splits,
        seed,
        float(np.mean(in_sample)),
        float(np.mean(held_out)),
        float(np.mean(retrains)),
        {name: float(np.mean(totals)) for name, totals in strategies.items()},
        {count: float(np.mean(values)) for count, values in sorted(frontier_in.items())},
        {count: float(np.mean(values)) for count, values in sorted(frontier_out.items())},
    )


def _by_period(
    per_user: Mapping[int, Mapping[int, np.ndarray | None]], periods: Sequence[int]
) -> dict[int, tuple[list[int], np.ndarray | None]]:
    """Per period: the models scored on it, and their per-user values stacked (one row per model)."""
    stacked: dict[int, tuple[list[int], np.ndarray | None]] = {}
    for p in periods:
        models = [t for t, row in per_user.items() if row.get(p) is not None]
        stacked[p] = (models, np.stack([per_user[t][p] for t in models]) if models else None)
    return stacked


def _user_counts(by_period: Mapping[int, tuple[list[int], np.ndarray | None]]) -> dict[int, int]:
    return {p: 0 if values is None else values.shape[1] for p, (_, values) in by_period.items()}


def _half_scores(
    per_user: Mapping[int, Mapping[int, np.ndarray | None]],
    by_period: Mapping[int, tuple[list[int], np.ndarray | None]],
    first_half: Mapping[int, np.ndarray],
    first: bool,
) -> dict[int, dict[int, float | None]]:
    scores: dict[int, dict[int, float | None]] = {t: dict.fromkeys(row) for t, row in per_user.items()}
    for p, (models, values) in by_period.items():
        mask = first_half[p] == first
        if values is not None and mask.any():
            for t, mean in zip(models, values[:, mask].mean(axis=1), strict=True):
                scores[t][p] = float(mean)
    return scores
