"""SageMaker Model Registry: each challenger becomes a model package with its evidence."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"


class ModelRegistry:
    def __init__(self, client: Any, group: str) -> None:
        self._client, self.group = client, group

    def _ensure_group(self) -> None:
        try:
            self._client.describe_model_package_group(ModelPackageGroupName=self.group)
        except ClientError:
            try:
                self._client.create_model_package_group(
                    ModelPackageGroupName=self.group,
                    ModelPackageGroupDescription="driftloop challengers and champions",
                )
            except ClientError as error:
                if "already exists" not in error.response["Error"].get("Message", "").lower():
                    raise_for_client_error(error, f"CreateModelPackageGroup {self.group}")

    def find(self, run_id: str) -> str | None:
        """The package registered by this run, so a retried step does not register twice."""
        paginator = self._client.get_paginator("list_model_packages")
        for page in paginator.paginate(ModelPackageGroupName=self.group):
            for summary in page.get("ModelPackageSummaryList", []):
                description = summary.get("ModelPackageDescription", "")
                if description.startswith(f"run {run_id}:"):
                    return summary["ModelPackageArn"]
        return None

    def register(
        self,
        run_id: str,
        model_data_url: str,
        image: str,
        metrics: dict[str, Any],
        dataset_manifest_uri: str,
        approval: str = PENDING,
    ) -> str:
        self._ensure_group()
        existing = self.find(run_id)
        if existing:
            return existing
        response = self._client.create_model_package(
            ModelPackageGroupName=self.group,
            ModelPackageDescription=f"run {run_id}: challenger trained on {dataset_manifest_uri}",
            ModelApprovalStatus=approval,
            InferenceSpecification={
                "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={
                "run_id": run_id,
                "dataset_manifest": dataset_manifest_uri,
                "offline_metrics": json.dumps(metrics, sort_keys=True, default=str)[:1024],
            },
        )
        return response["ModelPackageArn"]

    def set_status(self, package_arn: str, status: str, reason: str) -> None:
        try:
            self._client.update_model_package(
                ModelPackageArn=package_arn, ModelApprovalStatus=status, ApprovalDescription=reason[:1000]
            )
        except ClientError as error:
            raise_for_client_error(error, f"UpdateModelPackage {package_arn}")
