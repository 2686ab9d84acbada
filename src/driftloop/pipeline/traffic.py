"""Move traffic between champion and challenger, judge each stage, promote or roll back."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.adapters.endpoint import IN_SERVICE, SETTLING_STATUSES, EndpointState, ModelSpec, Variant
from driftloop.adapters.registry import APPROVED, REJECTED, ModelRegistry
from driftloop.adapters.s3 import list_objects, put_json
from driftloop.config import AB_TEST, GUARDRAIL_MODES
from driftloop.data.merge import dataset_source
from driftloop.drift import build_baseline
from driftloop.errors import DriftloopError, NotFoundError
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, hold_lock
from driftloop.storage import s3_filesystem
from driftloop.traffic.judgement import ABJudge, ABTestConfig
from driftloop.traffic.online import FeedbackWindow, analyse_stage
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
    training = invocation.result("training")
    return ModelSpec(
        name=sagemaker_model_name(settings.model_name, invocation.run["run_id"]),
        model_data_url=training["model_artifact"],
        image=settings.training_image,
        role_arn=settings.sagemaker_role_arn,
        environment=(("SAGEMAKER_PROGRAM", "inference.py"),
                     ("SAGEMAKER_SUBMIT_DIRECTORY", training["source_uri"])),
    )


def _single_variant(services: Services, model_name: str, state: EndpointState | None) -> list[Variant]:
    """The champion alone, at the instance count the champion variant runs with now."""
    settings = services.settings
    current = state.variant(settings.champion_variant) if state else None
    count = current.instance_count if current else 1
    return [Variant(settings.champion_variant, model_name, 1.0, count, settings.endpoint_instance_type)]


def update_weights(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """Stage ``$.ab.next_stage_index`` (0 at first): the A/B config on first entry, then weights in place.

    In guardrail mode (``DEPLOYMENT_MODE`` canary or linear) there are no stages: the challenger alone
    replaces the champion through one blue/green update that SageMaker shifts and rolls back by itself."""
    settings = services.settings
    hold_lock(services, invocation.run["run_id"])
    if settings.guarded_deployment:
        return _deploy_guarded(invocation, services)
    plan = TrafficPlan(settings.traffic_stages, settings.ab_holdback_percent)
    previous = invocation.result("ab")
    stage = previous.get("next_stage_index") or 0
    weights = plan.weights_for_stage(stage, settings.champion_variant, settings.challenger_variant)
    champion = services.ledger.champion(settings.model_name)
    if champion is None:
        raise NotFoundError(f"model {settings.model_name} has no champion to test against")
    started = invocation.result("traffic").get("ab_started_at") or datetime.fromtimestamp(
        services.clock(), UTC).isoformat()
    challenger = challenger_spec(invocation, services)
    services.endpoint.ensure_model(challenger)
    state = services.endpoint.describe()
    live = state.variant(settings.challenger_variant) if state else None
    if live is not None and live.model_name == challenger.name:
        services.endpoint.set_weights({name: float(weight) for name, weight in weights.items()})
    else:
        current = state.variant(settings.champion_variant) if state else None
        count = current.instance_count if current else 1
        variants = [
            Variant(settings.champion_variant, champion["sagemaker_model"],
                    float(weights[settings.champion_variant]), count, settings.endpoint_instance_type),
            Variant(settings.challenger_variant, challenger.name,
                    float(weights[settings.challenger_variant]), count, settings.endpoint_instance_type),
        ]
        services.endpoint.deploy(config_name(settings.endpoint_name, variants), variants)
    return {"deployment_mode": AB_TEST, "stage_index": stage, "weights": weights, "challenger_model": challenger.name,
            "ab_started_at": started, "waits": previous.get("waits", 0) if previous.get("action") else 0}


def _deploy_guarded(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    if services.ledger.champion(settings.model_name) is None:
        raise NotFoundError(f"model {settings.model_name} has no champion to replace")
    started = invocation.result("traffic").get("ab_started_at") or datetime.fromtimestamp(
        services.clock(), UTC).isoformat()
    challenger = challenger_spec(invocation, services)
    services.endpoint.ensure_model(challenger)
    alone = _single_variant(services, challenger.name, services.endpoint.describe())
    target = config_name(settings.endpoint_name, alone)
    policy = services.endpoint.deploy_with_guardrails(target, alone, settings.deployment_mode,
                                                      list(settings.rollback_alarm_names))
    return {"deployment_mode": settings.deployment_mode, "stage_index": 0,
            "weights": {settings.champion_variant: 100}, "challenger_model": challenger.name,
            "ab_started_at": started, "waits": 0, "config_name": target, "guardrails": policy.to_dict()}


def read_feedback(services: Services, since: datetime) -> pa.Table:
    settings = services.settings
    prefix = f"feedback/{settings.endpoint_name}/"
    filesystem = s3_filesystem(services.s3)
    tables = []
    for obj in list_objects(services.s3, settings.data_bucket, prefix):
        partition = obj.key[len(prefix):].split("/", 1)[0]
        if partition.startswith("date=") and partition[5:] < since.date().isoformat():
            continue
        with filesystem.open_input_file(f"{settings.data_bucket}/{obj.key}") as handle:
            tables.append(pq.read_table(handle))
    if not tables:
        return pa.table({"variant": pa.array([], pa.string()),
                         "served_at": pa.array([], pa.timestamp("us", tz="UTC")),
                         "converted": pa.array([], pa.bool_()), "latency_ms": pa.array([], pa.float64()),
                         "error": pa.array([], pa.bool_())})
    table = pa.concat_tables(tables, promote_options="permissive")
    mask = pa.compute.greater_equal(table["served_at"], pa.scalar(since, pa.timestamp("us", tz="UTC")))
    return table.filter(mask)


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
    decision = analyse_stage(
        read_feedback(services, started), feedback_windows(started, looks), now,
        timedelta(minutes=settings.attribution_window_minutes), settings.champion_variant,
        settings.challenger_variant, stage, judge, waits=traffic.get("waits", 0),
    ).to_dict()
    decision["looks"] = looks
    decision["look"] = sum(look["stage_index"] == stage for look in looks) - 1  # this stage's looks, in order
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


def _save_decision(invocation: StepInvocation, services: Services, decision: dict[str, Any]) -> None:
    put_json(services.s3, services.settings.data_bucket,
             f"reports/{invocation.run['run_id']}/ab-stage-{decision['stage_index']}-"
             f"{decision.get('look', decision['waits'])}.json",
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


def promote(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """Challenger to 100%, then alone on the endpoint as the new champion and the new drift baseline."""
    settings = services.settings
    hold_lock(services, invocation.run["run_id"])
    bucket = settings.data_bucket
    run, merge = invocation.run, invocation.result("merge")
    evaluation, training = invocation.result("evaluation"), invocation.result("training")
    challenger = challenger_spec(invocation, services)
    services.endpoint.ensure_model(challenger)
    state = services.endpoint.describe()
    if state is not None and state.variant(settings.challenger_variant) is not None:
        services.endpoint.set_weights({settings.champion_variant: 0.0, settings.challenger_variant: 1.0})
    alone = _single_variant(services, challenger.name, state)
    services.endpoint.deploy(config_name(settings.endpoint_name, alone), alone)
    baseline_key = f"baselines/{settings.model_name}/{run['run_id']}.json"
    training_data = dataset_source(s3_filesystem(services.s3), f"{bucket}/{merge['dataset_dir']}")
    put_json(services.s3, bucket, baseline_key, build_baseline(training_data).to_dict())
    registry = ModelRegistry(services.sagemaker, settings.model_name)
    registry.set_status(evaluation["model_package_arn"], APPROVED, f"promoted by run {run['run_id']}")
    previous = services.ledger.champion(settings.model_name)
    champion = {
        "run_id": run["run_id"],
        "sagemaker_model": challenger.name,
        "model_data_url": training["model_artifact"],
        "model_package_arn": evaluation["model_package_arn"],
        "dataset_dir": merge["dataset_dir"],
        "dataset_manifest_key": merge["manifest_key"],
        "baseline_key": baseline_key,
        "promoted_at": datetime.fromtimestamp(services.clock(), UTC).isoformat(),
        "offline_metrics": evaluation.get("metrics", {}),
        "previous_champion": (previous or {}).get("run_id"),
    }
    if (previous or {}).get("run_id") != run["run_id"]:
        services.ledger.put_champion(settings.model_name, champion)
    return {"champion": champion, "endpoint": services.endpoint.describe().to_dict()}


def rollback(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """Champion at 100% and alone. Only undoes what this run did: a run that never put its challenger
    on the endpoint (or failed before it had one) leaves the endpoint untouched."""
    settings = services.settings
    run = invocation.state.get("admission", {}).get("run")
    champion = services.ledger.champion(settings.model_name)
    state: EndpointState | None = services.endpoint.describe()
    actions: list[str] = []
    if run is None or champion is None or state is None:
        return {"restored": False, "actions": ["nothing to restore: no run, champion or endpoint"]}
    ours = sagemaker_model_name(settings.model_name, run["run_id"])
    if ours != champion["sagemaker_model"] and any(v.model_name == ours for v in state.variants):
        if state.status == "InService" and state.variant(settings.challenger_variant) is not None:
            services.endpoint.set_weights({settings.champion_variant: 1.0, settings.challenger_variant: 0.0})
            actions.append("champion weight 100%, challenger 0%")
        alone = _single_variant(services, champion["sagemaker_model"], state)
        services.endpoint.deploy(config_name(settings.endpoint_name, alone), alone)
        actions.append("challenger variant removed (single-variant config with the champion)")
    package = invocation.result("evaluation").get("model_package_arn")
    if package:
        reason = invocation.result("ab").get("reason") or invocation.state.get("error", {}).get("Cause", "")
        ModelRegistry(services.sagemaker, settings.model_name).set_status(
            package, REJECTED, f"rolled back by run {run['run_id']}: {str(reason)[:500]}")
        actions.append("challenger package marked Rejected")
    after = services.endpoint.describe()
    return {"restored": bool(actions), "actions": actions or ["endpoint already champion-only"],
            "endpoint": after.to_dict() if after else None}
