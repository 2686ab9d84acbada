"""The training port: start a job (idempotently) and describe it. SageMaker here; local in driftloop.local."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.errors import TransientError


class Trainer(ABC):
    """Runs CreateTrainingJob-shaped requests and answers with DescribeTrainingJob-shaped dicts."""

    @abstractmethod
    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start the job named in the request, or adopt the job of that name if it already exists."""

    @abstractmethod
    def describe(self, job_name: str) -> dict[str, Any] | None:
        """DescribeTrainingJob's answer (TrainingJobStatus, FailureReason, ModelArtifacts, ...), None if no such job."""


class SageMakerTrainer(Trainer):
    def __init__(self, client: Any) -> None:
        self._client = client

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        try:
            self._client.create_training_job(**request)
        except ClientError as error:
            message = error.response["Error"].get("Message", "")
            in_use = "already" in message.lower() and error.response["Error"]["Code"] in (
                "ValidationException", "ResourceInUse")
            if not in_use:
                raise_for_client_error(error, f"CreateTrainingJob {name}")
        described = self.describe(name)
        if described is None:
            raise TransientError(f"training job {name} was created but cannot be described yet")
        return described

    def describe(self, job_name: str) -> dict[str, Any] | None:
        try:
            return self._client.describe_training_job(TrainingJobName=job_name)
        except ClientError as error:
            if "not found" in error.response["Error"].get("Message", "").lower():
                return None
            raise_for_client_error(error, f"DescribeTrainingJob {job_name}")
