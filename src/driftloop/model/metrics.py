"""Top-K ranking metrics per user (for paired comparisons) and their means, plus the popularity baseline.

Definitions (binary relevance, ``holdout`` = the items a user bought after the split):
- hit rate@k: 1 if any of the top k is in the holdout;
- recall@k: hits / min(k, |holdout|) (so a perfect list scores 1 even when |holdout| > k);
- NDCG@k: sum over hits of 1/log2(rank+1), divided by the same sum for an ideal list.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from driftloop.errors import InvalidInputError
from driftloop.model.data import ITEM, USER, holdout_items, target_rows
from driftloop.model.recommender import Recommender

METRIC_NAMES = ("ndcg", "recall", "hit_rate")


def metric_key(name: str, k: int) -> str:
    return f"{name}_at_{k}"


def per_user_metrics(
    recommendations: Mapping[str, Sequence[str]], holdout: Mapping[str, Collection[str]], k: int = 10
) -> dict[str, np.ndarray]:
    """One value per holdout user (sorted by user id, under ``"user_id"``) for each metric.

    Users in ``holdout`` without recommendations score 0; users with an empty holdout are skipped.
    """
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, not {k}")
    users = sorted(user for user, items in holdout.items() if items)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    ndcg = np.zeros(len(users))
    recall = np.zeros(len(users))
    hits = np.zeros(len(users))
    for index, user in enumerate(users):
        relevant = holdout[user]
        ranked = list(recommendations.get(user, ()))[:k]
        hit_mask = np.fromiter((item in relevant for item in ranked), dtype=bool, count=len(ranked))
        found = int(hit_mask.sum())
        best_possible = min(k, len(relevant))
        ndcg[index] = discounts[: len(ranked)][hit_mask].sum() / ideal[best_possible - 1]
        recall[index] = found / best_possible
        hits[index] = float(found > 0)
    return {
        "user_id": np.asarray(users, dtype=str),
        metric_key("ndcg", k): ndcg,
        metric_key("recall", k): recall,
        metric_key("hit_rate", k): hits,
    }


def summarise(per_user: Mapping[str, np.ndarray]) -> dict[str, float | int]:
    """Means of every per-user metric, and how many users they average over."""
    users = len(per_user["user_id"])
    summary: dict[str, float | int] = {
        name: float(values.mean()) if users else 0.0 for name, values in per_user.items() if name != "user_id"
    }
    summary["users_evaluated"] = users
    return summary


def popularity_ranking(train: pa.Table, target_event_types: Collection[str]) -> list[str]:
    """Items by how many target events (purchases) they had in ``train``, most first (ties by id)."""
    targets = target_rows(train, target_event_types)
    if targets.num_rows == 0:
        targets = train
    counts = targets.group_by(ITEM).aggregate([(USER, "count")]).to_pydict()
    pairs = sorted(zip(counts[ITEM], counts[f"{USER}_count"], strict=True), key=lambda pair: (-pair[1], pair[0]))
    return [item for item, _ in pairs]


def popularity_recommendations(
    ranking: Sequence[str], users: Collection[str], seen: Mapping[str, Collection[str]], k: int
) -> dict[str, list[str]]:
    """The baseline: the ``k`` most popular items each user has not already bought."""
    result: dict[str, list[str]] = {}
    for user in users:
        exclude = seen.get(user, ())
        chosen: list[str] = []
        for item in ranking:
            if item not in exclude:
                chosen.append(item)
                if len(chosen) == k:
                    break
        result[user] = chosen
    return result


@dataclass(frozen=True)
class Evaluation:
    """Model vs popularity baseline on one time split; per-user arrays are aligned by ``user_id``."""

    model: dict[str, float | int]
    baseline_popularity: dict[str, float | int]
    model_per_user: dict[str, np.ndarray]
    baseline_per_user: dict[str, np.ndarray]
    cold_users_skipped: int

    def to_dict(self) -> dict[str, object]:
        return {
            **self.model,
            "baseline_popularity": dict(self.baseline_popularity),
            "cold_users_skipped": self.cold_users_skipped,
        }


def evaluate(recommender: Recommender, train: pa.Table, test: pa.Table, k: int = 10) -> Evaluation:
    """Model vs popularity on a time split, over the users the model knows and the items they bought in
    ``test`` but had not bought before. Users unknown to the model are counted, not scored."""
    targets = recommender.config.target_event_types
    bought_later = holdout_items(test, targets)
    holdout: dict[str, set[str]] = {}
    for user, items in bought_later.items():
        if recommender.knows(user):
            fresh = items - set(recommender.seen_items(user))
            if fresh:
                holdout[user] = fresh
    users = sorted(holdout)
    model_lists = dict(zip(users, recommender.recommend(users, k=k), strict=True))
    seen = {user: set(recommender.seen_items(user)) for user in users}
    baseline_lists = popularity_recommendations(popularity_ranking(train, targets), users, seen, k)
    model_per_user = per_user_metrics(model_lists, holdout, k)
    baseline_per_user = per_user_metrics(baseline_lists, holdout, k)
    return Evaluation(
        model=summarise(model_per_user),
        baseline_popularity=summarise(baseline_per_user),
        model_per_user=model_per_user,
        baseline_per_user=baseline_per_user,
        cold_users_skipped=sum(1 for user in bought_later if not recommender.knows(user)),
    )
