import functools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.evaluation.offline import OfflineGateConfig, offline_gate, paired_bootstrap

METRICS = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")


def ndcg_like(rng, n, hit_probability=0.4):
    """Zero-inflated per-user scores in [0, 1], like NDCG@10 on a sparse holdout."""
    return np.where(rng.random(n) < hit_probability, rng.beta(2, 3, n), 0.0)


def per_user(champion, challenger):
    return {
        "champion": {metric: champion for metric in METRICS},
        "challenger": {metric: challenger for metric in METRICS},
    }


@pytest.mark.parametrize("kind", ["continuous", "shifted", "three_valued"])
def test_bootstrap_interval_agrees_with_scipy_bootstrap(kind):
    rng = np.random.default_rng(3)
    if kind == "continuous":
        champion, challenger = ndcg_like(rng, 400), ndcg_like(rng, 400, 0.5)
    elif kind == "shifted":  # most users gain exactly 0.03: the most common difference is not 0
        champion = ndcg_like(rng, 400)
        challenger = champion + np.where(rng.random(400) < 0.7, 0.03, rng.normal(0, 0.2, 400))
    else:  # hit-rate differences take only -1, 0, 1: exercises the resample-by-value path
        champion, challenger = (rng.random(400) < 0.3) * 1.0, (rng.random(400) < 0.4) * 1.0
    ours = paired_bootstrap(champion, challenger, n_bootstrap=4000, confidence=0.9, seed=1)
    reference = stats.bootstrap(
        (challenger - champion,),
        np.mean,
        n_resamples=4000,
        confidence_level=0.9,
        method="percentile",
        random_state=2,
    ).confidence_interval
    width = reference.high - reference.low
    assert ours.mean_difference == pytest.approx(float(np.mean(challenger - champion)))
    assert abs(ours.ci_low - reference.low) < 0.1 * width
    assert abs(ours.ci_high - reference.high) < 0.1 * width
    assert ours.n_users == 400 and ours.n_bootstrap == 4000 and ours.confidence == 0.9


def test_bootstrap_is_reproducible_by_seed():
    rng = np.random.default_rng(0)
    a, b = ndcg_like(rng, 200), ndcg_like(rng, 200)
    assert paired_bootstrap(a, b, 500, 0.95, seed=7) == paired_bootstrap(a, b, 500, 0.95, seed=7)
    assert paired_bootstrap(a, b, 500, 0.95, seed=7) != paired_bootstrap(a, b, 500, 0.95, seed=8)


def test_bootstrap_fraction_not_positive_tracks_the_evidence():
    rng = np.random.default_rng(5)
    base = ndcg_like(rng, 300)
    assert paired_bootstrap(base, base + 0.05, 500).fraction_not_positive == 0.0
    assert paired_bootstrap(base, base - 0.05, 500).fraction_not_positive == 1.0


@pytest.mark.parametrize("kind", ["continuous", "three_valued"])
def test_bootstrap_interval_covers_the_true_difference(kind):
    rng = np.random.default_rng(11)
    repetitions, n_users, covered = 200, 120, 0
    for repetition in range(repetitions):
        if kind == "continuous":
            champion = ndcg_like(rng, n_users)
            challenger = np.clip(champion + rng.normal(0.02, 0.1, n_users), 0, 1) * (
                rng.random(n_users) < 0.9
            )
            true_difference = _continuous_true_difference()
        else:
            champion = (rng.random(n_users) < 0.3) * 1.0
            challenger = (rng.random(n_users) < 0.35) * 1.0
            true_difference = 0.05
        result = paired_bootstrap(champion, challenger, n_bootstrap=400, confidence=0.95, seed=repetition)
        covered += result.ci_low <= true_difference <= result.ci_high
    assert covered / repetitions >= 0.9


@functools.cache
def _continuous_true_difference():
    """E[challenger - champion] for the continuous simulation, from one very large sample."""
    rng = np.random.default_rng(99)
    champion = ndcg_like(rng, 2_000_000)
    challenger = np.clip(champion + rng.normal(0.02, 0.1, champion.size), 0, 1) * (
        rng.random(champion.size) < 0.9
    )
    return float(np.mean(challenger - champion))


@pytest.mark.parametrize(
    ("champion", "challenger", "match"),
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([], [], "no users"),
        ([1.0, np.nan], [1.0, 2.0], "missing or infinite"),
        ([[1.0]], [[1.0]], "one value per user"),
    ],
)
def test_bootstrap_rejects_bad_input(champion, challenger, match):
    with pytest.raises(InvalidInputError, match=match):
        paired_bootstrap(champion, challenger)


FAST = OfflineGateConfig(n_bootstrap=400)


