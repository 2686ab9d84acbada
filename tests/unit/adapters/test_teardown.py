"""``driftloop teardown`` against moto: what a run creates outside CloudFormation, and nothing else, goes.

SageMaker and EventBridge Scheduler are moto's. moto's CloudFormation needs extra packages (it loads every
service's parser), and teardown only reads a stack's parameters and one physical id, so the stack is a
small fake answering with CloudFormation's shapes and its not-found text.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends
from sagemaker_stubs import ACCOUNT, IMAGE, REGION, ROLE_ARN

from driftloop import cli, teardown_cli
from driftloop.adapters.endpoint import ModelSpec, Variant
from driftloop.adapters.registry import ModelRegistry
from driftloop.adapters.sagemaker_endpoint import SageMakerEndpoint
from driftloop.adapters.tags import STACK_TAG, stack_tags
from driftloop.adapters.teardown import describe_stack, execute, plan_teardown
from driftloop.adapters.training import SageMakerTrainer
from driftloop.console import ExitCode
from driftloop.errors import ConfigurationError, NotFoundError
from driftloop.model.jobs import TrainingJobConfig, build_training_job_request, training_job_name
from driftloop.teardown_resource import PHYSICAL_ID, handle

PROJECT = Path(__file__).resolve().parents[3]
STACK, OTHER = "shop-recs", "other-recs"
NAMES = {STACK: ("recs", "shop-recs-endpoint"), OTHER: ("recsother", "other-endpoint")}


def _not_found(operation: str, name: str) -> ClientError:
    # CloudFormation's answer for an unknown (or, by name, deleted) stack.
    return ClientError({"Error": {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}},
                       operation)


class FakeCloudFormation:
    """DescribeStacks, DescribeStackResource and ListStacks over a few stacks of one region."""

    def __init__(self, region: str, stacks: dict[str, dict[str, Any]], deleted: list[dict[str, Any]] = ()) -> None:
        self.meta = SimpleNamespace(region_name=region)
        self.stacks, self.deleted = stacks, list(deleted)

    def _find(self, name: str) -> dict[str, Any] | None:
        live = [stack for stack in self.stacks.values() if name in (stack["StackName"], stack["StackId"])]
        return next(iter(live), None) or next((s for s in self.deleted if s["StackId"] == name), None)

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
        stack = self._find(StackName)
        if stack is None:
            raise _not_found("DescribeStacks", StackName)
        return {"Stacks": [{key: value for key, value in stack.items() if key != "Resources"}]}

    def describe_stack_resource(self, StackName: str, LogicalResourceId: str) -> dict[str, Any]:  # noqa: N803
        stack = self._find(StackName)
        if stack is None or LogicalResourceId not in stack["Resources"]:
            raise _not_found("DescribeStackResource", StackName)
        return {"StackResourceDetail": {"LogicalResourceId": LogicalResourceId,
                                        "PhysicalResourceId": stack["Resources"][LogicalResourceId]}}

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_stacks"
        summaries = [{"StackName": s["StackName"], "StackId": s["StackId"], "StackStatus": "DELETE_COMPLETE",
                      "DeletionTime": s["DeletionTime"]} for s in self.deleted]
        return SimpleNamespace(paginate=lambda **_: iter([{"StackSummaries": summaries}]))


def stack_record(name: str, status: str = "CREATE_COMPLETE", **extra: Any) -> dict[str, Any]:
    model, endpoint = NAMES[name]
    return {"StackName": name, "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/{status}",
            "StackStatus": status,
            "Parameters": [{"ParameterKey": "ModelName", "ParameterValue": model},
                           {"ParameterKey": "EndpointName", "ParameterValue": endpoint}],
            "Resources": {"CooldownScheduleRole": f"{name}-CooldownScheduleRole-ABC"}, **extra}


@functools.cache
def aws_client(service: str) -> Any:
    """One client per service for the module (building one costs more than a test's calls to moto; every
    test's ``mock_aws`` still starts from an empty account)."""
    return boto3.client(service, region_name=REGION)


def create_what_a_run_creates(stack: str) -> None:
    """The endpoint with two configs and two models, a registered package, a running training job and a
    cool-down schedule, made by the adapters the Lambdas use, tagged as the Lambdas tag them."""
    model, endpoint_name = NAMES[stack]
    sagemaker = aws_client("sagemaker")
    tags = stack_tags(stack)
    endpoint = SageMakerEndpoint(sagemaker, endpoint_name, tags=tags)
    for suffix in ("champion", "challenger"):
        endpoint.ensure_model(ModelSpec(f"{model}-{suffix}", IMAGE, f"s3://data/models/{suffix}.tar.gz", ROLE_ARN))
    champion = Variant("champion", f"{model}-champion", 1.0, 1, "ml.m5.large")
    endpoint.deploy(f"{endpoint_name}-one", [champion])
    sagemaker.create_endpoint_config(EndpointConfigName=f"{endpoint_name}-two", ProductionVariants=[{
        "VariantName": "challenger", "ModelName": f"{model}-challenger", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}], Tags=[{"Key": STACK_TAG, "Value": stack}])
    ModelRegistry(sagemaker, model, tags).register("run-1", "s3://data/models/challenger.tar.gz", IMAGE,
                                                    {"ndcg_at_10": 0.3}, "s3://data/datasets/v1/manifest.json")
    job = training_job_name(f"{model}-run-1", 0)
    SageMakerTrainer(sagemaker, tags).start(build_training_job_request(
        TrainingJobConfig(role_arn=ROLE_ARN, image_uri=IMAGE), run_id="run-1", job_name=job,
        train_s3_uri="s3://data/datasets/v1/", source_s3_uri="s3://data/code/a/sourcedir.tar.gz",
        output_s3_uri="s3://data/models/"))
    sagemaker_backends[ACCOUNT][REGION].training_jobs[job].training_job_status = "InProgress"  # moto ends at once
    aws_client("scheduler").create_schedule(
        Name=f"{model}-cooldown-20250801T000000", ScheduleExpression="at(2025-08-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
        Target={"Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
                "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/{stack}-CooldownScheduleRole-ABC"})


def inventory(stack: str) -> dict[str, list[str]]:
    """Every resource named like ``stack``'s, whatever its tags, and the running jobs."""
    model, endpoint = NAMES[stack]
    sagemaker, scheduler = aws_client("sagemaker"), aws_client("scheduler")
    groups = [g["ModelPackageGroupName"] for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]]
    return {
        "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]
                      if e["EndpointName"] == endpoint],
        "configs": [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
                    if c["EndpointConfigName"].startswith(f"{endpoint}-")],
        "models": [m["ModelName"] for m in sagemaker.list_models()["Models"] if m["ModelName"].startswith(f"{model}-")],
        "running jobs": [j["TrainingJobName"] for j in sagemaker.list_training_jobs()["TrainingJobSummaries"]
                         if j["TrainingJobName"].startswith(f"{model}-") and j["TrainingJobStatus"] == "InProgress"],
        "schedules": [s["Name"] for s in scheduler.list_schedules()["Schedules"]
                      if s["Name"].startswith(f"{model}-cooldown-")],
        "groups": [g for g in groups if g == model],
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        create_what_a_run_creates(STACK)
        create_what_a_run_creates(OTHER)
        yield FakeCloudFormation(REGION, {STACK: stack_record(STACK), OTHER: stack_record(OTHER)})


