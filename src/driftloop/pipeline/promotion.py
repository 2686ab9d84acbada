"""Promote: the challenger alone on the endpoint, then the new champion in the ledger and its drift baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from driftloop.adapters.registry import APPROVED, ModelRegistry
from driftloop.adapters.s3 import put_json
from driftloop.data.merge import dataset_source
from driftloop.drift.baseline import build_baseline
from driftloop.layout import baseline_key, object_path
from driftloop.pipeline.contracts import Promotion, returns
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.rollout import challenger_spec, move_endpoint, single_variant
from driftloop.pipeline.services import Services, hold_lock
from driftloop.storage import s3_filesystem


@returns(Promotion)
def promote(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """The challenger alone on the endpoint, then the new champion and the new drift baseline.

    One step of the endpoint change per call (``move_endpoint``); the ledger names the new champion only
    once the endpoint serves it alone, so a failure before that leaves the old champion in the ledger and
    RestoreChampion puts it back on the endpoint."""
    settings = services.settings
    hold_lock(services, invocation.run["run_id"])
    bucket = settings.data_bucket
    run, merge = invocation.run, invocation.merge
    evaluation, training = invocation.evaluation, invocation.training
    challenger = challenger_spec(invocation, services)
    services.endpoint.ensure_model(challenger)
    alone = single_variant(services, challenger.name, services.endpoint.describe())
    progress = move_endpoint(services, alone, invocation.result("promotion"))
    if not progress["settled"]:
        return progress
    promoted_baseline = baseline_key(settings.model_name, run["run_id"])
    training_data = dataset_source(s3_filesystem(services.s3), object_path(bucket, merge.dataset_dir))
    put_json(services.s3, bucket, promoted_baseline, build_baseline(training_data).to_dict(), compact=True)
    registry = ModelRegistry(services.sagemaker, settings.model_name)
    registry.set_status(evaluation.model_package_arn, APPROVED, f"promoted by run {run['run_id']}")
    previous = services.ledger.champion(settings.model_name)
    champion = {
        "run_id": run["run_id"],
        "sagemaker_model": challenger.name,
        "model_data_url": training.model_artifact,
        "model_package_arn": evaluation.model_package_arn,
        "dataset_dir": merge.dataset_dir,
        "dataset_manifest_key": merge.manifest_key,
        "baseline_key": promoted_baseline,
        "promoted_at": datetime.fromtimestamp(services.clock(), UTC).isoformat(),
        "offline_metrics": evaluation.metrics,
        "previous_champion": (previous or {}).get("run_id"),
    }
    if (previous or {}).get("run_id") != run["run_id"]:
        services.ledger.put_champion(settings.model_name, champion)
    return {**progress, "champion": champion, "endpoint": services.endpoint.describe().to_dict()}
