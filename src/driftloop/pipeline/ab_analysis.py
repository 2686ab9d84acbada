"""AnalyseAB: judge the A/B stage from the feedback of concurrent traffic (continue, promote or roll back),
or follow a guarded deployment SageMaker runs by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop.adapters.endpoint import IN_SERVICE, SETTLING_STATUSES
from driftloop.adapters.s3 import put_json
from driftloop.config import GUARDRAIL_MODES
from driftloop.errors import DriftloopError, NotFoundError
from driftloop.layout import ab_capture_digest_key, ab_look_key
from driftloop.pipeline.capture_digest import DigestKeys
from driftloop.pipeline.contracts import ABDecision, returns
from driftloop.pipeline.feedback import publish_variant_conversion, read_feedback
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, hold_lock
from driftloop.traffic.judgement import ABJudge, ABTestConfig
from driftloop.traffic.online import FeedbackWindow, analyse_stage
from driftloop.traffic.stages import TrafficPlan


@returns(ABDecision)
def analyse(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    hold_lock(services, invocation.run["run_id"])
    traffic = invocation.result("traffic")
    if traffic.get("deployment_mode") in GUARDRAIL_MODES:
        return _deployment_progress(invocation, services)
    now = datetime.fromtimestamp(services.clock(), UTC)
    started = datetime.fromisoformat(traffic["ab_started_at"])
    stage = traffic["stage_index"]
    looks = [*(invocation.result("ab").get("looks") or []), {"stage_index": stage, "at": now.isoformat()}]
    judge = ABJudge(TrafficPlan(settings.traffic_stages, settings.ab_holdback_percent),
                    ABTestConfig(alpha=settings.significance_level, minimum_lift=settings.minimum_lift,
                                 min_samples_per_variant=settings.min_samples_per_variant,
                                 max_waits=settings.max_bake_waits))
    run_id = invocation.run["run_id"]
    feedback = read_feedback(services, started, run_id=run_id, digest=capture_digest_keys(run_id, looks))
    decision = analyse_stage(
        feedback.table, feedback_windows(started, looks), now,
        timedelta(minutes=settings.attribution_window_minutes), settings.champion_variant,
        settings.challenger_variant, stage, judge, waits=traffic.get("waits", 0),
    ).to_dict()
    decision["evidence"]["feedback"] = feedback.evidence | {"published": publish_variant_conversion(
        services, [decision["evidence"].get("champion"), decision["evidence"].get("challenger")])}
    decision["looks"] = looks
    decision["look"] = stage_look(looks, len(looks) - 1)
    _save_decision(invocation, services, decision)
    return decision


def feedback_windows(started: datetime, looks: list[dict[str, Any]]) -> list[FeedbackWindow]:
    """One window per bake: from the A/B start or the previous look to each look, with the stage it served."""
    windows, start = [], started
    for look in looks:
        end = datetime.fromisoformat(look["at"])
        windows.append(FeedbackWindow(int(look["stage_index"]), start, end))
        start = end
    return windows


def stage_look(looks: list[dict[str, Any]], position: int) -> int:
    """The index of look ``position`` among its stage's looks (as its report's key names it)."""
    stage = looks[position]["stage_index"]
    return sum(look["stage_index"] == stage for look in looks[:position + 1]) - 1


def capture_digest_keys(run_id: str, looks: list[dict[str, Any]]) -> DigestKeys:
    """The capture digest this look (the last of ``looks``) writes, and the one the look before it wrote."""
    keys = [ab_capture_digest_key(run_id, int(looks[position]["stage_index"]), stage_look(looks, position))
            for position in range(max(0, len(looks) - 2), len(looks))]
    return DigestKeys(keys[0] if len(keys) == 2 else None, keys[-1])


def _save_decision(invocation: StepInvocation, services: Services, decision: dict[str, Any]) -> None:
    put_json(services.s3, services.settings.data_bucket,
             ab_look_key(invocation.run["run_id"], decision["stage_index"], decision.get("look", decision["waits"])),
             decision)


def _deployment_progress(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """The guarded deployment UpdateWeights started: ``wait`` while SageMaker shifts traffic (or rolls
    back), ``promote`` once the endpoint is InService on the challenger's config, ``rollback`` once it is
    InService on any other config (SageMaker undid the update: an alarm fired or it timed out). The
    deployment's own timeout bounds the waiting."""
    traffic, previous = invocation.result("traffic"), invocation.result("ab")
    mode, target = traffic["deployment_mode"], traffic["config_name"]
    state = services.endpoint.describe()
    if state is None:
        raise NotFoundError(f"endpoint {services.settings.endpoint_name} disappeared during the {mode} deployment")
    waits = previous.get("waits", 0) + 1 if previous.get("action") == "wait" else 0
    if state.status in SETTLING_STATUSES:
        action, reason = "wait", f"{mode} deployment of {target} under way: endpoint {state.status}"
    elif state.status != IN_SERVICE:
        raise DriftloopError(f"endpoint {state.name} is {state.status} during the {mode} deployment of {target}; "
                             "it needs an operator")
    elif state.config_name == target:
        action, reason = "promote", f"{mode} deployment finished: endpoint InService on {target}, not rolled back"
    else:
        action, reason = "rollback", (f"SageMaker rolled the {mode} deployment of {target} back (a rollback alarm "
                                      f"fired or it timed out): endpoint InService on {state.config_name}")
    decision = {"action": action, "reason": reason, "stage_index": traffic["stage_index"],
                "next_stage_index": None, "waits": waits, "weights": state.weights(),
                "evidence": {"deployment_mode": mode, "guardrails": traffic.get("guardrails"),
                             "endpoint": state.to_dict()}}
    _save_decision(invocation, services, decision)
    return decision
