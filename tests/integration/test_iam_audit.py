"""Every AWS call a handler makes in the local runtime is allowed by its function's role in template.yaml.

moto does not enforce IAM, so a handler could call an API its role lacks and pass every other test, then
fail with AccessDenied on AWS. Here each boto3 call made while a handler runs is recorded with the
function that made it, and checked against that function's statements (resolved the way the local
runtime resolves the template): S3 and DynamoDB calls by action, resource ARN and the ``s3:prefix``
condition of a listing; calls to other services by action only (their ARNs are not modelled here).
"""

from __future__ import annotations

import fnmatch
import io
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pyarrow.parquet as pq
import pytest
from conftest import PROJECT, load_event, running

from driftloop.local import runtime
from driftloop.local.runtime import FaultPlan
from driftloop.local.shop import Shop, incoming_key, upload_bytes
from driftloop.local.template import _parameter_values, _PolicyLoader, _Resolver, load_yaml

ACCOUNT_ARN = "arn:aws:{service}:us-east-1:123456789012"
# boto3 service name -> IAM service prefix, where they differ.
IAM_PREFIX = {"stepfunctions": "states"}
S3_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


class CallLog:
    """The boto3 calls made inside handlers, by function logical id."""

    def __init__(self) -> None:
        self.current = threading.local()
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        function = getattr(self.current, "function", None)
        if function is not None:
            self.calls.append((function, service, operation, dict(params)))


@pytest.fixture
def call_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallLog]:
    log = CallLog()
    make_api_call = botocore.client.BaseClient._make_api_call
    invoke = runtime.Dispatcher.invoke

    def recording_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        log.record(client.meta.service_model.service_name, operation, params)
        return make_api_call(client, operation, params)

    def tracking_invoke(dispatcher: Any, function_name: str, body: Any, headers: dict[str, str]) -> bytes:
        log.current.function = dispatcher.app.function_by_arn(function_name).logical_id
        try:
            return invoke(dispatcher, function_name, body, headers)
        finally:
            log.current.function = None

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording_call)
    monkeypatch.setattr(runtime.Dispatcher, "invoke", tracking_invoke)
    yield log


