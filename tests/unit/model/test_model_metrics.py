from __future__ import annotations

import math

import numpy as np
import pytest
from model_fixtures import table_of

from driftloop.errors import InvalidInputError
from driftloop.model.data import ColumnMapping, normalise_interactions
from driftloop.model.metrics import (
    per_user_metrics,
    popularity_ranking,
    popularity_recommendations,
    summarise,
)


def test_per_user_values_match_hand_computation() -> None:
    recommendations = {"a": ["x", "y", "z"], "b": ["p", "q"], "c": ["m"]}
    holdout = {"a": {"y", "w"}, "b": {"q"}, "c": {"n"}, "d": {"x"}, "e": set()}
    result = per_user_metrics(recommendations, holdout, k=3)
    assert result["user_id"].tolist() == ["a", "b", "c", "d"]  # sorted; empty holdout skipped
    ideal_two = 1 + 1 / math.log2(3)
    np.testing.assert_allclose(result["ndcg_at_3"], [(1 / math.log2(3)) / ideal_two, 1 / math.log2(3), 0, 0])
    np.testing.assert_allclose(result["recall_at_3"], [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(result["hit_rate_at_3"], [1, 1, 0, 0])


def test_recall_is_normalised_by_k_when_the_holdout_is_larger() -> None:
    result = per_user_metrics({"a": ["1", "2"]}, {"a": {"1", "2", "3", "4"}}, k=2)
    assert result["recall_at_2"][0] == 1.0 and result["ndcg_at_2"][0] == pytest.approx(1.0)


def test_only_the_first_k_recommendations_count() -> None:
    result = per_user_metrics({"a": ["x", "y", "hit"]}, {"a": {"hit"}}, k=2)
    assert result["hit_rate_at_2"][0] == 0.0


def test_summary_means_and_count() -> None:
    summary = summarise(per_user_metrics({"a": ["x"], "b": ["z"]}, {"a": {"x"}, "b": {"y"}}, k=1))
    assert summary == {"ndcg_at_1": 0.5, "recall_at_1": 0.5, "hit_rate_at_1": 0.5, "users_evaluated": 2}
    with pytest.raises(InvalidInputError):
        per_user_metrics({}, {}, k=0)


def test_popularity_counts_purchases_and_skips_what_each_user_bought() -> None:
    train = normalise_interactions(
        table_of(
            [
                ("a", "x", "purchase", "2026-01-01T00:00"),
                ("b", "x", "purchase", "2026-01-01T00:00"),
                ("a", "y", "purchase", "2026-01-01T00:00"),
                ("a", "z", "view", "2026-01-01T00:00"),
                ("b", "z", "view", "2026-01-01T00:00"),
                ("c", "z", "view", "2026-01-01T00:00"),
            ]
        ),
        ColumnMapping(),
    )
    ranking = popularity_ranking(train, ("purchase",))
    assert ranking == ["x", "y"]
    assert popularity_recommendations(ranking, ["a", "b", "new"], {"a": {"x", "y"}, "b": {"x"}}, k=2) == {
        "a": [],
        "b": ["y"],
        "new": ["x", "y"],
    }
