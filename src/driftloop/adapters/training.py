"""The training port: start a job (idempotently) and describe it. SageMaker here; local in driftloop.local."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error


class Trainer(ABC):
    """Runs CreateTrainingJob-shaped requests and answers with DescribeTrainingJob-shaped dicts."""

    @abstractmethod
    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start the job named in the request, or adopt the job of that name if it already exists."""

    @abstractmethod
    def describe(self, job_name: str) -> dict[str, Any]:
        """DescribeTrainingJob's answer: TrainingJobStatus, FailureReason, ModelArtifacts, seconds..."""


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
        return self.describe(name)

    def describe(self, job_name: str) -> dict[str, Any]:
        try:
            return self._client.describe_training_job(TrainingJobName=job_name)
        except ClientError as error:
            raise_for_client_error(error, f"DescribeTrainingJob {job_name}")
            raise
