"""Per-user top-k ranking metrics with binary relevance (NDCG@k, Recall@k, HitRate@k).

Users are the holdout users with at least one relevant item, in sorted order, so the arrays of two
models scored against the same holdout are aligned by user, as ``offline_gate`` expects.
A user with no recommendations scores 0; repeated items in a list count once, at their first rank.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from driftloop.errors import ConfigurationError


@dataclass(frozen=True)
class UserRankingMetrics:
    users: tuple[str, ...]
    values: dict[str, np.ndarray]  # metric name -> one value per user, in ``users`` order


def metric_names(k: int) -> tuple[str, str, str]:
    return (f"ndcg_at_{k}", f"recall_at_{k}", f"hit_rate_at_{k}")


def per_user_ranking_metrics(
    recommended: Mapping[str, Sequence[str]],
    relevant: Mapping[str, Collection[str]],
    k: int = 10,
) -> UserRankingMetrics:
    """NDCG@k (ideal DCG over min(|relevant|, k) hits), Recall@k (hits / |relevant|), HitRate@k."""
    if k < 1:
        raise ConfigurationError(f"k must be at least 1, got {k}")
    users = tuple(sorted(user for user, items in relevant.items() if items))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    ndcg, recall, hit_rate = (np.zeros(len(users)) for _ in range(3))
    for row, user in enumerate(users):
        targets = set(relevant[user])
        top = list(dict.fromkeys(recommended.get(user, ())))[:k]
        hit_ranks = [rank for rank, item in enumerate(top) if item in targets]
        if not hit_ranks:
            continue
        ndcg[row] = discounts[hit_ranks].sum() / ideal[min(len(targets), k) - 1]
        recall[row] = len(hit_ranks) / len(targets)
        hit_rate[row] = 1.0
    ndcg_name, recall_name, hit_rate_name = metric_names(k)
    return UserRankingMetrics(users, {ndcg_name: ndcg, recall_name: recall, hit_rate_name: hit_rate})


def paired_ranking_metrics(
    champion: Mapping[str, Sequence[str]],
    challenger: Mapping[str, Sequence[str]],
    relevant: Mapping[str, Collection[str]],
    k: int = 10,
) -> dict[str, dict[str, np.ndarray]]:
    """The ``per_user`` input of ``offline_gate`` from both models' recommendations on one holdout."""
    return {
        "champion": per_user_ranking_metrics(champion, relevant, k).values,
        "challenger": per_user_ranking_metrics(challenger, relevant, k).values,
    }
