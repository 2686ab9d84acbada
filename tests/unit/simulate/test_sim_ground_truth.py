"""Ground truth: purchase probabilities agree with the events, and the per-user summaries hold up."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.simulate import GROUND_TRUTH_SCHEMA, INTERACTIONS_SCHEMA, Simulator


def test_purchases_match_the_ground_truth_probability_of_views(small_seasonal: Simulator) -> None:
    for month in (0, 8):
        events = small_seasonal.month(month)
        views = events.filter(pc.equal(events.column("event_type"), "view"))
        probability = small_seasonal.purchase_probability(
            views.column("user_id").to_pylist(), views.column("item_id").to_pylist(), month
        )
        purchases = pc.sum(pc.equal(events.column("event_type"), "purchase")).as_py()
        spread = np.sqrt((probability * (1 - probability)).sum())
        assert abs(purchases - probability.sum()) < 4 * spread


def test_probabilities_are_probabilities_and_aligned(small_seasonal: Simulator) -> None:
    catalog = small_seasonal.catalog(2)
    users = small_seasonal.active_user_ids(2).to_pylist()[:20]
    items = catalog.column("item_id").to_pylist()[:20]
    probability = small_seasonal.purchase_probability(users, items, 2)
    assert probability.shape == (20,)
    assert np.all((probability > 0) & (probability < 1))
    reversed_pairs = small_seasonal.purchase_probability(users[::-1], items[::-1], 2)
    np.testing.assert_array_equal(reversed_pairs, probability[::-1])


@pytest.mark.parametrize("user", ["nobody", None, "u9999999", "u00000001", "U0000001", "u-000001", ""])
def test_malformed_or_unknown_user_ids_are_not_found(small_seasonal: Simulator, user: str | None) -> None:
    with pytest.raises(NotFoundError, match="user"):
        small_seasonal.purchase_probability([user], ["i000001"], 0)  # type: ignore[list-item]


def test_ids_may_come_as_numpy_arrays_or_be_empty(small_seasonal: Simulator) -> None:
    users = np.array(["u0000001", "u0000002"])
    items = np.array(["i000003", "i000004"])
    np.testing.assert_array_equal(
        small_seasonal.purchase_probability(users, items, 1),
        small_seasonal.purchase_probability(users.tolist(), items.tolist(), 1),
    )
    assert small_seasonal.purchase_probability([], [], 1).shape == (0,)


def test_unknown_ids_and_mismatched_lengths_are_rejected(small_seasonal: Simulator) -> None:
    user = small_seasonal.active_user_ids(0)[0].as_py()
    with pytest.raises(NotFoundError, match="user"):
        small_seasonal.purchase_probability(["nobody"], ["i000001"], 0)
    with pytest.raises(NotFoundError, match="item"):
        small_seasonal.purchase_probability([user], ["i999999"], 0)
    with pytest.raises(InvalidInputError):
        small_seasonal.purchase_probability([user, user], ["i000001"], 0)


def test_new_items_launch_mid_year_and_cannot_be_bought_before(small_seasonal: Simulator) -> None:
    original = set(small_seasonal.catalog(0).column("item_id").to_pylist())
    later = small_seasonal.catalog(12)
    launched = [item for item in later.column("item_id").to_pylist() if item not in original]
    assert launched
    assert set(small_seasonal.catalog(3).column("item_id").to_pylist()) == original
    assert pc.min(later.column("launch_month")).as_py() == 0
    user = small_seasonal.active_user_ids(12)[0].as_py()
    assert small_seasonal.purchase_probability([user], [launched[0]], 0)[0] == 0.0
    assert small_seasonal.purchase_probability([user], [launched[0]], 12)[0] > 0.0
    sold_later = set(small_seasonal.month(12).column("item_id").to_pylist())
    assert sold_later & set(launched)
    assert not set(small_seasonal.month(3).column("item_id").to_pylist()) - original


def test_stationary_catalogue_never_changes(small_stationary: Simulator) -> None:
    first, last = small_stationary.catalog(0), small_stationary.catalog(12)
    assert first.column("item_id").equals(last.column("item_id"))
    assert first.column("price").equals(last.column("price"))


def test_ground_truth_has_one_summary_per_active_user(small_seasonal: Simulator) -> None:
    truth = small_seasonal.ground_truth(5)
    assert truth.schema == GROUND_TRUTH_SCHEMA
    assert truth.column("user_id").to_pylist() == small_seasonal.active_user_ids(5).to_pylist()
    assert set(truth.column("month").to_pylist()) == {"2025-06"}
    shares = np.array(truth.column("top_category_shares").to_pylist())
    assert np.all(np.diff(shares, axis=1) <= 0) and np.all(shares.sum(axis=1) <= 1 + 1e-9)
    assert all(len(set(names)) == 3 for names in truth.column("top_categories").to_pylist())


def test_best_purchase_probability_bounds_every_item(small_seasonal: Simulator) -> None:
    truth = small_seasonal.ground_truth(9).slice(0, 5)
    items = small_seasonal.catalog(9).column("item_id").to_pylist()
    for user, best in zip(
        truth.column("user_id").to_pylist(), truth.column("best_purchase_probability").to_pylist(), strict=True
    ):
        probability = small_seasonal.purchase_probability([user] * len(items), items, 9)
        assert best == pytest.approx(probability.max())


def test_top_category_is_what_heavy_users_browse_most(small_seasonal: Simulator) -> None:
    events = small_seasonal.month(7).to_pandas()
    views = events[events.event_type == "view"]
    counts = views.groupby("user_id").item_category.agg(["size", lambda names: names.value_counts().index[0]])
    counts.columns = ["views", "most_viewed"]
    heavy = counts[counts.views >= 20]
    truth = small_seasonal.ground_truth(7).to_pandas().set_index("user_id")
    top = truth.loc[heavy.index, "top_categories"].str[0]
    assert len(heavy) >= 20
    assert (top == heavy.most_viewed).mean() > 0.6


def test_written_months_read_back_identically(small_seasonal: Simulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = small_seasonal.write_months(str(tmp_path / "incoming"), [0, 1, 12])
    assert [path.rsplit("/", 1)[-1] for path in paths] == ["2025-01.parquet", "2025-02.parquet", "2026-01.parquet"]
    for month, path in zip([0, 1, 12], paths, strict=True):
        table = pq.read_table(path)
        assert table.schema == INTERACTIONS_SCHEMA
        assert table.equals(small_seasonal.month(month))
    truth_paths = small_seasonal.write_ground_truth(str(tmp_path / "truth"), [1])
    assert pq.read_table(truth_paths[0]).equals(small_seasonal.ground_truth(1))
