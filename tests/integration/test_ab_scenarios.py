"""Issue 6 through the real template and state machine: prove the challenger is better, then move
traffic safely, or roll back.

Each test is one upload of month 6 to a copy of the seeded shop (month 0 is the champion's data), so
every run retrains (25-60 s each here, hence ``slow``); the assertions about one outcome share that run.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import PROJECT, history, object_keys, running, runs_of, states_entered

from driftloop.cli import main
from driftloop.config import Settings
from driftloop.errors import ConfigurationError
from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.demo import SCENARIOS
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS, Profile
from driftloop.local.shop import Shop, ledger, model_name, upload_bytes, upload_month
from driftloop.local.template import load_app
from driftloop.pipeline.rollout import sagemaker_model_name

MONTH = 6
ALARM = "driftloop-challenger-errors"
GUARDED = {"DeploymentMode": "canary", "RollbackAlarmNames": ALARM}
A_B_STATES = ("UpdateWeights", "Bake", "AnalyseAB")


def endpoint(world: LocalAWS, workspace: Path) -> SimulatedEndpoint:
    return SimulatedEndpoint(workspace, world.app.environment["ENDPOINT_NAME"], world.client("s3"))


def endpoint_history(world: LocalAWS, workspace: Path) -> list[dict[str, Any]]:
    path = workspace / "endpoint" / f"{world.app.environment['ENDPOINT_NAME']}.json"
    return json.loads(path.read_text())["history"]


def served_models(entries: list[dict[str, Any]]) -> set[str]:
    return {variant["model_name"] for entry in entries if entry["endpoint"]
            for variant in entry["endpoint"]["variants"] if variant["weight"] > 0}


def finished_run(world: LocalAWS, runner: Runner) -> dict[str, Any]:
    """The run record of the one execution the last upload started, with the states it entered."""
    earlier = set(runner.finished)
    started = set(runner.wait(timeout=600)) - earlier
    (run,) = [run for run in runs_of(world) if run["execution"] in started]
    run["visited"] = states_entered(history(world, run["execution"]))
    return run


def retrain_once(world: LocalAWS, runner: Runner, workspace: Path, advance_clock: bool = True) -> dict[str, Any]:
    """Upload month 6 (the seeded shop's customers already live in it) and wait for its run."""
    upload_month(world, Shop.load(workspace), MONTH, advance_clock=advance_clock)
    return finished_run(world, runner)


def champion(world: LocalAWS) -> dict[str, Any]:
    record = ledger(world).champion(model_name(world))
    assert record is not None
    return record


def package_status(world: LocalAWS, run: dict[str, Any]) -> str:
    arn = run["evidence"]["evaluation"]["model_package_arn"]
    return world.client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]


def challenger_of(world: LocalAWS, run: dict[str, Any]) -> str:
    return sagemaker_model_name(world.app.environment["MODEL_NAME"], run["run_id"])


@pytest.mark.slow
def test_worse_challenger_is_rejected_offline_and_never_receives_traffic(workspace: Path) -> None:
    parameters = SCENARIOS["worse-challenger"].parameters
    with running(workspace, **parameters) as (world, runner):
        before = champion(world)
        history_before = len(endpoint_history(world, workspace))
        run = retrain_once(world, runner, workspace)
        assert run["outcome"] == "challenger_rejected"
        assert run["evidence"]["drift"]["decision"] == "retrain"
        assert run["evidence"]["evaluation"]["passed"] is False
        assert "EvaluateChallenger" in run["visited"]
        assert not set(A_B_STATES + ("Promote", "Rollback")) & set(run["visited"]), run["visited"]
        changes = endpoint_history(world, workspace)[history_before:]
        assert challenger_of(world, run) not in served_models(changes) | {
            variant.model_name for variant in endpoint(world, workspace).describe().variants}
        assert not [entry for entry in changes if challenger_of(world, run) in entry["change"]], changes
        assert champion(world) == before


