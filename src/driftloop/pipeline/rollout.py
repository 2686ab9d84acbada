"""Move traffic between champion and challenger and roll back: the endpoint changes every traffic step
shares (:func:`move_endpoint`), one step of a change per call.

The A/B verdict is :mod:`driftloop.pipeline.ab_analysis`, the promotion :mod:`driftloop.pipeline.promotion`:
those two read data (feedback, the training set) and need numpy and pyarrow; the steps here only talk to
SageMaker, so their Lambdas start without them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from driftloop.adapters.endpoint import (
    IN_SERVICE,
    SETTLING_STATUSES,
    EndpointState,
    ModelSpec,
    Variant,
    same_traffic_split,
)
from driftloop.adapters.registry import REJECTED, ModelRegistry
from driftloop.config import AB_TEST
from driftloop.errors import EndpointChangeError, NotFoundError
from driftloop.pipeline.contracts import EndpointPoll, Rollback, Traffic, returns
from driftloop.pipeline.history import MAX_ENDPOINT_CHANGE_POLLS, MAX_ENDPOINT_CHANGE_SECONDS
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, hold_lock
from driftloop.traffic.stages import TrafficPlan


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def sagemaker_model_name(model_name: str, run_id: str) -> str:
    return f"{model_name[:40]}-{_short_hash(run_id)}"


def config_name(endpoint: str, variants: list[Variant]) -> str:
    """Derived from everything the config holds, so one name never means two different configs."""
    described = "/".join(f"{v.name}:{v.model_name}:{v.weight:g}:{v.instance_count}:{v.instance_type}"
                         for v in variants)
    return f"{endpoint[:40]}-{_short_hash(described)}"


def challenger_spec(invocation: StepInvocation, services: Services) -> ModelSpec:
    settings = services.settings
    training = invocation.training
    return ModelSpec(
        name=sagemaker_model_name(settings.model_name, invocation.run["run_id"]),
        model_data_url=training.model_artifact,
        image=settings.training_image,
        role_arn=settings.sagemaker_role_arn,
        environment=(("SAGEMAKER_PROGRAM", "inference.py"),
                     ("SAGEMAKER_SUBMIT_DIRECTORY", training.source_uri)),
    )


def single_variant(services: Services, model_name: str, state: EndpointState | None) -> list[Variant]:
    """The champion alone, at the instance count the champion variant runs with now."""
    settings = services.settings
    current = state.variant(settings.champion_variant) if state else None
    count = current.instance_count if current else 1
    return [Variant(settings.champion_variant, model_name, 1.0, count, settings.endpoint_instance_type)]


def _serves(state: EndpointState, variants: list[Variant]) -> bool:
    """The endpoint is InService with exactly these variants, models and traffic split."""
    return (state.status == IN_SERVICE
            and {v.name: v.model_name for v in state.variants} == {v.name: v.model_name for v in variants}
            and same_traffic_split({v.name: v.weight for v in state.variants}, {v.name: v.weight for v in variants}))


def serving(state: EndpointState | None) -> str:
    """One line saying what takes the endpoint's traffic now (for run records and notifications)."""
    if state is None:
        return "no endpoint"
    weights = state.weights()
    shares = ", ".join(f"{v.name}={v.model_name} {weights[v.name]:g}%" for v in state.variants)
    return f"endpoint {state.name} {state.status} on {state.config_name}: {shares}"


def move_endpoint(services: Services, variants: list[Variant], previous: dict[str, Any],
                  drain: dict[str, float] | None = None) -> dict[str, Any]:
    """Move the endpoint towards ``variants`` (names, models, weights) without waiting: the state machine
    waits (``PollEndpoint`` between two calls) while the endpoint is Creating or Updating.

    ``settled`` is True once the endpoint is InService with exactly ``variants``. Otherwise the next change
    is requested: weights in place when the same models already serve, else ``drain`` weights first (when
    given and all its variants serve), else the config of ``variants``; an endpoint that applies a change
    at once (InService right after it) gets the next one in the same call. A change asked for by the
    previous call (``previous["requested"]``) that the endpoint, InService again, does not show was undone
    by SageMaker: EndpointChangeError, as asking again would only loop."""
    settings = services.settings
    target = config_name(settings.endpoint_name, variants)
    carried = previous if previous.get("settled") is False else {}
    progress: dict[str, Any] = {"target_config": target, "settled": False, "requested": carried.get("requested"),
                                "since": carried.get("since", services.clock()),
                                "started": carried.get("started", services.clock()),
                                "actions": list(carried.get("actions", []))}
    state = services.endpoint.describe()
    for _ in range(3):  # at most: drain weights, new config, and a look at the result
        if state is not None and state.status in SETTLING_STATUSES:
            break
        if state is not None and state.status != IN_SERVICE:
            raise EndpointChangeError(f"endpoint {state.name} is {state.status} while moving it to {target}; "
                                      f"it needs an operator ({serving(state)})")
        if state is not None and _serves(state, variants):
            progress["settled"] = True
            break
        action, change = _next_change(services, state, variants, target, drain)
        if progress["requested"] == action:
            raise EndpointChangeError(f"the endpoint change '{action}' did not take effect: SageMaker undid it "
                                      f"({serving(state)})")
        change()
        progress.update(requested=action, since=services.clock(), actions=[*progress["actions"], action])
        state = services.endpoint.describe()
    return {**progress, "status": state.status if state else None, "serving": serving(state)}