def test_clearly_better_challenger_passes():
    rng = np.random.default_rng(1)
    champion = ndcg_like(rng, 500)
    decision = offline_gate(per_user(champion, np.clip(champion + 0.05, 0, 1)), FAST)
    assert decision.passed and decision.baseline == "champion"
    assert "beats the champion" in decision.reason
    assert decision.metrics["challenger"]["ndcg_at_10"] > decision.metrics["champion"]["ndcg_at_10"]
    assert set(decision.differences) == set(METRICS)
    assert json.loads(json.dumps(decision.to_dict()))["passed"] is True


def test_worse_challenger_never_passes():
    rng = np.random.default_rng(2)
    for _ in range(100):
        champion = ndcg_like(rng, 200, 0.45)
        challenger = ndcg_like(rng, 200, 0.35)
        assert not offline_gate(per_user(champion, challenger), FAST).passed


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(50, 300), elements=st.floats(0, 1)),
    st.floats(0, 1),
    st.integers(0, 2**16),
)
def test_challenger_no_better_for_any_user_never_passes(champion, shrink, seed):
    challenger = champion * shrink
    config = OfflineGateConfig(n_bootstrap=200, seed=seed)
    assert not offline_gate(per_user(champion, challenger), config).passed


def test_equal_challenger_passes_rarely():
    rng = np.random.default_rng(4)
    repetitions = 200
    passes = sum(
        offline_gate(
            per_user(ndcg_like(rng, 150), ndcg_like(rng, 150)), OfflineGateConfig(n_bootstrap=300)
        ).passed
        for _ in range(repetitions)
    )
    assert passes / repetitions <= 0.06  # one-sided at 95 % two-sided confidence: about 2.5 %


def test_gain_below_margin_fails():
    rng = np.random.default_rng(6)
    champion = ndcg_like(rng, 1000)
    challenger = np.clip(champion + 0.02, 0, 1)
    assert offline_gate(per_user(champion, challenger), FAST).passed
    decision = offline_gate(per_user(champion, challenger), OfflineGateConfig(n_bootstrap=400, margin=0.05))
    assert not decision.passed and "margin" in decision.reason


def test_first_deployment_compares_with_popularity():
    rng = np.random.default_rng(7)
    popularity = ndcg_like(rng, 300, 0.2)
    decision = offline_gate(per_user(popularity, popularity), FAST, first_deployment=True)
    assert not decision.passed and decision.baseline == "popularity" and "popularity" in decision.reason
    better = offline_gate(per_user(popularity, np.clip(popularity + 0.1, 0, 1)), FAST, first_deployment=True)
    assert better.passed and "beats the popularity" in better.reason


def test_too_few_users_fails_without_bootstrapping():
    decision = offline_gate(per_user(np.zeros(10), np.ones(10)), FAST)
    assert not decision.passed and "at least 50" in decision.reason and decision.differences == {}


def test_significant_regression_on_a_secondary_metric_blocks():
    rng = np.random.default_rng(8)
    champion = ndcg_like(rng, 600)
    inputs = per_user(champion, np.clip(champion + 0.05, 0, 1))
    inputs["challenger"]["recall_at_10"] = champion * 0.5
    decision = offline_gate(inputs, FAST)
    assert not decision.passed and "recall_at_10" in decision.reason
    lenient = OfflineGateConfig(n_bootstrap=400, block_on_secondary_regression=False)
    assert offline_gate(inputs, lenient).passed


def test_primary_metric_is_configurable():
    rng = np.random.default_rng(9)
    champion = ndcg_like(rng, 600)
    inputs = per_user(champion, champion)
    inputs["challenger"]["hit_rate_at_10"] = np.clip(champion + 0.1, 0, 1)
    assert not offline_gate(inputs, FAST).passed
    config = OfflineGateConfig(primary_metric="hit_rate_at_10", n_bootstrap=400)
    decision = offline_gate(inputs, config)
    assert decision.passed and decision.primary_metric == "hit_rate_at_10"


def test_gate_rejects_malformed_input():
    good = np.zeros(60)
    with pytest.raises(InvalidInputError, match="lack"):
        offline_gate({"champion": {"ndcg_at_10": good}}, FAST)
    with pytest.raises(InvalidInputError, match="different metrics"):
        offline_gate({"champion": {"ndcg_at_10": good}, "challenger": {"recall_at_10": good}}, FAST)
    with pytest.raises(InvalidInputError, match="primary metric"):
        offline_gate({"champion": {"recall_at_10": good}, "challenger": {"recall_at_10": good}}, FAST)
    with pytest.raises(InvalidInputError, match="lengths"):
        offline_gate({"champion": {"ndcg_at_10": good}, "challenger": {"ndcg_at_10": np.zeros(61)}}, FAST)


@pytest.mark.parametrize(
    "kwargs",
    [{"primary_metric": ""}, {"margin": -0.1}, {"confidence": 1.0}, {"n_bootstrap": 10}, {"min_users": 1}],
)
def test_config_is_validated(kwargs):
    with pytest.raises(ConfigurationError):
        OfflineGateConfig(**kwargs)
