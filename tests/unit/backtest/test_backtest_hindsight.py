"""The oracle and the frontier against brute force over every keep/retrain schedule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from driftloop.backtest.hindsight import (
    fresh_scores,
    frontier,
    frontier_schedules,
    held_out_costs,
    mean_score,
    oracle_schedule,
    retraining_total,
    staleness_of,
    staleness_total,
)
from driftloop.decision import RetrainCostModel
from driftloop.errors import InvalidInputError

COST = RetrainCostModel(value_per_point=1.0, hourly_price=1.0, startup_seconds=0, ab_exposure_cost=0)


def _matrix(periods, seed):
    """scores[t][p] for t <= p; None marks a period without users."""
    rng = np.random.default_rng(seed)
    empty = {periods[-1]} if seed % 2 else set()
    return {t: {p: None if p in empty else float(rng.uniform(0.05, 0.3)) for p in periods if p >= t} for t in periods}


def _schedules(periods):
    """Every schedule: before each later period keep the model in force or install the newest."""
    for choices in itertools.product((False, True), repeat=len(periods) - 1):
        models = [periods[0]]
        for p, retrain in zip(periods[1:], choices, strict=True):
            models.append(p if retrain else models[-1])
        yield tuple(models)


@pytest.mark.parametrize("seed", range(6))
def test_oracle_is_the_cheapest_schedule(seed):
    periods = [2, 3, 4, 5, 6]
    scores = _matrix(periods, seed)
    days = {p: 30.0 + p for p in periods}
    retrain_costs = {p: 1.0 + p / 10 for p in periods}
    fresh = fresh_scores(scores, periods)

    def total(models):
        training = sum(retrain_costs[b] for a, b in zip(models, models[1:], strict=False) if b != a)
        pairs = zip(models, periods, strict=True)
        return training + sum(staleness_of(scores[t][p], fresh[p], days[p], COST) for t, p in pairs)

    best = min(total(models) for models in _schedules(periods))
    oracle = oracle_schedule(scores, periods, days, retrain_costs, COST)
    assert oracle.total_cost == pytest.approx(best)
    assert total(oracle.models) == pytest.approx(best)


@pytest.mark.parametrize("seed", range(6))
def test_frontier_is_the_best_mean_for_each_number_of_retrains(seed):
    periods = [1, 2, 3, 4, 5]
    scores = _matrix(periods, seed)
    scored = [p for p in periods if scores[periods[0]][p] is not None]
    expected: dict[int, float] = {}
    for models in _schedules(periods):
        retrains = sum(1 for a, b in zip(models, models[1:], strict=False) if b != a)
        mean = sum(scores[t][p] or 0.0 for t, p in zip(models, periods, strict=True)) / len(scored)
        expected[retrains] = max(expected.get(retrains, -1.0), mean)
    assert frontier(scores, periods) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(6))
def test_frontier_schedules_reach_the_frontier_with_their_number_of_retrains(seed):
    periods = [1, 2, 3, 4, 5]
    scores = _matrix(periods, seed)
    best = frontier(scores, periods)
    schedules = frontier_schedules(scores, periods, range(-1, 6))
    assert sorted(schedules) == sorted(best)
    for retrains, models in schedules.items():
        assert models[0] == periods[0] and len(models) == len(periods)
        assert sum(1 for a, b in zip(models, models[1:], strict=False) if b != a) == retrains
        assert all(b in (a, p) for a, b, p in zip(models, models[1:], periods[1:], strict=False))
        assert mean_score(models, scores, periods) == pytest.approx(best[retrains])


def test_staleness_counts_only_shortfalls_against_the_fresh_model():
    assert staleness_of(0.10, 0.12, 10, COST) == pytest.approx(2 * 10)
    assert staleness_of(0.15, 0.12, 10, COST) == 0.0
    assert staleness_of(None, 0.12, 10, COST) == 0.0


def test_free_retraining_makes_the_oracle_retrain_whenever_it_helps():
    periods = [1, 2, 3]
    scores = {1: {1: 0.1, 2: 0.1, 3: 0.1}, 2: {2: 0.2, 3: 0.2}, 3: {3: 0.3}}
    oracle = oracle_schedule(scores, periods, dict.fromkeys(periods, 1.0), dict.fromkeys(periods, 0.0), COST)
    assert oracle.models == (1, 2, 3) and oracle.total_cost == 0.0 and oracle.retrains == 2


def _per_user(means, users, noise, seed):
    """per_user[t][p]: ``users[p]`` values around ``means[t][p]`` (the same users for every t)."""
    rng = np.random.default_rng(seed)
    draws = {p: rng.normal(0.0, noise, (len(means), count)) for p, count in users.items()}
    return {t: {p: None if users[p] == 0 else means[t][p] + draws[p][index] for p in means[t]}
            for index, t in enumerate(means)}


def test_without_noise_halves_price_every_schedule_as_all_users_do():
    periods = [1, 2, 3, 4]
    means = {t: {p: 0.1 + 0.02 * t - 0.005 * (p - t) for p in periods if p >= t} for t in periods}
    per_user = _per_user(means, dict.fromkeys(periods, 10), noise=0.0, seed=0)
    days, retrain_costs = dict.fromkeys(periods, 10.0), dict.fromkeys(periods, 15.0)
    oracle = oracle_schedule(means, periods, days, retrain_costs, COST)
    never = (1, 1, 1, 1)
    costs = held_out_costs(per_user, periods, days, retrain_costs, COST, {"never": (never, 0.0)}, splits=3)
    assert costs.oracle_in_sample == pytest.approx(oracle.total_cost)
    assert costs.oracle_held_out == pytest.approx(oracle.total_cost)
    assert costs.oracle_held_out_retrains == oracle.retrains
    assert costs.strategies["never"] == pytest.approx(staleness_total(never, means, periods, days, COST))
    assert retraining_total(oracle.models, retrain_costs) == pytest.approx(15.0 * oracle.retrains)


def test_on_pure_noise_the_oracle_chosen_on_the_priced_users_looks_cheaper_than_it_is():
    """Every model is as good as every other. Choosing from the users it is priced on, the oracle keeps and
    retrains where the noise favoured it; priced on other users, the same schedule costs far more."""
    periods = [1, 2, 3, 4, 5, 6]
    means = {t: {p: 0.15 for p in periods if p >= t} for t in periods}
    per_user = _per_user(means, dict.fromkeys(periods, 40), noise=0.2, seed=1)
    days, retrain_costs = dict.fromkeys(periods, 30.0), dict.fromkeys(periods, 20.0)
    never = (1,) * len(periods)
    twice = (1, 1, 3, 3, 5, 5)
    schedules = {"never": (never, 0.0), "twice": (twice, 40.0)}
    costs = held_out_costs(per_user, periods, days, retrain_costs, COST, schedules, splits=20)
    assert costs.oracle_in_sample < costs.strategies["never"]
    assert costs.oracle_held_out > 2 * costs.oracle_in_sample
    # The best schedule with 0 retrains is `never` itself: nothing to choose, nothing to gain by choosing.
    assert costs.frontier_in_sample[0] == pytest.approx(costs.frontier_held_out[0])
    assert sorted(costs.frontier_held_out) == [0, 2]
    assert costs.frontier_held_out[2] < costs.frontier_in_sample[2] - 0.01


def test_periods_without_users_or_with_one_user_are_priced_as_unscored():
    periods = [1, 2, 3]
    means = {t: {p: 0.1 * t for p in periods if p >= t} for t in periods}
    per_user = _per_user(means, {1: 5, 2: 1, 3: 0}, noise=0.01, seed=2)
    costs = held_out_costs(per_user, periods, dict.fromkeys(periods, 1.0), dict.fromkeys(periods, 1.0), COST,
                           {"never": ((1, 1, 1), 0.0)}, splits=2)
    assert np.isfinite(costs.oracle_held_out) and np.isfinite(costs.strategies["never"])
    assert costs.to_dict()["splits"] == 2


def test_held_out_pricing_needs_at_least_one_split():
    with pytest.raises(InvalidInputError, match="splits must be >= 1"):
        held_out_costs({1: {1: np.ones(2)}}, [1], {1: 1.0}, {1: 0.0}, COST, {}, splits=0)
