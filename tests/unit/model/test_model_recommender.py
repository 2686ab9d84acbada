from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from model_fixtures import table_of

from driftloop.errors import InvalidInputError
from driftloop.model import recommender as recommender_module
from driftloop.model.data import ColumnMapping, at_or_after, before, time_quantile
from driftloop.model.metrics import evaluate
from driftloop.model.recommender import Recommender, RecommenderConfig, check_memory

SMALL = [
    ("alice", "apple", "purchase", "2026-01-01T10:00"),
    ("alice", "banana", "view", "2026-01-02T10:00"),
    ("bob", "apple", "purchase", "2026-01-01T11:00"),
    ("bob", "banana", "purchase", "2026-01-03T11:00"),
    ("bob", "cherry", "purchase", "2026-01-04T11:00"),
    ("carol", "banana", "purchase", "2026-01-05T11:00"),
    ("carol", "cherry", "view", "2026-01-05T12:00"),
    ("dave", "cherry", "purchase", "2026-01-06T11:00"),
    ("dave", "apple", "purchase", "2026-01-06T12:00"),
]


@pytest.mark.parametrize("algorithm", ["ease", "item_knn", "popularity"])
def test_recommendations_exclude_bought_items_but_keep_viewed_ones(algorithm: str) -> None:
    model = Recommender.fit(table_of(SMALL), RecommenderConfig(algorithm=algorithm))
    [alice] = model.recommend(["alice"], k=3)
    assert "apple" not in alice
    assert "banana" in alice  # viewed, not bought
    assert sorted(alice) == ["banana", "cherry"]  # only two items remain; no duplicates, no padding


def test_without_exclusion_bought_items_can_come_back() -> None:
    model = Recommender.fit(table_of(SMALL))
    [bob] = model.recommend(["bob"], k=3, exclude_seen=False)
    assert sorted(bob) == ["apple", "banana", "cherry"]
    assert model.recommend(["bob"], k=3) == [[]]


def test_unknown_users_get_the_most_bought_items() -> None:
    model = Recommender.fit(table_of(SMALL), RecommenderConfig(recency_half_life_days=None))
    unknown, known = model.recommend(["zoe", "alice"], k=2)
    assert unknown[0] == "apple" and unknown[1] in {"banana", "cherry"}  # 3 purchases, then 2 each
    assert "apple" not in known
    assert not model.knows("zoe") and model.knows("alice")


def test_results_follow_request_order_and_k() -> None:
    model = Recommender.fit(table_of(SMALL))
    lists = model.recommend(["carol", "zoe", "carol"], k=1)
    assert len(lists) == 3 and lists[0] == lists[2] and all(len(items) == 1 for items in lists)
    with pytest.raises(InvalidInputError):
        model.recommend(["carol"], k=0)


def test_zero_rows_fail_clearly() -> None:
    empty = table_of(SMALL).slice(0, 0)
    with pytest.raises(InvalidInputError, match="0 interactions"):
        Recommender.fit(empty)


def test_a_single_user_fails_clearly() -> None:
    single = table_of([row for row in SMALL if row[0] == "bob"])
    with pytest.raises(InvalidInputError, match="at least 2 users"):
        Recommender.fit(single)


def test_rows_missing_user_item_or_time_are_dropped_before_the_checks() -> None:
    table = pa.table({"user_id": ["a", None], "item_id": ["x", "y"], "event_time": [1.0, 2.0]})
    with pytest.raises(InvalidInputError, match="1 distinct user"):
        Recommender.fit(table, columns=ColumnMapping(event_type_col=None))


def test_other_column_names_and_untyped_events() -> None:
    table = pa.table(
        {
            "customer": ["a", "a", "b", "b", "c"],
            "product": [1, 2, 1, 3, 2],
            "ts": pa.array([1_700_000_000, 1_700_000_100, 1_700_000_200, 1_700_000_300, 1_700_000_400]),
        }
    )
    columns = ColumnMapping(user_col="customer", item_col="product", time_col="ts", event_type_col=None)
    model = Recommender.fit(table, columns=columns)
    # Without event types every interaction counts as bought and is excluded.
    assert "1" not in model.recommend(["a"], k=3)[0] and "2" not in model.recommend(["a"], k=3)[0]
    assert model.recommend(["a"], k=3) == [["3"]]


def test_save_and_load_round_trip(tmp_path, interactions: pa.Table) -> None:
    model = Recommender.fit(interactions)
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    users = interactions.column("user_id").unique().to_pylist()[:50] + ["nobody"]
    assert loaded.recommend(users, k=10) == model.recommend(users, k=10)
    assert loaded.config == model.config and loaded.trained_until == model.trained_until


def test_load_rejects_a_folder_without_a_model(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="recommender.json"):
        Recommender.load(tmp_path)


