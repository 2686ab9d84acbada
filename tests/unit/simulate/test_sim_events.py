"""Schema, value domains, funnel and determinism of the monthly uploads."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sim_fixtures import SMALL

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.simulate import INTERACTIONS_SCHEMA, Scenario, Simulator, SimulatorConfig
from driftloop.simulate.schema import AGE_BANDS, CATEGORIES, DEVICES, EVENT_TYPES, REGIONS

CONTRACT_COLUMNS = [
    ("user_id", pa.string()),
    ("item_id", pa.string()),
    ("event_type", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")),
    ("age_band", pa.string()),
    ("region", pa.string()),
    ("device", pa.string()),
    ("item_category", pa.string()),
    ("price", pa.float64()),
    ("discount", pa.float64()),
    ("session_minutes", pa.float64()),
    ("user_tenure_days", pa.float64()),
]


def test_schema_is_the_data_contract(small_seasonal: Simulator) -> None:
    table = small_seasonal.month(3)
    assert [(field.name, field.type) for field in table.schema] == CONTRACT_COLUMNS
    assert table.schema == INTERACTIONS_SCHEMA
    assert all(table.column(name).null_count == 0 for name in table.column_names)


@pytest.mark.parametrize("month", [0, 1, 6, 12])
def test_events_fall_inside_their_calendar_month(small_seasonal: Simulator, month: int) -> None:
    times = small_seasonal.month(month).column("event_time")
    year, number = 2025 + month // 12, month % 12 + 1
    first = dt.datetime(year, number, 1, tzinfo=dt.UTC)
    after = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    assert pc.min(times).as_py() >= first
    assert pc.max(times).as_py() < after
    assert small_seasonal.month_label(month) == f"{year}-{number:02d}"


def test_rows_are_sorted_by_time(small_seasonal: Simulator) -> None:
    times = small_seasonal.month(2).column("event_time").cast(pa.int64()).to_numpy()
    assert np.all(np.diff(times) >= 0)


@pytest.mark.parametrize("month", [0, 7, 12])
def test_value_domains(small_seasonal: Simulator, month: int) -> None:
    table = small_seasonal.month(month)
    domains = {
        "event_type": EVENT_TYPES,
        "age_band": AGE_BANDS,
        "region": REGIONS,
        "device": DEVICES,
        "item_category": CATEGORIES,
    }
    for column, allowed in domains.items():
        assert set(pc.unique(table.column(column)).to_pylist()) <= set(allowed), column
    discount = table.column("discount").to_numpy()
    assert discount.min() >= 0.0 and discount.max() < 1.0
    assert table.column("price").to_numpy().min() > 0.0
    assert table.column("session_minutes").to_numpy().min() > 0.0
    assert table.column("user_tenure_days").to_numpy().min() >= 0.0
    assert pc.all(pc.match_substring_regex(table.column("user_id"), r"^u\d{7}$")).as_py()
    assert pc.all(pc.match_substring_regex(table.column("item_id"), r"^i\d{6}$")).as_py()


def test_row_count_is_close_to_the_requested_volume(small_seasonal: Simulator) -> None:
    wanted = SMALL.events_per_month
    for month in (0, 5, 12):
        assert abs(small_seasonal.month(month).num_rows - wanted) <= 0.05 * wanted


def test_every_purchase_follows_a_cart_which_follows_a_view(small_seasonal: Simulator) -> None:
    frame = small_seasonal.month(4).to_pandas()
    first = frame.groupby(["user_id", "item_id", "event_type"]).event_time.min().unstack()
    purchased = first.dropna(subset=["purchase"])
    assert len(purchased) > 0
    assert (purchased["cart"] < purchased["purchase"]).all()
    assert (purchased["view"] < purchased["cart"]).all()
    counts = frame.event_type.value_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > 0


def test_attributes_are_consistent_per_user_and_item(small_seasonal: Simulator) -> None:
    frame = small_seasonal.month(5).to_pandas()
    assert (frame.groupby("user_id")[["age_band", "region"]].nunique() == 1).all().all()
    assert (frame.groupby("item_id")[["item_category", "price", "discount"]].nunique() == 1).all().all()
    assert (frame.groupby(["user_id", "session_minutes"]).device.nunique() == 1).all()


def test_same_seed_same_data_regardless_of_call_order() -> None:
    first = Simulator(SMALL, Scenario.SEASONAL)
    second = Simulator(SMALL, Scenario.SEASONAL)
    late = first.month(9)
    second.month(2)
    second.ground_truth(4)
    assert second.month(9).equals(late)
    assert second.month(0).equals(first.month(0))


def test_another_seed_gives_other_data(small_seasonal: Simulator) -> None:
    other = Simulator(SimulatorConfig(seed=12, n_users=300, n_items=60, events_per_month=3000))
    assert not other.month(1).equals(small_seasonal.month(1))


def test_month_zero_is_shared_by_all_scenarios(small_seasonal: Simulator, small_stationary: Simulator) -> None:
    assert small_stationary.month(0).equals(small_seasonal.month(0))
    assert not small_stationary.month(6).equals(small_seasonal.month(6))


@pytest.mark.parametrize("month", [-1, 13, 2.0, True])
def test_months_outside_the_horizon_are_rejected(small_seasonal: Simulator, month: object) -> None:
    with pytest.raises(InvalidInputError):
        small_seasonal.month(month)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"n_users": 0},
        {"n_items": 5},
        {"events_per_month": 0},
        {"start_month": "2025-13"},
        {"monthly_churn": 1.5},
        {"new_items_from_month": 0},
        {"seed": -1},
    ],
)
def test_invalid_config_is_rejected_at_construction(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SimulatorConfig(**changes)  # type: ignore[arg-type]


def test_config_round_trips_through_to_dict() -> None:
    assert SimulatorConfig(**SMALL.to_dict()) == SMALL
