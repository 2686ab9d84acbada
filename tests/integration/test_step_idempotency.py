"""Every traffic step called twice with the same invocation (a Lambda retry, a task delivered twice)
leaves the endpoint, the champion and the registry as calling it once did.

The steps run in-process against a LocalAWS world on a copy of the seeded workspace; the challenger is
a new SageMaker model over the seeding run's artifact, so no training is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT, runs_of

from driftloop.adapters.endpoint import EndpointState
from driftloop.adapters.registry import ModelRegistry
from driftloop.config import Settings
from driftloop.errors import DriftloopError
from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.runtime import LocalAWS, Profile
from driftloop.local.shop import data_bucket, model_name
from driftloop.pipeline import ab_analysis, promotion, rollout
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, build_services

RUN_ID = "run-idempotency"
ALARM = "driftloop-challenger-errors"
GUARDED = {"DeploymentMode": "canary", "RollbackAlarmNames": ALARM}


@dataclasses.dataclass
class Stack:
    world: LocalAWS
    workspace: Path
    services: Services
    run_state: dict[str, Any]

    def invocation(self, state_name: str, **results: Any) -> StepInvocation:
        context = {"Execution": {"Id": f"arn:aws:states:local:000000000000:execution:retrain:{RUN_ID}",
                                 "Name": RUN_ID, "StartTime": "2026-06-01T00:00:00Z"},
                   "State": {"Name": state_name, "EnteredTime": "2026-06-01T00:00:00Z"}}
        return StepInvocation.model_validate({"state": {**self.run_state, **results}, "context": context})

    def endpoint(self) -> EndpointState:
        state = self.services.endpoint.describe()
        assert state is not None
        return state

    def champion(self) -> dict[str, Any]:
        champion = self.services.ledger.champion(self.services.settings.model_name)
        assert champion is not None
        return champion

    def package_status(self) -> str:
        arn = self.run_state["evaluation"]["model_package_arn"]
        return self.services.sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]


def open_stack(workspace: Path, parameters: dict[str, str]) -> Iterator[Stack]:
    profile = dataclasses.replace(Profile.load(PROJECT, parameters), requests_per_hour=0,
                                  endpoint_update_seconds=0)  # each change is live at once: one call does it
    with LocalAWS(PROJECT, workspace, profile) as world:
        environment = world.app.environment
        services = build_services(Settings.from_env(environment), world.adapters)
        (seeding,) = runs_of(world)
        champion = services.ledger.champion(model_name(world))
        assert champion is not None
        package = ModelRegistry(services.sagemaker, model_name(world)).register(
            RUN_ID, champion["model_data_url"], services.settings.training_image, {},
            f"s3://{data_bucket(world)}/{champion['dataset_manifest_key']}")
        settings = services.settings
        taken = services.ledger.acquire_lock(settings.model_name, RUN_ID, services.clock(),
                                             settings.lock_lease_minutes * 60)
        assert taken.acquired, "the run's steps hold the model's lock, as Admit leaves it"
        evidence = seeding["evidence"]
        run = {key: seeding[key] for key in ("model", "trigger", "started_at", "execution")} | {"run_id": RUN_ID}
        run_state = {"admission": {"admitted": True, "reason": "admitted", "run": run},
                     "merge": evidence["merge"], "training": evidence["training"],
                     "evaluation": evidence["evaluation"] | {"passed": True, "model_package_arn": package,
                                                             "metrics": {}}}
        yield Stack(world, workspace, services, run_state)


@pytest.fixture
def stack(workspace: Path) -> Iterator[Stack]:
    yield from open_stack(workspace, {})


@pytest.fixture
def guarded_stack(workspace: Path) -> Iterator[Stack]:
    yield from open_stack(workspace, GUARDED)


class EndpointShownAs(SimulatedEndpoint):
    """The simulated endpoint with the status SageMaker shows during (or after a failed) deployment."""

    def __init__(self, stack: Stack, status: str) -> None:
        super().__init__(stack.workspace, stack.services.endpoint.name, stack.services.s3)
        self.status = status

    def describe(self) -> EndpointState | None:
        state = super().describe()
        return dataclasses.replace(state, status=self.status) if state else None


def twice(step: Any, invocation: StepInvocation, stack: Stack) -> tuple[EndpointState, dict[str, Any]]:
    """The endpoint after one call, checked unchanged by a second call; the first call's result."""
    result = step(invocation, stack.services)
    once = stack.endpoint()
    step(invocation, stack.services)
    assert stack.endpoint() == once, f"{step.__name__} called again changed the endpoint"
    return once, result


