"""SageMakerTrainer: start adopts this attempt's job, describe maps "no such job" to None."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from sagemaker_stubs import (
    IMAGE,
    REGION,
    ROLE_ARN,
    THROTTLED,
    TRAINING_JOB_NOT_FOUND,
    add_error,
    arn,
    stubbed,
    training_job_exists,
)

from driftloop.adapters.training import SageMakerTrainer
from driftloop.errors import DriftloopError, TransientError
from driftloop.model.jobs import (
    TrainingJobConfig,
    build_training_job_request,
    map_training_status,
    training_job_name,
)

JOB = training_job_name("run-2024-05-01T10-00-00-exec-7f3a", 1)


def request(job_name: str = JOB) -> dict:
    return build_training_job_request(
        TrainingJobConfig(role_arn=ROLE_ARN, image_uri=IMAGE, checkpoint_s3_uri=f"s3://data/checkpoints/{job_name}/"),
        run_id="run-7f3a",
        job_name=job_name,
        train_s3_uri="s3://data/datasets/v3/",
        source_s3_uri="s3://data/code/abc/sourcedir.tar.gz",
        output_s3_uri="s3://data/models/recs/",
        hyperparameters={"train_until": "2024-04-24T00:00:00+00:00"},
    )


def described(status: str = "InProgress", **extra: object) -> dict:
    return {
        "TrainingJobName": JOB,
        "TrainingJobArn": arn("training-job", JOB),
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://data/models/recs/{JOB}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if status == "InProgress" else status,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": datetime(2024, 5, 1, 10, tzinfo=UTC),
        **extra,
    }


def test_start_sends_the_request_as_built_and_returns_the_description() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("create_training_job", {"TrainingJobArn": arn("training-job", JOB)}, request())
        stubber.add_response("describe_training_job", described(), {"TrainingJobName": JOB})
        result = SageMakerTrainer(client).start(request())
    assert result["TrainingJobStatus"] == "InProgress"
    assert "ResponseMetadata" not in result


def test_a_name_already_taken_by_this_attempt_is_adopted_not_failed() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "create_training_job", training_job_exists(JOB), request())
        stubber.add_response("describe_training_job", described("Completed"), {"TrainingJobName": JOB})
        result = SageMakerTrainer(client).start(request())
    assert result["TrainingJobStatus"] == "Completed"


def test_throttled_create_is_transient() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "create_training_job", THROTTLED)
        with pytest.raises(TransientError, match="Rate exceeded"):
            SageMakerTrainer(client).start(request())


def test_invalid_request_is_not_retried() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "create_training_job", ("ValidationException",
                  'No S3 objects found under S3 URL "s3://data/datasets/v3/" given in input data source.'))
        with pytest.raises(DriftloopError, match="No S3 objects") as raised:
            SageMakerTrainer(client).start(request())
    assert not isinstance(raised.value, TransientError)


@pytest.mark.parametrize("error", [TRAINING_JOB_NOT_FOUND, ("ResourceNotFound", "Training job not found")])
def test_describe_of_an_unknown_job_is_none(error: tuple[str, str]) -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_training_job", error, {"TrainingJobName": JOB})
        assert SageMakerTrainer(client).describe(JOB) is None


def test_throttled_describe_is_transient() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_training_job", THROTTLED)
        with pytest.raises(TransientError):
            SageMakerTrainer(client).describe(JOB)


def test_failure_reason_reaches_the_run_record() -> None:
    reason = "AlgorithmError: ExecuteUserScriptError: Command \"python train.py\" exit status 1"
    with stubbed() as (client, stubber):
        stubber.add_response("describe_training_job", described(
            "Failed", FailureReason=reason, BillableTimeInSeconds=61, TrainingTimeInSeconds=61))
        status = map_training_status(SageMakerTrainer(client).describe(JOB) or {})
    assert (status.status, status.failure_reason, status.terminal) == ("Failed", reason, True)


def test_job_names_differ_per_attempt_and_fit_sagemaker() -> None:
    long_execution = "x" * 80
    names = {training_job_name(long_execution, attempt) for attempt in range(5)}
    assert len(names) == 5
    assert all(len(name) <= 63 for name in names)


def test_retried_start_through_moto_adopts_the_same_job() -> None:
    with mock_aws():
        trainer = SageMakerTrainer(boto3.client("sagemaker", region_name=REGION))
        first = trainer.start(request())
        again = trainer.start(request())
        assert first["TrainingJobArn"] == again["TrainingJobArn"]
        assert trainer.describe("no-such-job") is None
