"""The simulated shop rewards personalisation, and drift erodes a model trained on month 0.

The recommender here is a deliberately simple category-affinity model: a user's category mix in
the training events times each item's purchase popularity. It is scored by the ground truth: the
mean purchase probability of its top-10 slots, for customers it has seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sim_fixtures import DEFAULT

from driftloop.simulate import CATEGORIES, Scenario, Simulator

TOP_K = 10
EVENT_WEIGHT = {"view": 1.0, "cart": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class CategoryAffinityModel:
    users: pd.Index
    category_share: np.ndarray
    items: np.ndarray
    item_category: np.ndarray
    item_popularity: np.ndarray

    @classmethod
    def fit(cls, tables: list[pa.Table]) -> CategoryAffinityModel:
        frame = pa.concat_tables(tables).to_pandas()
        frame["weight"] = frame.event_type.map(EVENT_WEIGHT)
        per_user = frame.pivot_table(
            index="user_id", columns="item_category", values="weight", aggfunc="sum", fill_value=0.0
        ).reindex(columns=list(CATEGORIES), fill_value=0.0)
        share = per_user.to_numpy() + 0.5
        items = frame.drop_duplicates("item_id").set_index("item_id").item_category
        purchases = frame[frame.event_type == "purchase"].item_id.value_counts().reindex(items.index, fill_value=0)
        views = frame[frame.event_type == "view"].item_id.value_counts().reindex(items.index, fill_value=0)
        return cls(
            users=per_user.index,
            category_share=share / share.sum(axis=1, keepdims=True),
            items=items.index.to_numpy(),
            item_category=np.array([CATEGORIES.index(name) for name in items]),
            item_popularity=purchases.to_numpy() + 0.1 * views.to_numpy() + 0.5,
        )

    def recommend(self, user_ids: list[str], personal: bool = True) -> np.ndarray:
        """(users, TOP_K) item ids; ``personal=False`` gives everyone the most popular items."""
        popularity = np.log(self.item_popularity)
        if not personal:
            top = self.items[np.argsort(-popularity, kind="stable")[:TOP_K]]
            return np.tile(top, (len(user_ids), 1))
        rows = self.users.get_indexer(user_ids)
        score = np.log(self.category_share[rows])[:, self.item_category] + popularity
        return self.items[np.argsort(-score, axis=1, kind="stable")[:, :TOP_K]]


def expected_hit_rate(sim: Simulator, model: CategoryAffinityModel, month: int, personal: bool = True) -> float:
    """Mean true purchase probability per recommended slot, over customers the model knows."""
    active = set(sim.active_user_ids(month).to_pylist())
    users = [user for user in model.users if user in active]
    recommended = model.recommend(users, personal)
    probability = sim.purchase_probability(np.repeat(users, TOP_K).tolist(), recommended.ravel().tolist(), month)
    return float(probability.mean())


@pytest.fixture(scope="module")
def seasonal() -> Simulator:
    return Simulator(DEFAULT, Scenario.SEASONAL)


@pytest.fixture(scope="module")
def stationary() -> Simulator:
    return Simulator(DEFAULT, Scenario.NO_DRIFT)


@pytest.fixture(scope="module")
def original_model(seasonal: Simulator) -> CategoryAffinityModel:
    return CategoryAffinityModel.fit([seasonal.month(0)])


def test_personalisation_clearly_beats_popularity(seasonal: Simulator, original_model: CategoryAffinityModel) -> None:
    personal = expected_hit_rate(seasonal, original_model, 0)
    popular = expected_hit_rate(seasonal, original_model, 0, personal=False)
    assert personal > 1.5 * popular


def test_the_original_model_stays_good_without_drift(
    stationary: Simulator, original_model: CategoryAffinityModel
) -> None:
    at_launch = expected_hit_rate(stationary, original_model, 0)
    for month in (6, 12):
        assert expected_hit_rate(stationary, original_model, month) == pytest.approx(at_launch, rel=0.05)


def test_seasonal_drift_erodes_the_original_model(seasonal: Simulator, original_model: CategoryAffinityModel) -> None:
    at_launch = expected_hit_rate(seasonal, original_model, 0)
    assert expected_hit_rate(seasonal, original_model, 3) < 0.9 * at_launch
    assert expected_hit_rate(seasonal, original_model, 6) < 0.7 * at_launch
    assert expected_hit_rate(seasonal, original_model, 12) < 0.8 * at_launch


def test_retraining_on_original_plus_new_data_recovers(
    seasonal: Simulator, original_model: CategoryAffinityModel
) -> None:
    for month in (6, 12):
        stale = expected_hit_rate(seasonal, original_model, month)
        retrained = CategoryAffinityModel.fit([seasonal.month(0), seasonal.month(month)])
        assert expected_hit_rate(seasonal, retrained, month) > 1.3 * stale


def test_population_shift_alone_keeps_known_customers_tastes() -> None:
    shifted = Simulator(DEFAULT, Scenario.POPULATION_SHIFT)
    model = CategoryAffinityModel.fit([shifted.month(0)])
    at_launch = expected_hit_rate(shifted, model, 0)
    assert expected_hit_rate(shifted, model, 12) == pytest.approx(at_launch, rel=0.1)
