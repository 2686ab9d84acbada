"""The training port: start a job (idempotently) and describe it. SageMaker here; local in driftloop.local."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import is_already_exists, is_not_found, raise_for_client_error
from driftloop.adapters.tags import tag_list
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
    """Job names are unique per (execution, attempt) (``driftloop.model.jobs.training_job_name``), so a
    job that already carries the requested name is this attempt's own job, started by an earlier try of
    the same state: it is adopted, never reported as a failure. ``tags`` (the stack tag) are added to
    every job's own tags, which win on a clash."""

    def __init__(self, client: Any, tags: Mapping[str, str] | None = None) -> None:
        self._client, self._tags = client, dict(tags or {})

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        if self._tags:
            own = {tag["Key"]: tag["Value"] for tag in request.get("Tags", [])}
            request = {**request, "Tags": tag_list({**self._tags, **own})}
        try:
            self._client.create_training_job(**request)
        except ClientError as error:
            # AWS: ResourceInUse "Training job names must be unique within an AWS account and region,
            # and a training job with this name already exists (arn:...)".
            if not is_already_exists(error):
                raise_for_client_error(error, f"CreateTrainingJob {name}")
        described = self.describe(name)
        if described is None:
            raise TransientError(f"training job {name} was created but cannot be described yet")
        return described

    def describe(self, job_name: str) -> dict[str, Any] | None:
        try:
            response = self._client.describe_training_job(TrainingJobName=job_name)
        except ClientError as error:
            # AWS answers an unknown name with ValidationException "Requested resource not found."
            # although the model declares ResourceNotFound (aws/aws-sdk#165); both mean "no such job".
            if is_not_found(error):
                return None
            raise_for_client_error(error, f"DescribeTrainingJob {job_name}")
        return {key: value for key, value in response.items() if key != "ResponseMetadata"}
