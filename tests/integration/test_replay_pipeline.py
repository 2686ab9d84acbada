"""The Foundation's acceptance checks, through the real template, state machine and handlers."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import history, load_event, object_keys, running, runs_of, states_entered

from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.runtime import FaultPlan


def endpoint_state(world, workspace: Path):
    name = world.app.environment["ENDPOINT_NAME"]
    return SimulatedEndpoint(workspace, name, world.client("s3")).describe()


def test_upload_retried_by_the_state_machine_then_promoted(workspace: Path) -> None:
    faults = FaultPlan({"MergeFunction": [["TransientError", 2]]})
    with running(workspace, faults) as (world, runner):
        inputs_before = {key for key in object_keys(world, "incoming/")}
        delivery = runner.replay(load_event("s3_object_created_new_data.json", workspace))
        assert delivery.matched_rules == ["driftloop-RetrainStateMachineNewDataUpload"]
        results = runner.wait(timeout=600)
        (arn,) = delivery.executions
        assert results[arn].status == "SUCCEEDED"
        events = history(world, arn)
        visited = states_entered(events)
        for state in ("Admit", "ComputeDrift", "MergeDatasets", "StartTraining", "PollTraining",
                      "EvaluateChallenger", "UpdateWeights", "Bake", "AnalyseAB", "Promote", "Finalize"):
            assert state in visited, f"{state} not visited: {visited}"
        merge_failures = [e for e in events if e["type"] == "LambdaFunctionFailed"]
        assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in merge_failures] == ["TransientError"] * 2
        assert visited.count("MergeDatasets") == 1, "the retries happen inside the state, by its Retry"

        (run,) = [r for r in runs_of(world) if r["execution"] == arn]
        assert run["outcome"] == "promoted"
        merge_step = next(step for step in run["steps"] if step["name"] == "MergeDatasets")
        assert merge_step["attempts"] == 3 and merge_step["status"] == "succeeded"
        assert run["evidence"]["drift"]["decision"] == "retrain"
        assert run["evidence"]["evaluation"]["passed"] is True
        assert run["evidence"]["ab"]["action"] == "promote"

        keys = object_keys(world)
        version = run["evidence"]["merge"]["dataset_dir"]
        assert f"{version}/_manifest.json" in keys
        assert any(key.startswith(version) and key.endswith(".parquet") for key in keys)
        assert f"runs/{run['run_id']}/record.json" in keys
        assert run["evidence"]["training"]["model_artifact"].endswith("/output/model.tar.gz")
        assert any(key.startswith("datacapture/") and key.endswith(".jsonl") for key in keys)
        assert any(key.startswith("purchases/date=") for key in keys)
        assert inputs_before <= set(object_keys(world, "incoming/")), "inputs are never deleted"

        state = endpoint_state(world, workspace)
        assert [variant.name for variant in state.variants] == ["champion"]
        assert state.variants[0].model_name == run["evidence"]["promotion"]["champion"]["sagemaker_model"]
        endpoint_history = json.loads((workspace / "endpoint" / "driftloop-recommender.json").read_text())["history"]
        weights = [entry["change"] for entry in endpoint_history if entry["change"].startswith("weights")]
        assert weights, "the A/B stages changed the endpoint's weights"


def test_permanent_failure_restores_the_champion_and_notifies(workspace: Path) -> None:
    faults = FaultPlan({"UpdateWeightsFunction": [["ok", 1], ["InjectedFault", -1]]})
    with running(workspace, faults) as (world, runner):
        champion_before = endpoint_state(world, workspace).variants[0].model_name
        delivery = runner.replay(load_event("s3_object_created_new_data.json", workspace))
        results = runner.wait(timeout=600)
        (arn,) = delivery.executions
        assert results[arn].status == "FAILED"
        visited = states_entered(history(world, arn))
        assert visited[-4:] == ["RestoreChampion", "RestoreSettled", "FinalizeFailedRun", "RunFailed"]
        assert visited.count("UpdateWeights") == 2, "stage 0 requested, then the call that waits for it failed"

        (run,) = [r for r in runs_of(world) if r["execution"] == arn]
        assert run["outcome"] == "failed"
        assert run["error"]["error"] == "InjectedFault"
        assert "UpdateWeightsFunction" in run["error"]["cause"]
        assert run["evidence"]["rollback"]["restored"] is True

        state = endpoint_state(world, workspace)
        assert [(v.name, v.model_name) for v in state.variants] == [("champion", champion_before)]
        assert world.client("dynamodb").get_item(
            TableName=world.app.environment["LEDGER_TABLE"],
            Key={"pk": {"S": "MODEL#recommender"}, "sk": {"S": "LOCK"}}).get("Item") is None
    notifications = [json.loads(line) for line in (workspace / "notifications.jsonl").read_text().splitlines()]
    assert any(note["subject"].endswith(": failed") and run["run_id"] in note["message"] for note in notifications)