@pytest.mark.parametrize("algorithm", ["ease", "item_knn"])
def test_personalisation_beats_popularity_on_clustered_data(interactions: pa.Table, algorithm: str) -> None:
    cutoff = time_quantile(interactions, 0.8)
    train, test = before(interactions, cutoff), at_or_after(interactions, cutoff)
    model = Recommender.fit(train, RecommenderConfig(algorithm=algorithm))
    result = evaluate(model, train, test)
    assert result.model["users_evaluated"] > 100
    assert result.model["ndcg_at_10"] >= 1.3 * result.baseline_popularity["ndcg_at_10"]
    assert np.array_equal(result.model_per_user["user_id"], result.baseline_per_user["user_id"])


def test_a_catalog_beyond_max_items_is_fitted_by_sparse_knn_over_every_item(interactions: pa.Table) -> None:
    model = Recommender.fit(interactions, RecommenderConfig(max_items=5, neighbours=3))
    knn = Recommender.fit(interactions, RecommenderConfig(algorithm="item_knn", neighbours=3))
    assert model.fitted_algorithm == "item_knn" and model.describe()["fitted_algorithm"] == "item_knn"
    bought_by_two = np.bincount(model.history_items, minlength=model.n_items) >= 2
    has_neighbours = (model.neighbour_weights != 0).any(axis=1)
    assert has_neighbours.sum() > 5 and np.array_equal(has_neighbours, bought_by_two)
    assert np.array_equal(model.neighbour_items, knn.neighbour_items)
    assert Recommender.fit(interactions).fitted_algorithm == "ease"  # the same data fits EASE's default cap


def test_sparse_knn_finds_the_top_cosine_neighbours_of_a_dense_reference(
    interactions: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recommender_module, "_PRODUCT_BUDGET", 5_000)  # many blocks of the product
    config = RecommenderConfig(algorithm="item_knn", neighbours=4, shrinkage=2.0)
    model = Recommender.fit(interactions, config)
    matrix = np.zeros((model.n_users, model.n_items))
    rows = np.repeat(np.arange(model.n_users), np.diff(model.history_indptr))
    matrix[rows, model.history_items] = model.history_values
    modelled = (matrix > 0).sum(axis=0) >= 2
    matrix[:, ~modelled] = 0
    gram = matrix.T @ matrix
    norms = np.sqrt(np.diag(gram))
    cosine = gram / (np.outer(norms, norms) + config.shrinkage)
    np.fill_diagonal(cosine, -np.inf)
    expected = -np.sort(-cosine[modelled], axis=1)[:, :4]
    assert np.allclose(model.neighbour_weights[modelled], np.where(expected > 0, expected, 0), atol=1e-5)
    picked = np.take_along_axis(cosine[modelled], model.neighbour_items[modelled], axis=1)
    used = model.neighbour_weights[modelled] > 0
    assert np.allclose(picked[used], model.neighbour_weights[modelled][used], atol=1e-5)


