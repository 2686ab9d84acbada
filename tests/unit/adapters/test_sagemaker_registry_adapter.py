"""ModelRegistry: one package per run with its metrics, manifest and report, within the API's limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws
from sagemaker_stubs import IMAGE, REGION, THROTTLED, add_error, arn, stubbed

from driftloop.adapters.registry import (
    APPROVED,
    PENDING,
    ModelRegistry,
    client_token,
    customer_metadata,
)
from driftloop.errors import ConfigurationError, TransientError

GROUP = "recs"
RUN = "run-2024-05-01-7f3a"
MANIFEST = "s3://data/datasets/recs/v3/manifest.json"
REPORT = f"s3://data/reports/{RUN}/evaluation.json"
ARTIFACT = "s3://data/models/recs/job/output/model.tar.gz"
METRICS = {"baseline": "champion", "champion": {"ndcg_at_10": 0.1234567, "recall_at_10": 0.2},
           "challenger": {"ndcg_at_10": 0.1411, "recall_at_10": 0.21}}
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
_MODEL = botocore.session.get_session().get_service_model("sagemaker")
_METADATA_SHAPE = _MODEL.operation_model("CreateModelPackage").input_shape.members["CustomerMetadataProperties"]


def summary(version: int, run_id: str) -> dict[str, Any]:
    return {"ModelPackageGroupName": GROUP, "ModelPackageVersion": version,
            "ModelPackageArn": arn("model-package", f"{GROUP}/{version}"),
            "ModelPackageDescription": f"run {run_id}: challenger trained on {MANIFEST}",
            "CreationTime": NOW, "ModelPackageStatus": "Completed", "ModelApprovalStatus": PENDING}


LIST_RECENT = {"ModelPackageGroupName": GROUP, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 20}


def expected_create() -> dict[str, Any]:
    return {
        "ModelPackageGroupName": GROUP,
        "ModelPackageDescription": f"run {RUN}: challenger trained on {MANIFEST}",
        "ModelApprovalStatus": PENDING,
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": ARTIFACT}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "CustomerMetadataProperties": {
            "driftloop:run-id": RUN, "driftloop:dataset-manifest": MANIFEST, "driftloop:evaluation-report": REPORT,
            "metric:baseline": "champion", "metric:challenger.ndcg_at_10": "0.1411",
            "metric:challenger.recall_at_10": "0.21", "metric:champion.ndcg_at_10": "0.123457",
            "metric:champion.recall_at_10": "0.2",
        },
        "ClientToken": client_token(GROUP, RUN),
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": REPORT}}},
    }


def register(registry: ModelRegistry) -> str:
    return registry.register(RUN, ARTIFACT, IMAGE, METRICS, MANIFEST, evaluation_report_uri=REPORT)


def test_first_registration_creates_the_group_and_a_complete_package() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_model_package_group", ("ValidationException",
                  f"ModelPackageGroup {arn('model-package-group', GROUP)} does not exist."))
        stubber.add_response("create_model_package_group", {"ModelPackageGroupArn": arn("model-package-group", GROUP)},
                             {"ModelPackageGroupName": GROUP,
                              "ModelPackageGroupDescription": "driftloop challengers and champions"})
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": [summary(1, "run-older")]},
                             LIST_RECENT)
        stubber.add_response("create_model_package", {"ModelPackageArn": arn("model-package", f"{GROUP}/2")},
                             expected_create())
        assert register(ModelRegistry(client, GROUP)) == arn("model-package", f"{GROUP}/2")


def test_a_retried_registration_returns_the_runs_package() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_model_package_group", {
            "ModelPackageGroupName": GROUP, "ModelPackageGroupArn": arn("model-package-group", GROUP),
            "CreationTime": NOW, "CreatedBy": {}, "ModelPackageGroupStatus": "Completed"})
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": [summary(2, RUN), summary(1, "x")]},
                             LIST_RECENT)
        assert register(ModelRegistry(client, GROUP)) == arn("model-package", f"{GROUP}/2")


def test_a_token_conflict_finds_the_package_the_first_try_made() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_model_package_group", {
            "ModelPackageGroupName": GROUP, "ModelPackageGroupArn": arn("model-package-group", GROUP),
            "CreationTime": NOW, "CreatedBy": {}, "ModelPackageGroupStatus": "Completed"})
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": []})
        add_error(stubber, "create_model_package", ("ConflictException", "Idempotency token conflict"))
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": [summary(3, RUN)]},
                             {"ModelPackageGroupName": GROUP, "SortBy": "CreationTime", "SortOrder": "Descending"})
        assert register(ModelRegistry(client, GROUP)) == arn("model-package", f"{GROUP}/3")


def test_throttled_group_lookup_is_transient() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_model_package_group", THROTTLED)
        with pytest.raises(TransientError):
            register(ModelRegistry(client, GROUP))


def test_concurrently_created_group_is_accepted() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_model_package_group", ("ValidationException", "does not exist"))
        add_error(stubber, "create_model_package_group", ("ResourceInUse", "Model Package Group already exists"))
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": [summary(1, RUN)]})
        assert register(ModelRegistry(client, GROUP)) == arn("model-package", f"{GROUP}/1")


def test_client_token_is_stable_per_run_and_valid() -> None:
    token = client_token(GROUP, RUN)
    assert token == client_token(GROUP, RUN) != client_token(GROUP, "run-other") != client_token("other", RUN)
    assert re.fullmatch(r"[a-zA-Z0-9-]{1,36}", token)


def allowed(text: str) -> bool:
    return all(ch.isalnum() or ch in "_.:/=+-@ " for ch in text)


def test_customer_metadata_stays_within_the_api_limits() -> None:
    shape = _METADATA_SHAPE
    assert (shape.metadata["max"], shape.key.metadata["max"], shape.value.metadata["max"]) == (50, 128, 256)
    many = {f"metric_{i:03d}": {"value": i / 7, "note": "a{b}\"c\",d"} for i in range(100)}
    long_manifest = "s3://data/" + "x" * 400 + "/manifest.json"
    properties = customer_metadata(RUN, long_manifest, {**many, "nan": float("nan"), "list": [1, 2]}, REPORT)
    assert len(properties) == 50
    assert list(properties)[:3] == ["driftloop:run-id", "driftloop:dataset-manifest", "driftloop:evaluation-report"]
    assert all(1 <= len(key) <= 128 and allowed(key) for key in properties)
    assert all(1 <= len(value) <= 256 and allowed(value) for value in properties.values())
    assert "metric:nan" not in properties and "metric:list" not in properties
    assert properties["metric:metric_000.note"] == "a_b__c__d"


def test_invalid_approval_status_is_refused() -> None:
    with stubbed() as (client, _):
        with pytest.raises(ConfigurationError):
            ModelRegistry(client, GROUP).register(RUN, ARTIFACT, IMAGE, {}, MANIFEST, approval="Maybe")
        with pytest.raises(ConfigurationError):
            ModelRegistry(client, GROUP).set_status(arn("model-package", f"{GROUP}/1"), "approved", "typo")


def test_set_status_sends_the_reason() -> None:
    package = arn("model-package", f"{GROUP}/1")
    with stubbed() as (client, stubber):
        stubber.add_response("update_model_package", {"ModelPackageArn": package}, {
            "ModelPackageArn": package, "ModelApprovalStatus": APPROVED, "ApprovalDescription": "promoted by run r"})
        ModelRegistry(client, GROUP).set_status(package, APPROVED, "promoted by run r")


def test_moto_registers_once_per_run_with_metrics_and_manifest() -> None:
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        first = register(ModelRegistry(client, GROUP))
        assert register(ModelRegistry(client, GROUP)) == first
        other = ModelRegistry(client, GROUP).register("run-next", ARTIFACT, IMAGE, {}, MANIFEST)
        assert other != first
        assert len(client.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 2
        package = client.describe_model_package(ModelPackageName=first)
        assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == REPORT
        assert package["CustomerMetadataProperties"]["driftloop:dataset-manifest"] == MANIFEST
        # (moto's UpdateModelPackage drops CustomerMetadataProperties, so they are read first)
        ModelRegistry(client, GROUP).set_status(first, APPROVED, f"promoted by run {RUN}")
        assert client.describe_model_package(ModelPackageName=first)["ModelApprovalStatus"] == APPROVED
