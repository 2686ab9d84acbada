"""Find and delete what a driftloop stack created outside CloudFormation.

The Lambdas create the SageMaker endpoint, its endpoint configs, the models, the model package group (with
its packages) and the training jobs, and Admit creates one-time EventBridge Scheduler schedules; ``sam
delete`` removes none of them, and the endpoint is billed by the hour. This module lists them (a
:class:`TeardownPlan`) and deletes them (:func:`execute`); ``driftloop teardown`` and nothing else call it.

What belongs to a stack comes from the stack itself: its ``ModelName`` and ``EndpointName`` parameters give
the names driftloop derives (and its IAM policies allow): the endpoint ``<EndpointName>``, configs
``<EndpointName[:40]>-*``, models, training jobs and schedules ``<ModelName>-*``, the package group
``<ModelName>``. A resource with such a name is this stack's unless its ``driftloop:stack`` tag
(:mod:`driftloop.adapters.tags`) names another stack; an untagged one was made before the tag existed and
is reported as untagged. Schedules cannot carry tags: one is this stack's when it sends with the stack's
``CooldownScheduleRole``.

A stack deleted already (``sam delete`` first) is still found through its deleted record, which keeps
its parameters, so what it left behind can be cleaned up afterwards. Everything is idempotent: what is
gone already counts as done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import error_code, error_message, is_not_found
from driftloop.adapters.tags import STACK_TAG
from driftloop.errors import ConfigurationError, DriftloopError, NotFoundError

ENDPOINT, ENDPOINT_CONFIG, MODEL, TRAINING_JOB, SCHEDULE, MODEL_PACKAGE_GROUP = (
    "endpoint", "endpoint-config", "model", "training-job", "schedule", "model-package-group")
# The endpoint first: it is what is billed; models and configs it uses can go once it is being deleted.
ORDER = (ENDPOINT, ENDPOINT_CONFIG, MODEL, TRAINING_JOB, SCHEDULE, MODEL_PACKAGE_GROUP)
DELETE, STOP = "delete", "stop"
SCHEDULE_GROUP = "default"
SCHEDULE_ROLE_LOGICAL_ID = "CooldownScheduleRole"
CONFIG_PREFIX_LENGTH = 40  # driftloop.pipeline.rollout.config_name keeps this much of the endpoint name


@dataclass(frozen=True)
class StackInfo:
    """The stack's names: enough to find what its Lambdas created."""

    name: str
    region: str
    status: str
    model_name: str
    endpoint_name: str
    schedule_role: str = ""

    @property
    def deleted(self) -> bool:
        return self.status == "DELETE_COMPLETE"


@dataclass(frozen=True)
class Leftover:
    """One resource to delete (or, for a running training job, to stop)."""

    kind: str
    name: str
    action: str = DELETE
    tagged: bool = True
    detail: str = ""


@dataclass(frozen=True)
class TeardownPlan:
    stack: StackInfo
    leftovers: tuple[Leftover, ...]
    kept: tuple[Leftover, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"stack": asdict(self.stack), "leftovers": [asdict(item) for item in self.leftovers],
                "kept": [asdict(item) for item in self.kept]}


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    result: str  # deleted, stopped, already gone, failed
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.result == "failed"


def _parameters(stack: dict[str, Any]) -> dict[str, str]:
    return {entry["ParameterKey"]: entry.get("ParameterValue", "") for entry in stack.get("Parameters", [])}


def _deleted_stack_id(cloudformation: Any, stack_name: str) -> str | None:
    """The newest deleted stack of that name (CloudFormation keeps deleted stacks' records for 90 days)."""
    deleted = [summary for page in cloudformation.get_paginator("list_stacks").paginate(
                   StackStatusFilter=["DELETE_COMPLETE"])
               for summary in page.get("StackSummaries", []) if summary.get("StackName") == stack_name]
    if not deleted:
        return None
    return str(max(deleted, key=lambda summary: str(summary.get("DeletionTime", "")))["StackId"])


