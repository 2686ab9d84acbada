import math

import numpy as np
import pytest

from driftloop.errors import ConfigurationError
from driftloop.evaluation.offline import OfflineGateConfig, offline_gate
from driftloop.evaluation.ranking import metric_names, paired_ranking_metrics, per_user_ranking_metrics


def test_hand_computed_metrics():
    recommended = {"u1": ["a", "b", "c"], "u2": ["x", "y"], "u3": ["d", "d", "e"]}
    relevant = {"u1": {"b", "z"}, "u2": {"q"}, "u3": {"e"}, "u4": {"a"}, "u5": set()}
    result = per_user_ranking_metrics(recommended, relevant, k=10)
    assert result.users == ("u1", "u2", "u3", "u4")  # u5 has nothing relevant: not a holdout user
    ndcg = result.values["ndcg_at_10"]
    assert ndcg == pytest.approx([(1 / math.log2(3)) / (1 + 1 / math.log2(3)), 0, 1 / math.log2(3), 0])
    assert result.values["recall_at_10"] == pytest.approx([0.5, 0, 1, 0])
    assert result.values["hit_rate_at_10"] == pytest.approx([1, 0, 1, 0])


def test_only_the_top_k_count():
    recommended = {"u": ["a", "b", "c", "d"]}
    result = per_user_ranking_metrics(recommended, {"u": {"c", "d"}}, k=2)
    assert set(result.values) == set(metric_names(2))
    assert result.values["hit_rate_at_2"][0] == 0.0
    perfect = per_user_ranking_metrics({"u": ["c", "d", "a"]}, {"u": {"c", "d", "e"}}, k=2)
    assert perfect.values["ndcg_at_2"][0] == pytest.approx(1.0)  # ideal DCG caps at k hits
    assert perfect.values["recall_at_2"][0] == pytest.approx(2 / 3)


def test_k_must_be_positive():
    with pytest.raises(ConfigurationError):
        per_user_ranking_metrics({}, {}, k=0)


def test_paired_metrics_feed_the_gate():
    rng = np.random.default_rng(0)
    items = [f"i{n}" for n in range(50)]
    relevant = {f"u{n}": {items[n % 50]} for n in range(300)}
    challenger = {user: [next(iter(targets)), *items[:9]] for user, targets in relevant.items()}
    champion = {user: list(rng.permutation(items)[:10]) for user in relevant}
    per_user = paired_ranking_metrics(champion, challenger, relevant)
    assert per_user["challenger"]["hit_rate_at_10"].mean() == 1.0
    decision = offline_gate(per_user, OfflineGateConfig(n_bootstrap=300))
    assert decision.passed and decision.n_users == 300
