"""The retrain decision through the real template and state machine: evidence, policies, bad parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import running, runs_of

from driftloop.config import Settings
from driftloop.local.shop import Shop, data_bucket, upload_month
from driftloop.pipeline import drift
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import build_services

NEVER = {"RetrainPolicy": "schedule", "RetrainEveryDays": "100000", "RetrainChallenger": "off"}


def upload_and_wait(world: Any, runner: Any, workspace: Path, month: int) -> dict[str, Any]:
    upload_month(world, Shop.load(workspace), month)
    runner.wait(timeout=600)
    return runs_of(world)[-1]


def decision_report(world: Any, key: str) -> dict[str, Any]:
    body = world.client("s3").get_object(Bucket=data_bucket(world), Key=key)["Body"].read()
    return json.loads(body)


def test_the_record_carries_the_evidence_to_recompute_the_decision(workspace: Path) -> None:
    with running(workspace) as (world, runner):
        run = upload_and_wait(world, runner, workspace, 1)
        retrain = run["evidence"]["drift"]["retrain"]
        assert retrain["policy"] == "auto"
        signals = retrain["signals"]
        assert signals["users"] > 0 and 0 <= signals["ndcg_at_10"] <= 1
        assert signals["ndcg_ci"][0] <= signals["ndcg_at_10"] <= signals["ndcg_ci"][1]
        assert signals["days_since_training"] > 0 and signals["interactions_since_training"] > 0
        assert signals["data_drift"] in ("none", "warn", "retrain")
        assert retrain["retraining_cost"] > 0 and retrain["staleness_cost"] >= 0
        assert run["decision"]["decision"] == run["evidence"]["drift"]["decision"]
        assert run["decision"]["policy_retrain"] is retrain["retrain"]
        assert (run["evidence"]["drift"]["decision"] == "retrain") is retrain["retrain"], "nothing forced this run"
        assert run["outcome"] != "no_drift" if retrain["retrain"] else run["outcome"] == "no_drift"
        full = decision_report(world, retrain["report_key"])
        assert full["decision"]["retrain"] is retrain["retrain"]
        assert full["settings"]["value_per_ndcg_point"] == 0.5 and full["hourly_price"] == 0.23
        assert full["history"]["recent_job_seconds"], "the seeding run's training job prices the retrain"
        assert full["signals_provenance"]["age_basis"] == "data time"
        # The cheap challenger, fitted in the drift function as the backtest's auto fits it.
        challenger = retrain["challenger"]
        print("challenger evidence:", json.dumps(challenger))
        assert challenger["measured"] is True, challenger.get("reason")
        gain = full["decision"]["signals"]["challenger_gain"]
        assert gain == challenger["gain"] and gain["users"] > 0 and gain["missed_days"] > 0
        assert gain["ci_low"] <= gain["gain"] <= gain["ci_high"]
        assert full["decision"]["gain_sources"]["challenger_gain"] == gain["gain"]
        assert any(reason.startswith("a challenger fitted on") for reason in retrain["reasons"])
        assert challenger["fitted_rows"] > 0 and 0 < challenger["fit_seconds"] <= challenger["seconds"]
        assert challenger["cost_usd"] == pytest.approx(challenger["seconds"] * 3008 / 1024 * 0.0000133334, abs=1e-6)
        assert retrain["challenger_cost"] == challenger["cost_usd"]


def test_the_schedule_policy_keeps_the_champion_and_carries_its_state_to_the_next_trigger(workspace: Path) -> None:
    with running(workspace, **NEVER) as (world, runner):
        # The seeded workspace already holds month 6 unconsumed (staged for the sample events).
        first = upload_and_wait(world, runner, workspace, 7)
        second = upload_and_wait(world, runner, workspace, 8)
        late = upload_and_wait(world, runner, workspace, 1)  # an old month arriving after newer ones
        for run in (first, second, late):
            assert run["outcome"] == "no_drift"
            assert run["evidence"]["drift"]["retrain"]["policy"] == "schedule"
            assert run["evidence"]["drift"]["retrain"]["retrain"] is False
        assert second["evidence"]["drift"]["retrain"]["previous_run_id"] == first["run_id"]
        assert first["evidence"]["drift"]["retrain"]["reasons"][-1] == "challenger not measured: RetrainChallenger=off"
        signals = [run["evidence"]["drift"]["retrain"]["signals"] for run in (first, second)]
        assert 55 <= signals[0]["period_days"] <= 62, "the first decision weighs both months uploaded since training"
        assert 28 <= signals[1]["period_days"] <= 31, "the next one only the month it brings"
        assert signals[1]["days_since_training"] > signals[0]["days_since_training"] > 0
        assert signals[1]["interactions_since_training"] > signals[0]["interactions_since_training"]
        late_retrain = late["evidence"]["drift"]["retrain"]
        assert late_retrain["reasons"][0].startswith("nothing new to weigh")
        assert late_retrain["previous_run_id"] == second["run_id"]
        assert late_retrain["policy_state"] == second["evidence"]["drift"]["retrain"]["policy_state"]
        assert late_retrain["scored_until"] == second["evidence"]["drift"]["retrain"]["scored_until"]

        # The step run again for the second trigger (a retry) decides the same from the same records.
        environment = world.app.functions["DriftFunction"].environment
        services = build_services(Settings.from_env(environment), world.adapters)
        invocation = StepInvocation.model_validate({
            "state": {"admission": {"run": {key: second[key] for key in ("run_id", "model", "trigger", "started_at",
                                                                            "execution")}}},
            "context": {"Execution": {"Id": second["execution"], "Name": "again", "StartTime": second["started_at"]},
                        "State": {"Name": "ComputeDrift", "EnteredTime": second["started_at"]}},
        })
        model = services.settings.model_name
        assert services.ledger.acquire_lock(model, second["run_id"], services.clock(), 600).acquired, "as Admit would"
        again = drift.run(invocation, services)
        services.ledger.release_lock(model, second["run_id"])
        recorded = second["evidence"]["drift"]
        assert again["decision"] == recorded["decision"]
        assert again["retrain"]["policy_state"] == recorded["retrain"]["policy_state"]
        assert again["retrain"]["previous_run_id"] == first["run_id"]


def test_the_drift_policy_follows_the_data_drift_verdict(workspace: Path) -> None:
    with running(workspace, RetrainPolicy="drift") as (world, runner):
        run = upload_and_wait(world, runner, workspace, 1)
        retrain = run["evidence"]["drift"]["retrain"]
        assert retrain["policy"] == "drift"
        assert retrain["retrain"] is (retrain["signals"]["data_drift"] == "retrain")
        assert run["evidence"]["drift"]["decision"] == retrain["signals"]["data_drift"]
        assert retrain["challenger"]["measured"] is False and retrain["challenger_cost"] is None
        assert retrain["reasons"][-1] == "challenger not measured: only the auto policy uses it (RetrainPolicy=drift)"


def test_a_nonsense_parameter_fails_the_run_with_its_reason(workspace: Path) -> None:
    with running(workspace, ValuePerNdcgPoint="-1") as (world, runner):
        run = upload_and_wait(world, runner, workspace, 1)
        assert run["outcome"] == "failed"
        assert run["error"]["error"] == "ConfigurationError"
        assert "ValuePerNdcgPoint=-1.0 makes no sense" in run["error"]["cause"]
        assert run["error"]["step"] == "ComputeDrift"
        assert "Traceback" not in run["error"]["cause"]