def describe_stack(cloudformation: Any, stack_name: str) -> StackInfo:
    """The stack's names; NotFoundError when no stack (live or deleted) of that name is in the client's
    region, ConfigurationError when the stack is not a driftloop stack."""
    region = cloudformation.meta.region_name
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        # ValidationError "Stack with id <name> does not exist"
        if not is_not_found(error):
            raise DriftloopError(f"DescribeStacks {stack_name}: {error_code(error)} {error_message(error)}") from error
        deleted = _deleted_stack_id(cloudformation, stack_name)
        if deleted is None:
            raise NotFoundError(f"no stack {stack_name} in region {region} (live or deleted): nothing to tear "
                                "down; check the name and --region") from error
        stack = cloudformation.describe_stacks(StackName=deleted)["Stacks"][0]
    parameters = _parameters(stack)
    missing = [name for name in ("ModelName", "EndpointName") if not parameters.get(name)]
    if missing:
        raise ConfigurationError(f"stack {stack_name} in region {region} has no {' or '.join(missing)} parameter: "
                                 "it is not a driftloop stack, nothing was deleted")
    try:
        role = cloudformation.describe_stack_resource(
            StackName=stack["StackId"], LogicalResourceId=SCHEDULE_ROLE_LOGICAL_ID
        )["StackResourceDetail"].get("PhysicalResourceId", "")
    except ClientError:
        role = ""  # an older template without cool-down schedules
    return StackInfo(name=stack_name, region=region, status=stack.get("StackStatus", ""),
                     model_name=parameters["ModelName"], endpoint_name=parameters["EndpointName"],
                     schedule_role=role)


def _tags(sagemaker: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags", [])})
    return tags


def _owned(sagemaker: Any, stack: StackInfo, kind: str, name: str, arn: str, **extra: Any) -> Leftover | None:
    """The leftover, unless its stack tag names another stack."""
    owner = _tags(sagemaker, arn).get(STACK_TAG)
    if owner not in (None, stack.name):
        return None
    return Leftover(kind=kind, name=name, tagged=owner is not None, **extra)


def _listed(sagemaker: Any, operation: str, key: str, **arguments: Any) -> Iterator[dict[str, Any]]:
    for page in sagemaker.get_paginator(operation).paginate(**arguments):
        yield from page.get(key, [])


def _endpoints(sagemaker: Any, stack: StackInfo) -> Iterator[Leftover | None]:
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=stack.endpoint_name)
    except ClientError as error:
        if is_not_found(error):
            return
        raise
    yield _owned(sagemaker, stack, ENDPOINT, stack.endpoint_name, endpoint["EndpointArn"],
                 detail=str(endpoint.get("EndpointStatus", "")))


def _endpoint_configs(sagemaker: Any, stack: StackInfo) -> Iterator[Leftover | None]:
    prefix = f"{stack.endpoint_name[:CONFIG_PREFIX_LENGTH]}-"
    for config in _listed(sagemaker, "list_endpoint_configs", "EndpointConfigs", NameContains=prefix):
        if config["EndpointConfigName"].startswith(prefix):
            yield _owned(sagemaker, stack, ENDPOINT_CONFIG, config["EndpointConfigName"], config["EndpointConfigArn"])


def _models(sagemaker: Any, stack: StackInfo) -> Iterator[Leftover | None]:
    prefix = f"{stack.model_name}-"
    for model in _listed(sagemaker, "list_models", "Models", NameContains=prefix):
        if model["ModelName"].startswith(prefix):
            yield _owned(sagemaker, stack, MODEL, model["ModelName"], model["ModelArn"])


def _training_jobs(sagemaker: Any, stack: StackInfo) -> Iterator[Leftover | None]:
    """Running jobs only: a finished job costs nothing and is the record of what was trained."""
    prefix = f"{stack.model_name}-"
    for job in _listed(sagemaker, "list_training_jobs", "TrainingJobSummaries", NameContains=prefix,
                       StatusEquals="InProgress"):
        if job["TrainingJobName"].startswith(prefix):
            yield _owned(sagemaker, stack, TRAINING_JOB, job["TrainingJobName"], job["TrainingJobArn"], action=STOP,
                         detail="InProgress")