@pytest.mark.slow
def test_winner_is_promoted_and_becomes_champion_and_drift_baseline(workspace: Path) -> None:
    with running(workspace) as (world, runner):
        before = champion(world)
        run = retrain_once(world, runner, workspace)
        assert run["outcome"] == "promoted", run.get("error") or run["evidence"].get("ab")
        assert run["evidence"]["ab"]["action"] == "promote"
        assert run["evidence"]["traffic"]["deployment_mode"] == "ab"
        feedback = run["evidence"]["ab"]["evidence"]["feedback"]  # from Data Capture files plus purchases
        assert feedback["source"] == "data_capture" and feedback["capture"]["skipped_total"] == 0
        assert feedback["capture"]["served_by_variant"]["challenger"] > 0 and feedback["purchases"]["purchases"] > 0
        assert {entry["variant"] for entry in feedback["published"]} == {"champion", "challenger"}
        winner = challenger_of(world, run)
        new = champion(world)
        assert (new["run_id"], new["sagemaker_model"], new["previous_champion"]) == (
            run["run_id"], winner, before["run_id"])
        state = endpoint(world, workspace).describe()
        assert [(v.name, v.model_name, v.weight) for v in state.variants] == [("champion", winner, 1.0)]
        assert new["baseline_key"] == f"baselines/{world.app.environment['MODEL_NAME']}/{run['run_id']}.json"
        assert new["baseline_key"] in object_keys(world, "baselines/")
        assert package_status(world, run) == "Approved"
        # Each bake lasted the template's BakeSeconds in the run's own (simulated) time.
        events = history(world, run["execution"])
        bakes = [(entered["timestamp"], exited["timestamp"])
                 for entered, exited in zip(events, events[1:], strict=False)
                 if entered["type"] == "WaitStateEntered" and exited["type"] == "WaitStateExited"
                 and entered["stateEnteredEventDetails"]["name"] == "Bake"]
        assert bakes and all((end - start).total_seconds() >= 3600 for start, end in bakes), bakes

        # The same kind of data that drifted from the old baseline is compared with the new one now.
        month = Shop.load(workspace).simulator().month(MONTH)
        buffer = io.BytesIO()
        pq.write_table(month.slice(0, month.num_rows // 2), buffer)
        upload_bytes(world, f"{world.app.environment['INCOMING_PREFIX']}recheck.parquet", buffer.getvalue())
        recheck = finished_run(world, runner)
        old_scores, new_scores = run["evidence"]["drift"]["features"], recheck["evidence"]["drift"]["features"]
        drifted = run["evidence"]["drift"]["drifted_features"]
        assert drifted
        for feature in drifted:
            old, new_score = old_scores[feature], new_scores[feature]
            measure = "psi" if old.get("psi") is not None else "js_distance"
            assert new_score[measure] < old[measure], (feature, old, new_score)
        assert champion(world)["run_id"] == run["run_id"]


@pytest.mark.slow
def test_challenger_that_wins_offline_but_loses_online_is_rolled_back(workspace: Path) -> None:
    shop = Shop.load(workspace)
    Shop(shop.config, shop.scenario, 0).save(workspace)  # the customers who come next still live in month 0
    with running(workspace) as (world, runner):
        before = champion(world)
        history_before = len(endpoint_history(world, workspace))
        run = retrain_once(world, runner, workspace, advance_clock=False)
        assert run["evidence"]["evaluation"]["passed"] is True
        assert run["outcome"] == "rolled_back", run["evidence"].get("ab")
        assert run["evidence"]["ab"]["action"] == "rollback"
        assert run["evidence"]["ab"]["evidence"]["feedback"]["source"] == "data_capture"
        assert run["visited"][-5:] == ["Rollback", "RollbackSettled", "RolledBack", "Finalize", "RunRecorded"]
        assert challenger_of(world, run) in served_models(endpoint_history(world, workspace)[history_before:]), \
            "the challenger was tested online before it was rolled back"
        state = endpoint(world, workspace).describe()
        assert [(v.name, v.model_name, v.weight) for v in state.variants] == [
            ("champion", before["sagemaker_model"], 1.0)]
        assert champion(world) == before, "champion and drift baseline unchanged"
        assert package_status(world, run) == "Rejected"


@pytest.mark.slow
def test_failure_during_a_weight_change_leaves_the_champion_at_full_traffic(workspace: Path) -> None:
    faults = FaultPlan({"UpdateWeightsFunction": [["ok", 2], ["InjectedFault", -1]]})
    with running(workspace, faults) as (world, runner):
        before = champion(world)
        history_before = len(endpoint_history(world, workspace))
        run = retrain_once(world, runner, workspace)
        assert run["outcome"] == "failed"
        assert run["error"]["error"] == "InjectedFault"
        assert run["visited"].count("UpdateWeights") == 3
        assert run["visited"][-4:] == ["RestoreChampion", "RestoreSettled", "FinalizeFailedRun", "RunFailed"]
        weights = [entry["endpoint"] for entry in endpoint_history(world, workspace)[history_before:]
                   if entry["change"].startswith("weights") or len(entry["endpoint"]["variants"]) > 1]
        assert weights, "the challenger had traffic when the weight change failed"
        state = endpoint(world, workspace).describe()
        assert [(v.name, v.model_name, v.weight) for v in state.variants] == [
            ("champion", before["sagemaker_model"], 1.0)]
        assert champion(world) == before


@pytest.mark.slow
def test_canary_mode_promotes_through_one_guarded_swap(workspace: Path) -> None:
    with running(workspace, **GUARDED) as (world, runner):
        history_before = len(endpoint_history(world, workspace))
        run = retrain_once(world, runner, workspace)
        assert run["outcome"] == "promoted", run.get("error") or run["evidence"].get("ab")
        traffic = run["evidence"]["traffic"]
        assert traffic["deployment_mode"] == "canary"
        assert traffic["guardrails"]["alarms"] == [ALARM] and traffic["guardrails"]["policy"] == "canary"
        assert run["visited"].count("UpdateWeights") == 1
        winner = challenger_of(world, run)
        changes = endpoint_history(world, workspace)[history_before:]
        assert all(len(entry["endpoint"]["variants"]) == 1 for entry in changes), "no A/B split in canary mode"
        assert not [entry for entry in changes if entry["change"].startswith("weights")]
        state = endpoint(world, workspace).describe()
        assert [(v.name, v.model_name) for v in state.variants] == [("champion", winner)]
        assert state.config_name == traffic["config_name"]
        assert champion(world)["sagemaker_model"] == winner


@pytest.mark.slow
def test_canary_mode_rolls_back_when_a_rollback_alarm_fires(workspace: Path) -> None:
    with running(workspace, **GUARDED) as (world, runner):
        cloudwatch = world.client("cloudwatch")
        cloudwatch.put_metric_alarm(AlarmName=ALARM, Namespace="driftloop", MetricName="Invocation5XXErrors",
                                    Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanOrEqualToThreshold")
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="challenger errors")
        before = champion(world)
        run = retrain_once(world, runner, workspace)
        assert run["outcome"] == "rolled_back"
        assert "rolled the canary deployment" in run["evidence"]["ab"]["reason"]
        assert [e["change"] for e in endpoint_history(world, workspace) if "rolled back" in e["change"]]
        state = endpoint(world, workspace).describe()
        assert [(v.name, v.model_name) for v in state.variants] == [("champion", before["sagemaker_model"])]
        assert champion(world) == before
        assert package_status(world, run) == "Rejected"


def test_guardrail_mode_needs_rollback_alarms() -> None:
    environment = load_app(PROJECT / "template.yaml",
                           Profile.load(PROJECT, {"DeploymentMode": "linear"}).parameters).environment
    assert environment["ROLLBACK_ALARM_NAMES"] == ""
    with pytest.raises(ConfigurationError, match="ROLLBACK_ALARM_NAMES needs 1 to 10 names"):
        Settings.from_env(environment)
    settings = Settings.from_env({**environment, "ROLLBACK_ALARM_NAMES": f"{ALARM}, other"})
    assert (settings.deployment_mode, settings.rollback_alarm_names) == ("linear", (ALARM, "other"))
    assert settings.guarded_deployment
    with pytest.raises(ConfigurationError, match="DEPLOYMENT_MODE"):
        Settings.from_env({**environment, "DEPLOYMENT_MODE": "blue-green"})


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_demo_accepts_every_scenario(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scenario: str) -> None:
    received: list[argparse.Namespace] = []
    outcome_missed = 1
    monkeypatch.setattr("driftloop.local.demo.run_demo", lambda args: received.append(args) or outcome_missed)
    code = main(["demo", "--scenario", scenario, "--workspace", str(tmp_path / "demo"), "--quiet",
                 "--parameter", "DeploymentMode=canary"])
    assert code == outcome_missed, "the demo's exit code says whether the expected outcome was reached"
    (args,) = received
    assert (args.scenario, Path(args.workspace), args.parameter) == (
        scenario, tmp_path / "demo", ["DeploymentMode=canary"])


def test_demo_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--scenario", "sometimes-better"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sometimes-better'" in capsys.readouterr().err
