"""SageMaker Model Registry: each challenger becomes a model package with its evidence.

A package records the model (image + artifact), the dataset manifest it was trained on, the offline
evaluation report as its ``ModelMetrics`` (model-quality statistics, an S3 JSON document), headline
metrics as ``CustomerMetadataProperties`` and an approval status.

Registration is idempotent in two layers: the request carries a ``ClientToken`` derived from the
group and the run, so a retried CreateModelPackage returns the package the first try made; and
before creating, the newest page of the group is checked for the run's package, which covers a
retry that comes after SageMaker has forgotten the token.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import error_code, is_already_exists, is_transient, raise_for_client_error
from driftloop.adapters.tags import tag_list
from driftloop.errors import ConfigurationError, TransientError

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)
RUN_ID_KEY = "driftloop:run-id"
DATASET_MANIFEST_KEY = "driftloop:dataset-manifest"
EVALUATION_REPORT_KEY = "driftloop:evaluation-report"
METRIC_PREFIX = "metric:"
# CustomerMetadataProperties (botocore model): at most 50 entries, keys 1-128 and values 1-256
# characters from letters, digits, spaces and _.:/=+-@
MAX_METADATA_ENTRIES, MAX_METADATA_KEY, MAX_METADATA_VALUE = 50, 128, 256
_METADATA_PUNCTUATION = frozenset("_.:/=+-@ ")
MAX_DESCRIPTION = 1024
# Packages a retried registration looks through before creating: a run registers once, minutes
# before its retries, so its package is among the group's newest.
RECENT_PACKAGES = 20
_TOKEN_NAMESPACE = uuid.UUID("6f1c3b52-8a55-4e0c-9a53-1b7c1d2f0e11")


def metadata_text(text: str, limit: int) -> str:
    """``text`` with every character CustomerMetadataProperties rejects replaced by ``_``, cut to ``limit``."""
    return "".join(ch if ch.isalnum() or ch in _METADATA_PUNCTUATION else "_" for ch in text)[:limit]


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in sorted(metrics.items()):
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _metric_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None if value is None else str(value).lower()
    if isinstance(value, int | float):
        return f"{value:.6g}" if math.isfinite(value) else None
    return str(value)


def customer_metadata(
    run_id: str, dataset_manifest_uri: str, metrics: Mapping[str, Any], evaluation_report_uri: str | None = None
) -> dict[str, str]:
    """Run, dataset and report first, then scalar metrics (nested dicts flattened with dots) until the
    50-entry limit; values that cannot be written (empty, NaN, lists) are left to the S3 report."""
    properties = {RUN_ID_KEY: run_id, DATASET_MANIFEST_KEY: dataset_manifest_uri}
    if evaluation_report_uri:
        properties[EVALUATION_REPORT_KEY] = evaluation_report_uri
    entries = {key: metadata_text(value, MAX_METADATA_VALUE) for key, value in properties.items()}
    for name, value in _flatten(metrics):
        if len(entries) >= MAX_METADATA_ENTRIES:
            break
        text = _metric_value(value) if not isinstance(value, list | tuple) else None
        key = metadata_text(f"{METRIC_PREFIX}{name}", MAX_METADATA_KEY)
        if text and key not in entries:
            entries[key] = metadata_text(text, MAX_METADATA_VALUE)
    return {key: value for key, value in entries.items() if value}


def client_token(group: str, run_id: str) -> str:
    """36 characters of [0-9a-f-], the same for every try of one run's registration."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{group}\0{run_id}"))


def _description(run_id: str, dataset_manifest_uri: str) -> str:
    return f"run {run_id}: challenger trained on {dataset_manifest_uri}"[:MAX_DESCRIPTION]


def _run_prefix(run_id: str) -> str:
    return f"run {run_id}:"