def _model_package_group(sagemaker: Any, stack: StackInfo) -> Iterator[Leftover | None]:
    try:
        group = sagemaker.describe_model_package_group(ModelPackageGroupName=stack.model_name)
    except ClientError as error:
        # SageMaker's not-found text for groups is undocumented (adapters.registry): any validation
        # failure of a describe by name means there is no such group to delete.
        if is_not_found(error) or error_code(error) == "ValidationException":
            return
        raise
    packages = sum(1 for _ in _listed(sagemaker, "list_model_packages", "ModelPackageSummaryList",
                                      ModelPackageGroupName=stack.model_name))
    yield _owned(sagemaker, stack, MODEL_PACKAGE_GROUP, stack.model_name, group["ModelPackageGroupArn"],
                 detail=f"{packages} model package(s)")


def _schedules(scheduler: Any, stack: StackInfo) -> Iterator[Leftover]:
    if not stack.schedule_role:
        return
    prefix = f"{stack.model_name}-cooldown-"
    for page in scheduler.get_paginator("list_schedules").paginate(NamePrefix=prefix, GroupName=SCHEDULE_GROUP):
        for summary in page.get("Schedules", []):
            try:
                schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=SCHEDULE_GROUP)
            except ClientError as error:
                if is_not_found(error):
                    continue
                raise
            if schedule.get("Target", {}).get("RoleArn", "").endswith(f"/{stack.schedule_role}"):
                yield Leftover(kind=SCHEDULE, name=summary["Name"], tagged=False,
                               detail=str(schedule.get("ScheduleExpression", "")))


def plan_teardown(stack: StackInfo, sagemaker: Any, scheduler: Any,
                  keep_model_registry: bool = False) -> TeardownPlan:
    """What :func:`execute` would delete, in :data:`ORDER`; the package group is ``kept`` when asked."""
    found: list[Leftover | None] = [
        *_endpoints(sagemaker, stack), *_endpoint_configs(sagemaker, stack), *_models(sagemaker, stack),
        *_training_jobs(sagemaker, stack), *_schedules(scheduler, stack), *_model_package_group(sagemaker, stack)]
    leftovers = [item for item in found if item is not None]
    kept = [item for item in leftovers if keep_model_registry and item.kind == MODEL_PACKAGE_GROUP]
    chosen = sorted((item for item in leftovers if item not in kept),
                    key=lambda item: (ORDER.index(item.kind), item.name))
    return TeardownPlan(stack=stack, leftovers=tuple(chosen), kept=tuple(kept))


def _delete_group(sagemaker: Any, group: str) -> None:
    """A group with packages cannot be deleted: its packages go first."""
    for package in list(_listed(sagemaker, "list_model_packages", "ModelPackageSummaryList",
                                ModelPackageGroupName=group)):
        try:
            sagemaker.delete_model_package(ModelPackageName=package["ModelPackageArn"])
        except ClientError as error:
            if not is_not_found(error):
                raise
    sagemaker.delete_model_package_group(ModelPackageGroupName=group)


def _action(sagemaker: Any, scheduler: Any, item: Leftover) -> Callable[[], Any]:
    return {
        ENDPOINT: lambda: sagemaker.delete_endpoint(EndpointName=item.name),
        ENDPOINT_CONFIG: lambda: sagemaker.delete_endpoint_config(EndpointConfigName=item.name),
        MODEL: lambda: sagemaker.delete_model(ModelName=item.name),
        TRAINING_JOB: lambda: sagemaker.stop_training_job(TrainingJobName=item.name),
        SCHEDULE: lambda: scheduler.delete_schedule(Name=item.name, GroupName=SCHEDULE_GROUP),
        MODEL_PACKAGE_GROUP: lambda: _delete_group(sagemaker, item.name),
    }[item.kind]


def execute(plan: TeardownPlan, sagemaker: Any, scheduler: Any,
            report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Delete (or stop) every leftover of ``plan``; one failure does not stop the others. What is gone
    already, or a job no longer running, counts as done."""
    outcomes = []
    for item in plan.leftovers:
        try:
            _action(sagemaker, scheduler, item)()
            outcome = Outcome(item.kind, item.name, "stopped" if item.action == STOP else "deleted")
        except ClientError as error:
            message = error_message(error)
            finished_job = item.kind == TRAINING_JOB and "status" in message.lower()
            if is_not_found(error) or finished_job:
                outcome = Outcome(item.kind, item.name, "already gone" if not finished_job else "already stopped",
                                  message)
            else:
                outcome = Outcome(item.kind, item.name, "failed", f"{error_code(error)}: {message}")
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes
