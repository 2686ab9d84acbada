"""Invariants that hold for any small shop, whatever the seed, size, start month or scenario."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.simulate import INTERACTIONS_SCHEMA, Scenario, Simulator, SimulatorConfig
from driftloop.simulate.world import month_start_us

shops = st.builds(
    SimulatorConfig,
    seed=st.integers(0, 2**32),
    n_users=st.integers(1, 60),
    n_items=st.integers(12, 40),
    events_per_month=st.integers(1, 600),
    start_month=st.sampled_from(["2024-02", "2025-01", "2025-07", "2025-12"]),
    horizon_months=st.integers(1, 13),
    monthly_churn=st.floats(0.0, 0.5),
    new_item_rate=st.floats(0.0, 0.3),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=shops, scenario=st.sampled_from(list(Scenario)), data=st.data())
def test_any_month_of_any_shop_is_well_formed(config: SimulatorConfig, scenario: Scenario, data: st.DataObject) -> None:
    simulator = Simulator(config, scenario)
    month = data.draw(st.integers(0, config.horizon_months))
    table = simulator.month(month)
    assert table.schema == INTERACTIONS_SCHEMA
    assert table.num_rows >= 1
    times = table.column("event_time").cast(pa.int64()).to_numpy()
    assert month_start_us(config, month) <= times.min() and times.max() < month_start_us(config, month + 1)
    assert table.column("user_tenure_days").to_numpy().min() >= 0
    assert table.column("session_minutes").to_numpy().min() > 0
    on_sale = set(simulator.catalog(month).column("item_id").to_pylist())
    assert set(pc.unique(table.column("item_id")).to_pylist()) <= on_sale
    assert set(pc.unique(table.column("user_id")).to_pylist()) <= set(simulator.active_user_ids(month).to_pylist())
    probability = simulator.purchase_probability(
        table.column("user_id").to_pylist(), table.column("item_id").to_pylist(), month
    )
    assert np.all((probability > 0) & (probability < 1))
    assert Simulator(config, scenario).month(month).equals(table)
