"""The synthetic bucket most report tests share."""

from __future__ import annotations

from datetime import timedelta

import pytest
from report_fixtures import T0, MemoryStore, ab_record, drift_report, feedback_table, first_deployment_record


@pytest.fixture
def three_run_store() -> MemoryStore:
    """First deployment, a promotion after drift, a rollback; feedback around them."""
    store = MemoryStore()
    store.put_record(first_deployment_record("run-a", T0))
    store.put_record(ab_record("run-b", T0 + timedelta(minutes=10), "promoted", "run-a",
                               {"price": 0.3, "region": 0.02}, "promote"))
    store.put_record(ab_record("run-c", T0 + timedelta(minutes=20), "rolled_back", "run-b",
                               {"price": 0.05, "region": 0.15}, "rollback"))
    store.put_json("reports/run-b/drift.json", drift_report())
    store.put_json("reports/run-c/drift.json", drift_report(overrides={"region": {"js_threshold": 0.2}}))
    store.put_json("reports/run-b/ab-stage-1-0.json", {"stage_index": 1, "waits": 0, "action": "promote"})
    store.put_json("reports/run-b/ab-stage-0-1.json", {"stage_index": 0, "waits": 1, "action": "continue"})
    store.put_json("reports/run-b/ab-stage-0-0.json", {"stage_index": 0, "waits": 0, "action": "continue"})
    rows = []
    for minute in range(25):
        served = T0 + timedelta(minutes=minute, seconds=5)
        rows += [("champion", served, minute % 2 == 0), ("champion", served, False)]
        if 11 <= minute <= 13:
            rows.append(("challenger", served, True))
    store.put_feedback("driftloop-recommender", feedback_table(rows))
    return store