def _next_change(services: Services, state: EndpointState | None, variants: list[Variant], target: str,
                 drain: dict[str, float] | None) -> tuple[str, Any]:
    """The next change towards ``variants``, described, and the call that requests it."""
    if state is not None and {v.name: v.model_name for v in state.variants} == {
            v.name: v.model_name for v in variants}:
        weights = {v.name: float(v.weight) for v in variants}
        return "weights " + ", ".join(f"{n}={w:g}" for n, w in weights.items()), partial(
            services.endpoint.set_weights, weights)
    if (state is not None and drain and all(state.variant(name) for name in drain)
            and not same_traffic_split(state.weights(), drain)):
        return "weights " + ", ".join(f"{n}={w:g}" for n, w in drain.items()), partial(
            services.endpoint.set_weights, dict(drain))
    return f"config {target}", partial(services.endpoint.deploy, target, variants)


class EndpointPollInvocation(StepInvocation):
    """``{"state.$": "$", "context.$": "$$", "change": <the step whose change is awaited>}``."""

    change: Literal["traffic", "promotion", "rollback"]


@returns(EndpointPoll)
def poll_endpoint(invocation: EndpointPollInvocation, services: Services) -> dict[str, Any]:
    """Where the endpoint change of ``$.<change>`` stands: ``settling`` while the endpoint is Creating or
    Updating (wait and poll again); otherwise the changing step runs again and judges the outcome. A change
    whose endpoint keeps settling longer than ``MAX_ENDPOINT_CHANGE_SECONDS``, or for more than
    ``MAX_ENDPOINT_CHANGE_POLLS`` polls, fails the step; both count from the change's first request."""
    change = invocation.result(invocation.change)
    started = float(change.get("started") or change.get("since") or services.clock())
    previous = invocation.state.get("endpoint") or {}
    same_change = previous.get("change") == invocation.change and previous.get("started") == started
    polls = int(previous.get("polls", 0)) + 1 if same_change else 1
    state = services.endpoint.describe()
    waited = services.clock() - started
    settling = state is not None and state.status in SETTLING_STATUSES
    if settling and (waited > MAX_ENDPOINT_CHANGE_SECONDS or polls > MAX_ENDPOINT_CHANGE_POLLS):
        raise EndpointChangeError(f"endpoint still {state.status} {waited:.0f} s and {polls - 1} polls after "
                                  f"the change to {change.get('target_config')} began; last request "
                                  f"'{change.get('requested')}' ({serving(state)})")
    return {"change": invocation.change, "settling": settling, "status": state.status if state else None,
            "started": started, "polls": polls, "waited_seconds": round(waited, 1), "serving": serving(state)}


