"""Training through the state machine: a failed job's reason reaches the run record, and a retried start
moves to a new job name only after a failed attempt (a live job of its name is adopted)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from conftest import load_event, running, runs_of

from driftloop.adapters.training import Trainer
from driftloop.config import Settings
from driftloop.pipeline import training
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import build_services


def test_a_failed_training_job_fails_the_run_with_its_failure_reason(workspace: Path) -> None:
    with running(workspace, TrainingHyperparameters='{"algorithm": "no-such-algorithm"}') as (world, runner):
        delivery = runner.replay(load_event("s3_object_created_new_data.json", workspace))
        runner.wait(timeout=300)
        (run,) = [run for run in runs_of(world) if run["execution"] in delivery.executions]
    assert run["outcome"] == "failed"
    assert run["error"]["error"] == "TrainingFailedError"
    assert "no-such-algorithm" in run["error"]["cause"], "the job's FailureReason is in the record"
    assert run["evidence"]["rollback"]["restored"] is False, "nothing reached the endpoint"


class RecordingTrainer(Trainer):
    """Jobs by name; every job this test starts is InProgress."""

    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.jobs, self.started = jobs, []

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        self.started.append(request["TrainingJobName"])
        self.jobs[request["TrainingJobName"]] = {"TrainingJobStatus": "InProgress"}
        return self.jobs[request["TrainingJobName"]]

    def describe(self, job_name: str) -> dict[str, Any] | None:
        return self.jobs.get(job_name)


def test_start_adopts_a_live_job_and_moves_on_only_after_a_failed_one(workspace: Path) -> None:
    with running(workspace) as (world, _runner):
        services = build_services(Settings.from_env(world.app.environment), world.adapters)
        invocation = StepInvocation.model_validate({
            "state": {"admission": {"run": {"run_id": "run-train", "model": "recommender",
                                            "trigger": {"type": "manual"}, "started_at": "2025-08-01T00:00:00Z",
                                            "execution": "arn:x"}},
                      "merge": {"dataset_dir": "datasets/recommender/v=x", "manifest_key": "datasets/recommender/v=x/m",
                                "rows_in": 1, "rows_out": 1, "duplicates_dropped": 0, "null_key_rows": 0,
                                "quarantined": [], "content_hash": "h", "previous_version": None,
                                "holdout_from": "2025-07-24T00:00:00+00:00"}},
            "context": {"Execution": {"Id": "arn:x", "Name": "exec-1", "StartTime": "2025-08-01T00:00:00Z"},
                        "State": {"Name": "StartTraining", "EnteredTime": "2025-08-01T00:00:00Z", "RetryCount": 1}},
        })
        trainer = RecordingTrainer({})
        services.ledger.acquire_lock(services.settings.model_name, "run-train", services.clock(), 600)  # as Admit
        first = training.start(invocation, dataclasses.replace(services, trainer=trainer))
        again = training.start(invocation, dataclasses.replace(services, trainer=trainer))
        assert (first["attempt"], again["attempt"]) == (0, 0)
        assert again["adopted"] is True and trainer.started == [first["job_name"]]

        trainer.jobs[first["job_name"]] = {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: boom"}
        retried = training.start(invocation, dataclasses.replace(services, trainer=trainer))
        assert retried["attempt"] == 1 and retried["job_name"] != first["job_name"]
        assert retried["earlier_failures"][0]["failure_reason"] == "AlgorithmError: boom"
        assert retried["job_name"].startswith("recommender-") and len(retried["job_name"]) <= 63