def test_each_a_b_stage_twice_serves_that_stage_weights(stack: Stack) -> None:
    champion_model = stack.champion()["sagemaker_model"]
    challenger_model = rollout.sagemaker_model_name(stack.services.settings.model_name, RUN_ID)
    seen = []
    for stage, challenger_share in enumerate((10, 50, 100)):
        ab = {"action": "continue", "next_stage_index": stage, "waits": 0} if stage else {}
        state, result = twice(rollout.update_weights, stack.invocation("UpdateWeights", ab=ab), stack)
        assert result["stage_index"] == stage
        assert {v.name: v.model_name for v in state.variants} == {"champion": champion_model,
                                                                  "challenger": challenger_model}
        assert state.weights()["challenger"] == pytest.approx(challenger_share)
        seen.append(state.config_name)
    assert len(set(seen)) == 1, "later stages change weights in place, on the first stage's config"


def test_promote_twice_leaves_one_new_champion(stack: Stack) -> None:
    traffic_result = rollout.update_weights(stack.invocation("UpdateWeights"), stack.services)
    previous = stack.champion()
    promote = stack.invocation("Promote", traffic=traffic_result, ab={"action": "promote"})
    state, result = twice(promotion.promote, promote, stack)
    champion = stack.champion()
    assert champion == result["champion"], "the second call did not rewrite the champion"
    assert [(v.name, v.model_name, v.weight) for v in state.variants] == [
        ("champion", rollout.sagemaker_model_name(stack.services.settings.model_name, RUN_ID), 1.0)]
    assert champion["previous_champion"] == previous["run_id"]
    assert champion["baseline_key"] == f"baselines/{stack.services.settings.model_name}/{RUN_ID}.json"
    assert stack.package_status() == "Approved"


def test_rollback_twice_leaves_the_champion_alone_at_full_weight(stack: Stack) -> None:
    champion = stack.champion()
    traffic_result = rollout.update_weights(stack.invocation("UpdateWeights"), stack.services)
    assert "challenger" in stack.endpoint().weights()
    ab = {"action": "rollback", "reason": "challenger converts worse"}
    state, result = twice(rollout.rollback, stack.invocation("Rollback", traffic=traffic_result, ab=ab), stack)
    assert result["restored"] is True
    assert [(v.name, v.model_name, v.weight) for v in state.variants] == [
        ("champion", champion["sagemaker_model"], 1.0)]
    assert stack.champion() == champion
    assert stack.package_status() == "Rejected"


def test_guarded_deployment_twice_is_one_swap_and_promotes(guarded_stack: Stack) -> None:
    stack = guarded_stack
    challenger_model = rollout.sagemaker_model_name(stack.services.settings.model_name, RUN_ID)
    state, deployed = twice(rollout.update_weights, stack.invocation("UpdateWeights"), stack)
    assert [(v.name, v.model_name) for v in state.variants] == [("champion", challenger_model)]
    assert deployed["deployment_mode"] == "canary" and deployed["config_name"] == state.config_name
    assert list(deployed["guardrails"]["alarms"]) == [ALARM]
    progress = ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed), stack.services)
    assert progress["action"] == "promote", progress["reason"]
    promoted, _ = twice(promotion.promote, stack.invocation("Promote", traffic=deployed, ab=progress), stack)
    assert promoted == state, "promotion keeps the config the guarded deployment swapped to"
    assert stack.champion()["sagemaker_model"] == challenger_model


def test_guarded_deployment_rolled_back_by_an_alarm_leaves_the_champion(guarded_stack: Stack) -> None:
    stack = guarded_stack
    before = stack.endpoint()
    cloudwatch = stack.world.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=ALARM, Namespace="driftloop", MetricName="Invocation5XXErrors",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="challenger errors")
    state, deployed = twice(rollout.update_weights, stack.invocation("UpdateWeights"), stack)
    assert state == before, "a rolled-back deployment leaves the endpoint on the champion's config"
    first = ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed), stack.services)
    assert first["action"] == "rollback" and "rolled the canary deployment" in first["reason"]
    restored, result = twice(rollout.rollback, stack.invocation("Rollback", traffic=deployed, ab=first), stack)
    assert restored == before
    assert result["actions"] == ["challenger package marked Rejected"]
    assert stack.package_status() == "Rejected"


def test_guarded_deployment_under_way_waits_then_promotes(guarded_stack: Stack) -> None:
    stack = guarded_stack
    deployed = rollout.update_weights(stack.invocation("UpdateWeights"), stack.services)
    assert stack.world.app.definition["States"]["ABDecision"]["Choices"][0] == {
        "Variable": "$.ab.action", "StringEquals": "wait", "Next": "Bake"}
    updating = dataclasses.replace(stack.services, endpoint=EndpointShownAs(stack, "Updating"))
    first = ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed), updating)
    second = ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed, ab=first), updating)
    assert [(d["action"], d["waits"]) for d in (first, second)] == [("wait", 0), ("wait", 1)]
    done = ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed, ab=second), stack.services)
    assert (done["action"], done["waits"]) == ("promote", 2), "each analysis has its own report"
    failed = dataclasses.replace(stack.services, endpoint=EndpointShownAs(stack, "Failed"))
    with pytest.raises(DriftloopError, match="needs an operator"):
        ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed, ab=second), failed)