def role_statements(parameters: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Each function's Allow statements, with every intrinsic resolved for these parameter values."""
    from samtranslator.translator.transform import transform

    sam = load_yaml(PROJECT / "template.yaml")
    for resource in sam["Resources"].values():
        properties = resource.setdefault("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in properties:
                properties[key] = f"s3://local-artifacts/{key}"
    values = _parameter_values(sam, parameters)
    pseudo = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "driftloop",
              "AWS::Partition": "aws"}
    cfn = transform(sam, {**values, **pseudo}, _PolicyLoader())
    resolver = _Resolver(cfn, values)
    roles: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            role = cfn["Resources"][resource["Properties"]["Role"]["Fn::GetAtt"][0]]
            policies = resolver.resolve(role["Properties"].get("Policies", []))
            roles[logical_id] = [statement for policy in policies
                                 for statement in _listed(policy["PolicyDocument"]["Statement"])
                                 if statement["Effect"] == "Allow"]
    return roles


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def required(service: str, operation: str, params: dict[str, Any],
             tables: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(IAM action, resource ARN, s3:prefix) triples a call needs; the ARN is "*" when not modelled."""
    if service == "s3":
        bucket, key = params.get("Bucket", ""), params.get("Key", "")
        obj = f"arn:aws:s3:::{bucket}/{key}"
        if operation in ("GetObject", "HeadObject"):
            return [("s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject", obj, None)]
        if operation in S3_WRITES:
            return [("s3:PutObject", obj, None)]
        if operation == "CopyObject":
            source = params["CopySource"]
            if not isinstance(source, dict):
                source = dict(zip(("Bucket", "Key"), source.split("/", 1), strict=True))
            return [("s3:GetObject", f"arn:aws:s3:::{source['Bucket']}/{source['Key']}", None),
                    ("s3:PutObject", obj, None)]
        if operation in ("ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}", params.get("Prefix", ""))]
        return [(f"s3:{operation}", obj, None)]
    if service == "dynamodb":
        return [(f"dynamodb:{operation}", ACCOUNT_ARN.format(service="dynamodb")
                 + f":table/{params.get('TableName', tables.get('', ''))}", None)]
    return [(f"{IAM_PREFIX.get(service, service)}:{operation}", "*", None)]


def allows(statements: list[dict[str, Any]], action: str, resource: str, prefix: str | None) -> bool:
    for statement in statements:
        if not any(fnmatch.fnmatchcase(action.lower(), granted.lower()) for granted in _listed(statement["Action"])):
            continue
        if resource != "*" and not any(fnmatch.fnmatchcase(resource, granted)
                                       for granted in _listed(statement["Resource"])):
            continue
        like = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if like is not None and not any(fnmatch.fnmatchcase(prefix or "", pattern) for pattern in _listed(like)):
            continue
        return True
    return False


def denied(log: CallLog, parameters: dict[str, str]) -> list[str]:
    roles = role_statements(parameters)
    problems = set()
    for function, service, operation, params in log.calls:
        for action, resource, prefix in required(service, operation, params, {}):
            if not allows(roles[function], action, resource, prefix):
                where = resource if prefix is None else f"{resource} prefix {prefix!r}"
                problems.add(f"{function}: {action} on {where}")
    return sorted(problems)


def called_functions(log: CallLog) -> set[str]:
    return {function for function, *_ in log.calls}


def test_a_promoted_run_and_a_rolled_back_run_call_only_what_their_roles_allow(
    workspace: Path, seeded_workspace: Path, tmp_path: Path, call_log: CallLog
) -> None:
    with running(workspace) as (world, runner):
        runner.replay(load_event("s3_object_created_new_data.json", workspace))
        runner.wait(timeout=600)
        parameters = world.app.parameters
    failing = shutil.copytree(seeded_workspace, tmp_path / "failing")
    faults = FaultPlan({"UpdateWeightsFunction": [["ok", 1], ["InjectedFault", -1]]})
    with running(failing, faults) as (world, runner):
        runner.replay(load_event("s3_object_created_new_data.json", failing))
        runner.wait(timeout=600)
    assert {"AdmitFunction", "DriftFunction", "MergeFunction", "StartTrainingFunction", "PollTrainingFunction",
            "EvaluateFunction", "UpdateWeightsFunction", "AnalyseABFunction", "PromoteFunction",
            "RollbackFunction", "FinalizeFunction"} <= called_functions(call_log)
    assert denied(call_log, parameters) == []


def test_the_scale_out_merge_calls_only_what_its_roles_allow(workspace: Path, call_log: CallLog) -> None:
    shop = Shop.load(workspace)
    month = shop.simulator().month(shop.month + 1)
    with running(workspace, ScaleOutUploads="2", ScaleOutMaxConcurrency="2") as (world, runner):
        half = month.num_rows // 2
        for number, piece in enumerate([month.slice(0, half), month.slice(half)]):
            buffer = io.BytesIO()
            pq.write_table(piece, buffer)
            upload_bytes(world, incoming_key(world, f"audit/part-{number}.parquet"), buffer.getvalue())
        upload_bytes(world, incoming_key(world, "audit/broken.parquet"), b"not parquet")
        world.drain_rule_queues()
        runner.replay(load_event("manual_retrain_request.json"))
        runner.wait(timeout=600)
        parameters = world.app.parameters
    assert {"MergePartFunction", "CombineMergeFunction"} <= called_functions(call_log)
    assert denied(call_log, parameters) == []


def test_a_guarded_deployment_may_read_its_rollback_alarms(workspace: Path, call_log: CallLog) -> None:
    alarm = "driftloop-challenger-errors"
    with running(workspace, DeploymentMode="canary", RollbackAlarmNames=alarm) as (world, runner):
        cloudwatch = world.client("cloudwatch")
        cloudwatch.put_metric_alarm(AlarmName=alarm, Namespace="driftloop", MetricName="Invocation5XXErrors",
                                    Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanOrEqualToThreshold")
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="challenger errors")
        runner.replay(load_event("s3_object_created_new_data.json", workspace))
        runner.wait(timeout=600)
        parameters = world.app.parameters
    assert ("UpdateWeightsFunction", "cloudwatch", "DescribeAlarms") in {call[:3] for call in call_log.calls}
    assert denied(call_log, parameters) == []
    assert "UpdateWeightsFunction: cloudwatch:DescribeAlarms on *" in denied(call_log, {**parameters,
                                                                                       "DeploymentMode": "ab"})
