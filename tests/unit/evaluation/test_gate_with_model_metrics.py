"""The gate's input contract as the pipeline fills it: per-user arrays from driftloop.model.metrics."""

import numpy as np

from driftloop.evaluation.offline import OfflineGateConfig, offline_gate
from driftloop.model.metrics import per_user_metrics


def _scored(lists, relevant):
    return {name: values for name, values in per_user_metrics(lists, relevant, 10).items() if name != "user_id"}


def test_model_metrics_feed_the_gate_under_its_default_metric_names():
    rng = np.random.default_rng(0)
    items = [f"i{n}" for n in range(50)]
    relevant = {f"u{n}": {items[n % 50]} for n in range(300)}
    good = {user: [next(iter(targets)), *items[:9]] for user, targets in relevant.items()}
    random = {user: list(rng.permutation(items)[:10]) for user in relevant}
    decision = offline_gate(
        {"champion": _scored(random, relevant), "challenger": _scored(good, relevant)},
        OfflineGateConfig(n_bootstrap=300),
    )
    assert decision.passed and decision.n_users == 300
    assert set(decision.differences) == {"ndcg_at_10", "recall_at_10", "hit_rate_at_10"}
    reversed_roles = offline_gate(
        {"champion": _scored(good, relevant), "challenger": _scored(random, relevant)},
        OfflineGateConfig(n_bootstrap=300),
    )
    assert not reversed_roles.passed
