"""The Retrain decisions section: every trigger's verdict with the numbers behind it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from report_fixtures import T0, MemoryStore, ab_record, first_deployment_record

from driftloop.report import build_report
from driftloop.report.build import DATA_FILE
from driftloop.report.decisions import decision_row


def _with_decision(record: dict[str, Any], *, retrain: bool, forced: list[str] | None = None) -> dict[str, Any]:
    record["evidence"]["drift"]["retrain"] = {
        "policy": "auto", "retrain": retrain, "reasons": ["staleness 42.00 USD exceeds retraining 5.01 USD"],
        "expected_gain": 0.0123, "gain_ci": [0.004, 0.0206], "staleness_cost": 42.0, "retraining_cost": 5.0139,
        "signals": {"ndcg_at_10": 0.181, "ndcg_ci": [0.162, 0.2], "hit_rate_at_10": 0.41, "users": 312,
                    "accuracy_reason": None, "item_novelty": 0.087, "user_novelty": 0.21, "period_days": 30.0,
                    "days_since_training": 61.5, "interactions_since_training": 16020, "data_drift": "warn"},
        "parameters": {"value_per_point": 10.0}, "report_key": f"reports/{record['run_id']}/decision.json",
        "policy_state": {"accumulated": 42.0},
    }
    if forced:
        record["evidence"]["drift"]["retrain"]["overridden_by"] = forced
    return record


def test_a_run_without_a_drift_step_has_no_row_and_an_old_record_still_reads() -> None:
    first = first_deployment_record("run-a", T0)
    first["evidence"].pop("drift", None)
    assert decision_row(first) is None
    old = ab_record("run-b", T0, "promoted", "run-a", {"price": 0.3}, "promote")
    row = decision_row(old)
    assert row is not None and row.policy is None and row.decision == "retrain" and row.why == "price drifted"


def test_the_page_shows_each_trigger_s_money_and_signals(tmp_path: Path) -> None:
    store = MemoryStore()
    store.put_record(first_deployment_record("run-a", T0))
    store.put_record(_with_decision(ab_record("run-b", T0 + timedelta(minutes=10), "promoted", "run-a",
                                              {"price": 0.3}, "promote"), retrain=True))
    store.put_record(_with_decision(ab_record("run-c", T0 + timedelta(minutes=20), "rolled_back", "run-b",
                                              {"price": 0.3}, "rollback"), retrain=False,
                                    forced=["alarm driftloop-conversion-drop is in ALARM"]))
    page = build_report(store, tmp_path).read_text()
    section = page[page.index("<h2 id='decisions'>"):page.index("<h2 id='conversion'>")]
    for text in ("0.0123", "[0.0040, 0.0206]", "$42.00", "$5.01", "0.181", "[0.162, 0.200]", "8.7%", "21.0%",
                 "61.5", "16,020", "overridden: alarm driftloop-conversion-drop is in ALARM"):
        assert text in section, text
    details = page[page.index("id='run-run-b'"):]
    assert "staleness 42.00 USD exceeds retraining 5.01 USD" in details  # the policy's reasons, in full
    assert "reports/run-b/decision.json" in details  # and where the full evidence is
    data = json.loads((tmp_path / DATA_FILE).read_text())
    assert [row["run_id"] for row in data["decisions"]] == ["run-a", "run-b", "run-c"]
    assert data["decisions"][0]["policy"] is None  # a first deployment retrains without asking the policy
    assert data["decisions"][2]["forced_by"] == ["alarm driftloop-conversion-drop is in ALARM"]
