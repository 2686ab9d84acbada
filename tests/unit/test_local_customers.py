from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow.compute as pc

from driftloop.local.customers import purchases_since, simulator_for
from driftloop.simulate import SimulatorConfig

CONFIG = json.dumps(SimulatorConfig(seed=3).to_dict(), sort_keys=True)


def test_recent_purchases_start_after_training_and_stop_at_the_last_uploaded_month() -> None:
    simulator = simulator_for(CONFIG, "seasonal")
    month_0 = simulator.month(0)
    trained_until = month_0["event_time"].to_pylist()[-1]
    recent = purchases_since(CONFIG, "seasonal", trained_until, 1)
    month_1 = simulator.month(1)
    bought = month_1.filter(pc.equal(month_1["event_type"], "purchase"))
    assert sum(len(items) for items in recent.values()) == bought.num_rows
    user = bought["user_id"][0].as_py()
    assert recent[user] == tuple(bought.filter(pc.equal(bought["user_id"], user))["item_id"].to_pylist())
    assert purchases_since(CONFIG, "seasonal", trained_until, 0) == {}


def test_a_model_trained_mid_month_gets_only_the_purchases_after_it() -> None:
    simulator = simulator_for(CONFIG, "seasonal")
    month_1 = simulator.month(1)
    middle = month_1["event_time"].to_pylist()[month_1.num_rows // 2]
    recent = purchases_since(CONFIG, "seasonal", middle, 1)
    purchases = month_1.filter(pc.equal(month_1["event_type"], "purchase"))
    later = purchases.filter(pc.greater(purchases["event_time"], middle))
    assert sum(len(items) for items in recent.values()) == later.num_rows
    assert purchases_since(CONFIG, "seasonal", datetime(2000, 1, 1, tzinfo=UTC), 0)  # everything of month 0