@returns(Traffic)
def update_weights(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """Stage ``$.ab.next_stage_index`` (0 at first): the A/B config on first entry, then weights in place.
    One step of the change per call (``move_endpoint``): the state machine polls the endpoint and calls
    again until ``settled``, and the A/B test's clock (``ab_started_at``) starts once the split serves.

    In guardrail mode (``DEPLOYMENT_MODE`` canary or linear) there are no stages: the challenger alone
    replaces the champion through one blue/green update that SageMaker shifts and rolls back by itself,
    and AnalyseAB follows it."""
    settings = services.settings
    hold_lock(services, invocation.run["run_id"])
    if settings.guarded_deployment:
        return _deploy_guarded(invocation, services)
    plan = TrafficPlan(settings.traffic_stages, settings.ab_holdback_percent)
    previous, current = invocation.result("ab"), invocation.result("traffic")
    stage = previous.get("next_stage_index") or 0
    weights = plan.weights_for_stage(stage, settings.champion_variant, settings.challenger_variant)
    champion = services.ledger.champion(settings.model_name)
    if champion is None:
        raise NotFoundError(f"model {settings.model_name} has no champion to test against")
    challenger = challenger_spec(invocation, services)
    services.endpoint.ensure_model(challenger)
    state = services.endpoint.describe()
    live = state.variant(settings.champion_variant) if state else None
    count = live.instance_count if live else 1
    variants = [
        Variant(settings.champion_variant, champion["sagemaker_model"],
                float(weights[settings.champion_variant]), count, settings.endpoint_instance_type),
        Variant(settings.challenger_variant, challenger.name,
                float(weights[settings.challenger_variant]), count, settings.endpoint_instance_type),
    ]
    same_stage = current.get("stage_index") == stage and current.get("settled") is False
    progress = move_endpoint(services, variants, current if same_stage else {})
    started = current.get("ab_started_at") or (
        datetime.fromtimestamp(services.clock(), UTC).isoformat() if progress["settled"] else None)
    return {"deployment_mode": AB_TEST, "stage_index": stage, "weights": weights, "challenger_model": challenger.name,
            "ab_started_at": started, "waits": previous.get("waits", 0) if previous.get("action") else 0,
            **progress}


def _deploy_guarded(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    if services.ledger.champion(settings.model_name) is None:
        raise NotFoundError(f"model {settings.model_name} has no champion to replace")
    started = invocation.result("traffic").get("ab_started_at") or datetime.fromtimestamp(
        services.clock(), UTC).isoformat()
    challenger = challenger_spec(invocation, services)
    services.endpoint.ensure_model(challenger)
    alone = single_variant(services, challenger.name, services.endpoint.describe())
    target = config_name(settings.endpoint_name, alone)
    policy = services.endpoint.deploy_with_guardrails(target, alone, settings.deployment_mode,
                                                      list(settings.rollback_alarm_names))
    return {"deployment_mode": settings.deployment_mode, "stage_index": 0,
            "weights": {settings.champion_variant: 100}, "challenger_model": challenger.name,
            "ab_started_at": started, "waits": 0, "config_name": target, "guardrails": policy.to_dict(),
            "settled": True}


@returns(Rollback)
def rollback(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """The champion alone at 100 %, one step of the endpoint change per call (``move_endpoint``: the
    challenger's weight to 0 first, then the champion's single-variant config); ``settled`` once done.

    Only undoes what this run did: a run that never passed the offline gate never touched the endpoint and
    returns at once; otherwise it first waits for a settling endpoint (a change of this run may still be
    under way), then removes its challenger if it serves. The challenger's package is marked Rejected."""
    settings = services.settings
    run = invocation.state.get("admission", {}).get("run")
    champion = services.ledger.champion(settings.model_name)
    previous = invocation.result("rollback")
    if run is None or champion is None or not invocation.result("evaluation").get("passed"):
        state = services.endpoint.describe()
        return {"settled": True, "restored": False, "serving": serving(state),
                "actions": ["nothing to restore: this run never changed the endpoint, or there is no champion"],
                "endpoint": state.to_dict() if state else None}
    state = services.endpoint.describe()
    ours = sagemaker_model_name(settings.model_name, run["run_id"])
    settling = state is not None and state.status in SETTLING_STATUSES
    ours_serves = state is not None and ours != champion["sagemaker_model"] and any(
        variant.model_name == ours for variant in state.variants)
    actions = list(previous.get("actions", [])) if previous.get("settled") is False else []
    if settling or ours_serves:
        alone = single_variant(services, champion["sagemaker_model"], state)
        drain = {settings.champion_variant: 1.0, settings.challenger_variant: 0.0}
        progress = move_endpoint(services, alone, previous, drain=drain)
        if not progress["settled"]:
            return {**progress, "restored": False}
        actions = progress["actions"]
    package = invocation.result("evaluation").get("model_package_arn")
    if package:
        reason = invocation.result("ab").get("reason") or invocation.state.get("error", {}).get("Cause", "")
        ModelRegistry(services.sagemaker, settings.model_name).set_status(
            package, REJECTED, f"rolled back by run {run['run_id']}: {str(reason)[:500]}")
    after = services.endpoint.describe()
    return {"settled": True, "restored": bool(actions),
            "actions": actions + (["challenger package marked Rejected"] if package else [])
            or ["endpoint already champion-only"],
            "serving": serving(after), "endpoint": after.to_dict() if after else None}
