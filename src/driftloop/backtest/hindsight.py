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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from driftloop.decision import RetrainCostModel


@dataclass(frozen=True)
class Schedule:
    """``models[i]``: the model (its ``t``) in force in the i-th evaluated period."""

    models: tuple[int, ...]
    total_cost: float

    @property
    def retrains(self) -> int:
        return sum(1 for before, after in zip(self.models, self.models[1:], strict=False) if after != before)


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


def _retrains(path: Sequence[int]) -> int:
    return sum(1 for before, after in zip(path, path[1:], strict=False) if after != before)


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
