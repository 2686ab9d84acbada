"""Issue 13, defect 2: every endpoint change is waited for in the state machine, never retried.

The simulated endpoint stays ``Updating`` for ``endpoint_update_seconds`` after each change (longer here
than the Task retry budget of a few seconds), so a step that waited by retrying would fail. Each test is
one month-6 upload to a copy of the seeded shop that passes the offline gate; a fault hits the run while
an endpoint change is under way, and afterwards the ledger's champion is the model that serves alone, the
lock is free, and the record and the notification say what serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT, history, runs_of, states_entered

from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS, Profile
from driftloop.local.shop import Shop, ledger, model_name, upload_month
from driftloop.pipeline.rollout import sagemaker_model_name

MONTH = 6
UPDATE_SECONDS = 6.0  # longer than most of a Task's Retry budget (1 + 2 + 4 + 8 s of backoff, full jitter)


@contextmanager
def running(workspace: Path, faults: FaultPlan) -> Iterator[tuple[LocalAWS, Runner]]:
    profile = replace(Profile.load(PROJECT), endpoint_update_seconds=UPDATE_SECONDS)
    with LocalAWS(PROJECT, workspace, profile, faults) as world:
        yield world, Runner(world, printer=None)


def endpoint_state(world: LocalAWS, workspace: Path) -> list[tuple[str, str, float]]:
    state = SimulatedEndpoint(workspace, world.app.environment["ENDPOINT_NAME"], world.client("s3")).describe()
    assert state is not None and state.status == "InService", state
    return [(variant.name, variant.model_name, variant.weight) for variant in state.variants]


def endpoint_changes(world: LocalAWS, workspace: Path) -> list[str]:
    path = workspace / "endpoint" / f"{world.app.environment['ENDPOINT_NAME']}.json"
    return [entry["change"] for entry in json.loads(path.read_text())["history"]]


def run_month(world: LocalAWS, runner: Runner, workspace: Path, advance_clock: bool = True) -> dict[str, Any]:
    earlier = set(runner.finished)
    upload_month(world, Shop.load(workspace), MONTH, advance_clock=advance_clock)
    started = set(runner.wait(timeout=900)) - earlier
    (run,) = [run for run in runs_of(world) if run["execution"] in started]
    run["visited"] = states_entered(history(world, run["execution"]))
    return run


def assert_agree(world: LocalAWS, workspace: Path, champion_before: dict[str, Any], run: dict[str, Any]) -> None:
    """The ledger's champion is unchanged and serves alone at 100 %, the lock is free, and the record and
    the failure notification name what serves."""
    champion = ledger(world).champion(model_name(world))
    assert champion == champion_before
    assert endpoint_state(world, workspace) == [("champion", champion["sagemaker_model"], 1.0)]
    assert ledger(world).lock(model_name(world)) is None
    assert champion["sagemaker_model"] in run["serving"] and "100%" in run["serving"], run["serving"]
    challenger = sagemaker_model_name(world.app.environment["MODEL_NAME"], run["run_id"])
    assert challenger not in run["serving"]
    world.drain_notifications()
    sent = [json.loads(line) for line in (workspace / "notifications.jsonl").read_text().splitlines()]
    (notice,) = [json.loads(n["message"]) for n in sent if json.loads(n["message"])["run_id"] == run["run_id"]]
    assert notice["serving"] == run["serving"] and notice["outcome"] == "failed"


@pytest.mark.slow
def test_failure_while_the_endpoint_updates_waits_then_restores_the_champion(workspace: Path) -> None:
    """PollEndpoint fails for good while the A/B config is being deployed: RestoreChampion waits for the
    update to finish before it moves the endpoint back (a change to an Updating endpoint is refused)."""
    faults = FaultPlan({"PollEndpointFunction": [["InjectedFault", 1]]})
    with running(workspace, faults) as (world, runner):
        before = ledger(world).champion(model_name(world))
        run = run_month(world, runner, workspace)
        assert run["outcome"] == "failed" and run["error"]["step"] == "PollWeights", run.get("error")
        assert run["error"]["error"] == "InjectedFault"
        visited = run["visited"]
        assert visited.count("PollRestore") >= 2, "RestoreChampion waited for the A/B update, then for its own"
        assert visited[-3:] == ["RestoreSettled", "FinalizeFailedRun", "RunFailed"]
        assert run["evidence"]["rollback"]["restored"] is True
        assert "restore_error" not in run
        assert_agree(world, workspace, before, run)


@pytest.mark.slow
def test_promotion_that_fails_midway_leaves_the_old_champion_in_the_ledger_and_on_the_endpoint(
        workspace: Path) -> None:
    """Promote requested the swap to the challenger alone, then failed: the ledger still names the old
    champion, so RestoreChampion waits for the swap to finish and swaps back."""
    faults = FaultPlan({"PromoteFunction": [["ok", 1], ["InjectedFault", 1]]})
    with running(workspace, faults) as (world, runner):
        before = ledger(world).champion(model_name(world))
        run = run_month(world, runner, workspace)
        assert run["evidence"]["ab"]["action"] == "promote", run["evidence"].get("ab")
        assert run["outcome"] == "failed" and run["error"]["step"] == "Promote", run.get("error")
        challenger = sagemaker_model_name(world.app.environment["MODEL_NAME"], run["run_id"])
        changes = endpoint_changes(world, workspace)
        swapped = [change for change in changes if change.startswith("endpoint on config")]
        assert len(swapped) >= 3, "A/B config, challenger alone, champion alone again: each one waited for"
        assert "PollPromotion" in run["visited"] and "PollRestore" in run["visited"]
        assert challenger not in json.dumps(ledger(world).champion(model_name(world)))
        assert_agree(world, workspace, before, run)


@pytest.mark.slow
def test_rollback_that_fails_midway_is_finished_by_restore_champion(workspace: Path) -> None:
    """The online test rolls back; Rollback moved the challenger's weight to 0 and then failed: the failure
    path picks up where it stopped (the champion's single-variant config) and waits for it."""
    shop = Shop.load(workspace)
    Shop(shop.config, shop.scenario, 0).save(workspace)  # the customers who come next still live in month 0
    faults = FaultPlan({"RollbackFunction": [["ok", 1], ["InjectedFault", 1]]})
    with running(workspace, faults) as (world, runner):
        before = ledger(world).champion(model_name(world))
        run = run_month(world, runner, workspace, advance_clock=False)
        assert run["evidence"]["ab"]["action"] == "rollback", run["evidence"].get("ab")
        assert run["outcome"] == "failed" and run["error"]["step"] == "Rollback", run.get("error")
        assert run["evidence"]["rollback"]["actions"][0].startswith("weights champion=1, challenger=0")
        assert any(action.startswith("config ") for action in run["evidence"]["rollback"]["actions"])
        assert_agree(world, workspace, before, run)