def _validation(operation: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


class CompleteSageMaker:
    """moto's SageMaker client plus what moto lacks, on moto's own state: StopTrainingJob (AWS refuses a job
    not running with "... the training job is in status <status>."), DeleteModelPackage and
    DeleteModelPackageGroup (refused while the group holds packages)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def stop_training_job(self, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
        job = sagemaker_backends[ACCOUNT][REGION].training_jobs[TrainingJobName]
        if job.training_job_status != "InProgress":
            raise _validation("StopTrainingJob", "The request was rejected because the training job is in "
                              f"status {job.training_job_status}.")
        job.training_job_status = "Stopped"
        return {}

    def delete_model_package(self, ModelPackageName: str) -> dict[str, Any]:  # noqa: N803
        if sagemaker_backends[ACCOUNT][REGION].model_packages.pop(ModelPackageName, None) is None:
            raise _validation("DeleteModelPackage", f"Model package {ModelPackageName} does not exist.")
        return {}

    def delete_model_package_group(self, ModelPackageGroupName: str) -> dict[str, Any]:  # noqa: N803
        backend = sagemaker_backends[ACCOUNT][REGION]
        if ModelPackageGroupName not in backend.model_package_groups:
            raise _validation("DeleteModelPackageGroup", "Model Package Group does not exist.")
        if any(package.model_package_group_name == ModelPackageGroupName
               for package in backend.model_packages.values()):
            raise _validation("DeleteModelPackageGroup", f"Model Package Group {ModelPackageGroupName} has model "
                              "packages; delete them first.")
        del backend.model_package_groups[ModelPackageGroupName]
        return {}


def clients() -> tuple[Any, Any]:
    return CompleteSageMaker(aws_client("sagemaker")), aws_client("scheduler")


def test_the_plan_lists_everything_a_run_created_endpoint_first(aws):
    plan = plan_teardown(describe_stack(aws, STACK), *clients())
    assert [(item.kind, item.name, item.action) for item in plan.leftovers] == [
        ("endpoint", "shop-recs-endpoint", "delete"),
        ("endpoint-config", "shop-recs-endpoint-one", "delete"),
        ("endpoint-config", "shop-recs-endpoint-two", "delete"),
        ("model", "recs-challenger", "delete"),
        ("model", "recs-champion", "delete"),
        ("training-job", training_job_name("recs-run-1", 0), "stop"),
        ("schedule", "recs-cooldown-20250801T000000", "delete"),
        ("model-package-group", "recs", "delete"),
    ]
    assert all(item.tagged for item in plan.leftovers if item.kind != "schedule")
    assert plan.leftovers[-1].detail == "1 model package(s)"


def test_teardown_leaves_no_driftloop_resource_and_touches_no_other_stack(aws):
    other_before = inventory(OTHER)
    assert all(other_before.values())
    outcomes = execute(plan_teardown(describe_stack(aws, STACK), *clients()), *clients())
    assert {outcome.result for outcome in outcomes} == {"deleted", "stopped"}
    assert inventory(STACK) == {key: [] for key in other_before}
    assert inventory(OTHER) == other_before


def test_teardown_is_idempotent(aws):
    stack = describe_stack(aws, STACK)
    execute(plan_teardown(stack, *clients()), *clients())
    assert plan_teardown(stack, *clients()).leftovers == ()
    # A plan made before a first teardown finished: every item is gone already, none fails.
    stale = plan_teardown(describe_stack(FakeCloudFormation(REGION, {OTHER: stack_record(OTHER)}), OTHER), *clients())
    execute(stale, *clients())
    assert {outcome.result for outcome in execute(stale, *clients())} <= {"already gone", "already stopped"}


def test_keep_model_registry_keeps_the_group_and_its_packages(aws):
    plan = plan_teardown(describe_stack(aws, STACK), *clients(), keep_model_registry=True)
    assert [item.kind for item in plan.kept] == ["model-package-group"]
    execute(plan, *clients())
    assert inventory(STACK)["groups"] == ["recs"]
    sagemaker, _ = clients()
    assert len(sagemaker.list_model_packages(ModelPackageGroupName="recs")["ModelPackageSummaryList"]) == 1


def test_a_resource_tagged_for_another_stack_is_not_this_stack_s(aws):
    sagemaker, scheduler = clients()
    sagemaker.create_model(ModelName="recs-borrowed", ExecutionRoleArn=ROLE_ARN,
                           PrimaryContainer={"Image": IMAGE}, Tags=[{"Key": STACK_TAG, "Value": OTHER}])
    sagemaker.create_model(ModelName="recs-untagged", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": IMAGE})
    plan = plan_teardown(describe_stack(aws, STACK), sagemaker, scheduler)
    models = {item.name: item.tagged for item in plan.leftovers if item.kind == "model"}
    assert models == {"recs-champion": True, "recs-challenger": True, "recs-untagged": False}


def test_a_stack_deleted_already_is_found_through_its_deleted_record(aws):
    deleted = stack_record(STACK, "DELETE_COMPLETE", DeletionTime="2025-08-01T00:00:00Z")
    older = {**deleted, "StackId": f"{deleted['StackId']}-older", "DeletionTime": "2025-01-01T00:00:00Z",
             "Parameters": [{"ParameterKey": "ModelName", "ParameterValue": "older"},
                            {"ParameterKey": "EndpointName", "ParameterValue": "older-endpoint"}]}
    cloudformation = FakeCloudFormation(REGION, {OTHER: stack_record(OTHER)}, deleted=[deleted, older])
    stack = describe_stack(cloudformation, STACK)
    assert stack.deleted and (stack.model_name, stack.schedule_role) == ("recs", f"{STACK}-CooldownScheduleRole-ABC")
    execute(plan_teardown(stack, *clients()), *clients())
    assert not any(inventory(STACK).values())


def test_an_unknown_stack_or_region_and_a_foreign_stack_are_refused(aws):
    with pytest.raises(NotFoundError, match="no stack shop-recs in region eu-west-1"):
        describe_stack(FakeCloudFormation("eu-west-1", {}), STACK)
    foreign = {**stack_record(STACK), "Parameters": [{"ParameterKey": "BucketName", "ParameterValue": "x"}]}
    with pytest.raises(ConfigurationError, match="not a driftloop stack"):
        describe_stack(FakeCloudFormation(REGION, {STACK: foreign}), STACK)


def run_cli(monkeypatch: pytest.MonkeyPatch, cloudformation: Any, *arguments: str) -> int:
    monkeypatch.setattr(teardown_cli, "_clients", lambda region: (cloudformation, *clients()))
    return cli.main(["teardown", *arguments])


def test_cli_without_yes_lists_and_deletes_nothing(aws, monkeypatch, capsys):
    before = inventory(STACK)
    assert run_cli(monkeypatch, aws, "--stack", STACK) == 0
    out = capsys.readouterr().out
    assert "delete endpoint shop-recs-endpoint (InService)" in out
    assert f"dry run: nothing deleted. To delete these 8 resources: driftloop teardown --stack {STACK} " \
           f"--region {REGION} --yes" in out
    assert inventory(STACK) == before


def test_cli_with_yes_deletes_then_says_to_delete_the_stack(aws, monkeypatch, capsys):
    assert run_cli(monkeypatch, aws, "--stack", STACK, "--yes") == 0
    out = capsys.readouterr().out
    assert "deleted endpoint shop-recs-endpoint" in out and "stopped training-job" in out
    assert f"now delete the stack: sam delete --stack-name {STACK} --region {REGION}" in out
    assert not any(inventory(STACK).values())
    assert run_cli(monkeypatch, aws, "--stack", STACK, "--yes") == 0
    assert f"nothing left by stack {STACK} in {REGION}" in capsys.readouterr().out


def test_cli_json_plan_and_outcomes(aws, monkeypatch, capsys):
    assert run_cli(monkeypatch, aws, "--stack", STACK, "--yes", "--keep-model-registry", "--json", "-") == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["deleted"] is True and document["stack"]["model_name"] == "recs"
    assert [item["kind"] for item in document["kept"]] == ["model-package-group"]
    assert len(document["outcomes"]) == len(document["leftovers"]) == 7
    assert "now delete the stack" in captured.err


def test_cli_unknown_stack_is_one_line_and_a_non_zero_exit(aws, monkeypatch, capsys):
    before = inventory(STACK)
    assert run_cli(monkeypatch, FakeCloudFormation("eu-west-1", {}), "--stack", STACK, "--yes") == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0 and "no stack shop-recs in region eu-west-1" in captured.err
    assert inventory(STACK) == before


# ---------------------------------------------------------------- the custom resource on stack delete

class Recording:
    """A client that records the operations called on it (for the IAM check)."""

    def __init__(self, client: Any, calls: set[str]) -> None:
        self._client, self._calls = client, calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if callable(attribute) and not name.startswith(("get_paginator", "meta")):
            self._calls.add(name)
        if name == "get_paginator":
            return lambda operation: (self._calls.add(operation), attribute(operation))[1]
        return attribute


def custom_resource_event(request: str, stack_id: str, keep: str = "true") -> dict[str, Any]:
    return {"RequestType": request, "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
            "StackId": stack_id, "RequestId": "req-1", "LogicalResourceId": "TeardownOnStackDelete",
            "ResourceType": "Custom::DriftloopTeardown",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "KeepModelRegistry": keep}}


def function_environment(stack: str) -> dict[str, str]:
    model, endpoint = NAMES[stack]
    return {"STACK_NAME": stack, "MODEL_NAME": model, "ENDPOINT_NAME": endpoint,
            "COOLDOWN_SCHEDULE_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{stack}-CooldownScheduleRole-ABC"}


def answer(status: str, request: str = "Delete", keep: str = "true",
           cloudformation: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    record = stack_record(STACK, status)
    sent: list[dict[str, Any]] = []
    response = handle(custom_resource_event(request, record["StackId"], keep),
                      cloudformation or FakeCloudFormation(REGION, {STACK: record}), *clients(),
                      function_environment(STACK), send=lambda url, body: sent.append(body))
    return response, sent


def test_deleting_the_stack_tears_down_and_keeps_the_registry_by_default(aws):
    other_before = inventory(OTHER)
    response, sent = answer("DELETE_IN_PROGRESS")
    assert sent == [response] and response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == PHYSICAL_ID and "deleted endpoint shop-recs-endpoint" in response["Reason"]
    assert {key: value for key, value in inventory(STACK).items() if value} == {"groups": ["recs"]}
    assert inventory(OTHER) == other_before
    response, _ = answer("DELETE_IN_PROGRESS", keep="false")
    assert response["Status"] == "SUCCESS" and not any(inventory(STACK).values())


@pytest.mark.parametrize("status, request_type", [
    ("UPDATE_IN_PROGRESS", "Delete"),  # replaced during an update
    ("UPDATE_ROLLBACK_IN_PROGRESS", "Delete"),
    ("CREATE_IN_PROGRESS", "Create"),
    ("UPDATE_IN_PROGRESS", "Update"),
])
def test_only_the_stack_s_deletion_deletes_anything(aws, status, request_type):
    before = inventory(STACK)
    response, sent = answer(status, request_type)
    assert response["Status"] == "SUCCESS" and len(sent) == 1
    assert inventory(STACK) == before


def test_a_failure_is_answered_failed_with_its_reason(aws):
    class Unreachable(FakeCloudFormation):
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeStacks")

    response, sent = answer("DELETE_IN_PROGRESS", cloudformation=Unreachable(REGION, {}))
    assert sent and response["Status"] == "FAILED" and "AccessDenied" in response["Reason"]


def test_the_function_s_role_allows_every_call_the_teardown_makes(aws):
    from driftloop.local.template import load_yaml

    calls: set[str] = set()
    sagemaker, scheduler = clients()
    record = stack_record(STACK, "DELETE_IN_PROGRESS")
    response = handle(custom_resource_event("Delete", record["StackId"], "false"),
                      Recording(FakeCloudFormation(REGION, {STACK: record}), calls),
                      Recording(sagemaker, calls), Recording(scheduler, calls), function_environment(STACK),
                      send=lambda url, body: None)
    assert response["Status"] == "SUCCESS"
    template = load_yaml(PROJECT / "template.yaml")
    statements = [statement for policy in template["Resources"]["TeardownFunction"]["Properties"]["Policies"]
                  for statement in policy["Statement"]]
    granted = {action.split(":", 1)[1] for statement in statements
               for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])}
    needed = {"".join(part.title() for part in call.split("_")) for call in calls} - {"Meta"}
    assert needed and needed <= granted, needed - granted


def test_cli_without_a_region_says_so_in_one_line(monkeypatch, capsys):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    assert cli.main(["teardown", "--stack", STACK]) == ExitCode.USAGE
    assert capsys.readouterr().err.strip() == (f"driftloop teardown: stack {STACK}: no region: pass --region or set "
                                               "AWS_REGION")
