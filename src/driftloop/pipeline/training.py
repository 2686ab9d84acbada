"""Start the challenger's training job (adopting a live one) and follow it to the end."""

from __future__ import annotations

from typing import Any

from driftloop.adapters.s3 import exists, put_bytes
from driftloop.errors import TrainingFailedError, TransientError
from driftloop.layout import checkpoint_prefix, model_output_prefix, s3_uri, source_bundle_key
from driftloop.model.bundle import build_source_bundle
from driftloop.model.jobs import (
    TrainingJobConfig,
    build_training_job_request,
    estimate_training_cost,
    map_training_status,
    training_job_name,
)
from driftloop.pipeline.contracts import Training, returns
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, hold_lock

MAX_JOB_ATTEMPTS = 5
_LIVE = ("InProgress", "Completed", "Stopping")


def upload_source_bundle(services: Services) -> str:
    """The training code as a content-addressed ``sourcedir.tar.gz`` (uploaded once per version)."""
    bundle, digest = build_source_bundle()
    key = source_bundle_key(digest)
    if not exists(services.s3, services.settings.data_bucket, key):
        put_bytes(services.s3, services.settings.data_bucket, key, bundle, "application/gzip")
    return s3_uri(services.settings.data_bucket, key)


@returns(Training)
def start(invocation: StepInvocation, services: Services) -> Training:
    settings = services.settings
    bucket = settings.data_bucket
    run = invocation.run
    hold_lock(services, run["run_id"])
    merge = invocation.merge
    # Job names start with the model name: the training role's IAM policy is scoped to that prefix.
    execution_name = f"{settings.model_name}-{invocation.context.execution.name}"
    earlier_failures = []
    source_uri = upload_source_bundle(services)
    for attempt in range(MAX_JOB_ATTEMPTS):
        name = training_job_name(execution_name, attempt)
        existing = services.trainer.describe(name)
        if existing is not None and existing.get("TrainingJobStatus") in _LIVE:
            return Training(job_name=name, attempt=attempt, status=existing["TrainingJobStatus"], adopted=True,
                            earlier_failures=earlier_failures, source_uri=source_uri)
        if existing is not None:
            earlier_failures.append({"job_name": name, "status": existing.get("TrainingJobStatus"),
                                     "failure_reason": existing.get("FailureReason", "")})
            continue
        request = build_training_job_request(
            TrainingJobConfig(
                role_arn=settings.sagemaker_role_arn,
                instance_type=settings.training_instance_type,
                image_uri=settings.training_image,
                use_spot=settings.use_spot_training,
                max_runtime_seconds=settings.max_training_seconds,
                checkpoint_s3_uri=s3_uri(bucket, checkpoint_prefix(name)),
            ),
            run_id=run["run_id"],
            job_name=name,
            train_s3_uri=s3_uri(bucket, f"{merge.dataset_dir}/"),
            source_s3_uri=source_uri,
            output_s3_uri=s3_uri(bucket, model_output_prefix(settings.model_name)),
            hyperparameters={**settings.training_hyperparameters, "train_until": merge.holdout_from},
        )
        described = services.trainer.start(request)
        return Training(job_name=name, attempt=attempt, status=described.get("TrainingJobStatus", "InProgress"),
                        adopted=False, earlier_failures=earlier_failures, source_uri=source_uri)
    raise TrainingFailedError(f"{MAX_JOB_ATTEMPTS} training attempts failed: {earlier_failures}")


@returns(Training)
def poll(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    hold_lock(services, invocation.run["run_id"])
    started = invocation.training
    described = services.trainer.describe(started.job_name)
    if described is None:
        raise TransientError(f"training job {started.job_name} is not visible yet")
    status = map_training_status(described)
    result = started.dump() | status.to_dict()
    if status.status in ("Failed", "Stopped"):
        raise TrainingFailedError(
            f"training job {started.job_name} {status.status}: {status.failure_reason or 'no reason given'}"
        )
    if status.status == "Completed":
        result["cost"] = estimate_training_cost(
            services.settings.training_instance_type,
            training_seconds=status.training_seconds,
            billable_seconds=status.billable_seconds,
            spot=services.settings.use_spot_training,
        )
    return result