class ModelRegistry:
    """``tags`` (the stack tag) go on the group when this registry creates it."""

    def __init__(self, client: Any, group: str, tags: Mapping[str, str] | None = None) -> None:
        self._client, self.group, self._tags = client, group, dict(tags or {})
        self._group_ready = False

    def _ensure_group(self) -> None:
        """Describe first; create only when that fails for a reason retrying cannot fix (SageMaker's
        not-found text for groups is undocumented, so any such failure leads to the create call,
        whose own error is then the one reported). A concurrent creator's win counts as success."""
        if self._group_ready:
            return
        try:
            self._client.describe_model_package_group(ModelPackageGroupName=self.group)
        except ClientError as error:
            if is_transient(error):
                raise_for_client_error(error, f"DescribeModelPackageGroup {self.group}")
            try:
                self._client.create_model_package_group(
                    ModelPackageGroupName=self.group,
                    ModelPackageGroupDescription="driftloop challengers and champions",
                    **({"Tags": tag_list(self._tags)} if self._tags else {}),
                )
            except ClientError as create_error:
                if not (is_already_exists(create_error) or error_code(create_error) == "ConflictException"):
                    raise_for_client_error(create_error, f"CreateModelPackageGroup {self.group}")
        self._group_ready = True

    def _packages(self, limit: int | None) -> Iterator[dict[str, Any]]:
        """The group's packages, newest first; ``limit`` stops after that many."""
        arguments: dict[str, Any] = {"ModelPackageGroupName": self.group, "SortBy": "CreationTime",
                                     "SortOrder": "Descending"}
        if limit is not None:
            arguments["PaginationConfig"] = {"MaxItems": limit, "PageSize": min(limit, 100)}
        try:
            for page in self._client.get_paginator("list_model_packages").paginate(**arguments):
                yield from page.get("ModelPackageSummaryList", [])
        except ClientError as error:
            raise_for_client_error(error, f"ListModelPackages {self.group}")

    def find(self, run_id: str, recent: int | None = None) -> str | None:
        """The package registered by this run (looking at the ``recent`` newest only, if given)."""
        prefix = _run_prefix(run_id)
        for summary in self._packages(recent):
            if summary.get("ModelPackageDescription", "").startswith(prefix):
                return str(summary["ModelPackageArn"])
        return None

    def register(
        self,
        run_id: str,
        model_data_url: str,
        image: str,
        metrics: dict[str, Any],
        dataset_manifest_uri: str,
        approval: str = PENDING,
        evaluation_report_uri: str | None = None,
    ) -> str:
        """The ARN of this run's package, creating it on the first call."""
        if approval not in APPROVAL_STATUSES:
            raise ConfigurationError(f"approval must be one of {APPROVAL_STATUSES}, not {approval!r}")
        self._ensure_group()
        existing = self.find(run_id, recent=RECENT_PACKAGES)
        if existing:
            return existing
        request: dict[str, Any] = {
            "ModelPackageGroupName": self.group,
            "ModelPackageDescription": _description(run_id, dataset_manifest_uri),
            "ModelApprovalStatus": approval,
            "InferenceSpecification": {
                "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "CustomerMetadataProperties": customer_metadata(run_id, dataset_manifest_uri, metrics,
                                                            evaluation_report_uri),
            "ClientToken": client_token(self.group, run_id),
        }
        if evaluation_report_uri:
            request["ModelMetrics"] = {
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_report_uri}}
            }
        try:
            return str(self._client.create_model_package(**request)["ModelPackageArn"])
        except ClientError as error:
            # ConflictException: the token is in use by a request with other parameters (a retry
            # whose metrics differ) or by one still in flight; the package may exist by now.
            if error_code(error) != "ConflictException":
                raise_for_client_error(error, f"CreateModelPackage {self.group} run {run_id}")
        found = self.find(run_id)
        if found is None:
            raise TransientError(f"CreateModelPackage for run {run_id} conflicts with a request still in flight")
        return found

    def set_status(self, package_arn: str, status: str, reason: str) -> None:
        if status not in APPROVAL_STATUSES:
            raise ConfigurationError(f"approval must be one of {APPROVAL_STATUSES}, not {status!r}")
        try:
            self._client.update_model_package(
                ModelPackageArn=package_arn, ModelApprovalStatus=status, ApprovalDescription=reason[:1000]
            )
        except ClientError as error:
            raise_for_client_error(error, f"UpdateModelPackage {package_arn}")