@pytest.mark.parametrize("algorithm", ["ease", "item_knn", "popularity"])
def test_candidate_scoring_of_large_catalogs_ranks_like_dense_scoring(
    interactions: pa.Table, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    model = Recommender.fit(interactions, RecommenderConfig(algorithm=algorithm, neighbours=20))
    users = [*model.user_ids[:40].tolist(), "newcomer", "nobody"]
    recent = {users[0]: model.seen_items(users[5]), "newcomer": model.seen_items(users[7])}
    requests = [(10, True, recent), (25, False, None), (model.n_items, True, None)]
    dense = [model.recommend(users, k=k, exclude_seen=exclude, recent=extra) for k, exclude, extra in requests]
    monkeypatch.setattr(recommender_module, "_DENSE_SCORING_MAX_ITEMS", 0)
    sparse = [model.recommend(users, k=k, exclude_seen=exclude, recent=extra) for k, exclude, extra in requests]
    assert sparse[:2] == dense[:2]
    # The full ranking agrees on everything but the items EASE scores below zero, which neither path
    # orders by score among themselves: the same set, in the same order once those are left out.
    for sparse_list, dense_list in zip(sparse[2], dense[2], strict=True):
        assert sorted(sparse_list) == sorted(dense_list)


@pytest.mark.parametrize("algorithm", ["ease", "item_knn"])
def test_the_matrix_product_scores_like_the_sum_over_neighbour_pairs(
    interactions: pa.Table, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    model = Recommender.fit(interactions, RecommenderConfig(algorithm=algorithm, neighbours=20))
    users = [*model.user_ids[:60].tolist(), "newcomer"]
    recent = {users[0]: model.seen_items(users[5]), "newcomer": model.seen_items(users[7])}
    entries = model._with_recent(model._history_entries(users), [model._recent_codes(users, recent).get(
        position, np.empty(0, dtype=np.int64)) for position in range(len(users))])
    ways = {}
    for way, advantage in (("pairs", 0), ("product", 10**12)):
        monkeypatch.setattr(recommender_module, "_PRODUCT_ADVANTAGE", advantage)
        ways[way] = (model._scores(entries, len(users)), model.recommend(users, k=10, recent=recent))
    assert model.n_items <= recommender_module._NEIGHBOUR_MATRIX_MAX_ITEMS
    assert np.allclose(ways["pairs"][0], ways["product"][0], rtol=1e-6, atol=1e-9)
    assert ways["pairs"][1] == ways["product"][1]
    assert np.count_nonzero(ways["product"][0]) > 0


def test_a_fit_that_would_not_fit_in_memory_fails_first_naming_the_parameter(interactions: pa.Table) -> None:
    with pytest.raises(InvalidInputError, match=r"memory_limit_gb=0\.001.*raise memory_limit_gb"):
        Recommender.fit(interactions, RecommenderConfig(algorithm="item_knn", memory_limit_gb=0.001))
    million = {"rows": 10_000_000, "users": 2_000_000, "items": 1_000_000}
    check_memory(RecommenderConfig(), **million)  # the defaults admit a million-item catalog (item-kNN)
    with pytest.raises(InvalidInputError, match=r"EASE on up to 1000000 items \(max_items=1000000\).*lower max_items"):
        check_memory(RecommenderConfig(max_items=1_000_000), **million)
    with pytest.raises(InvalidInputError, match=r"2000000000 interactions.*memory_limit_gb=12"):
        check_memory(RecommenderConfig(), rows=2_000_000_000, users=2_000_000, items=1_000_000)


def test_the_fitted_algorithm_survives_save_and_load(interactions: pa.Table, tmp_path) -> None:
    model = Recommender.fit(interactions, RecommenderConfig(max_items=5))
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert loaded.fitted_algorithm == "item_knn"
    users = model.user_ids[:10].tolist()
    assert loaded.recommend(users) == model.recommend(users)


@pytest.mark.parametrize(
    "bad",
    [
        {"algorithm": "svd"},
        {"l2": 0},
        {"neighbours": 0},
        {"memory_limit_gb": 0},
        {"recency_half_life_days": -1},
        {"event_weights": {"view": -1.0}},
        {"target_event_types": ()},
    ],
)
def test_config_is_validated(bad: dict) -> None:
    with pytest.raises(InvalidInputError):
        RecommenderConfig(**bad)


def test_config_round_trips_through_a_dict() -> None:
    config = RecommenderConfig(algorithm="item_knn", target_event_types=("purchase", "cart"))
    assert RecommenderConfig.from_dict(config.to_dict()) == config


def test_recent_items_join_the_history_and_are_excluded() -> None:
    model = Recommender.fit(table_of(SMALL))
    [carol] = model.recommend(["carol"], k=3, recent={"carol": ["apple"]})
    assert "apple" not in carol and "banana" not in carol  # bought since training, bought in training
    [carol_without_exclusion] = model.recommend(["carol"], k=3, exclude_seen=False, recent={"carol": ["apple"]})
    assert "apple" in carol_without_exclusion


def test_recent_items_move_the_scores_like_training_on_them_would(interactions: pa.Table) -> None:
    model = Recommender.fit(interactions)
    user = model.user_ids[0]
    history = model.seen_items(user, bought_only=False)
    strangers = [item for item in model.popular_items(model.n_items) if item not in history][:20]
    [plain] = model.recommend([user], k=10)
    [updated] = model.recommend([user], k=10, recent={user: strangers})
    assert updated != plain
    assert not set(updated) & set(strangers)


def test_unknown_user_with_recent_items_gets_item_item_scores(interactions: pa.Table) -> None:
    model = Recommender.fit(interactions)
    donor = model.user_ids[3]
    bought = model.seen_items(donor)
    [cold] = model.recommend(["newcomer"], k=10, recent={"newcomer": bought})
    [donor_list] = model.recommend([donor], k=10)
    assert cold != model.popular_items(10)
    assert not set(cold) & set(bought)
    assert len(set(cold) & set(donor_list)) >= 5  # same purchases, mostly the same neighbours


def test_unknown_recent_items_are_ignored() -> None:
    model = Recommender.fit(table_of(SMALL))
    assert model.recommend(["zoe", "alice"], k=2, recent={"zoe": ["durian"], "alice": ["durian", 7]}) == (
        model.recommend(["zoe", "alice"], k=2)
    )


def test_recent_must_be_a_mapping_of_lists() -> None:
    model = Recommender.fit(table_of(SMALL))
    with pytest.raises(InvalidInputError, match="recent must map"):
        model.recommend(["alice"], recent=[("alice", ["apple"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="not a string"):
        model.recommend(["alice"], recent={"alice": "apple"})


def test_recent_items_are_scored_per_user_in_a_batch(interactions: pa.Table) -> None:
    model = Recommender.fit(interactions)
    users = model.user_ids[:5].tolist()
    recent = {users[1]: model.seen_items(users[4])}
    batch = model.recommend(users, k=10, recent=recent)
    one_by_one = [model.recommend([user], k=10, recent=recent)[0] for user in users]
    assert batch == one_by_one
    assert batch[0] == model.recommend([users[0]], k=10)[0]
