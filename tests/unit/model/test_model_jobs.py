from __future__ import annotations

import json
import re

import pytest

from driftloop.errors import ConfigurationError
from driftloop.model.jobs import (
    RUN_ID_TAG,
    TRAINING_PRICES_USD_PER_HOUR,
    TrainingJobConfig,
    build_training_job_request,
    estimate_training_cost,
    map_training_status,
    training_image_uri,
    training_job_name,
)

NAME_RULE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ROLE = "arn:aws:iam::123456789012:role/driftloop-training"


@pytest.mark.parametrize(
    "execution",
    [
        "run-2026-03-01T10-00-00Z-8f3a",
        "x" * 200,
        "retrain_dataset:v42/upload.parquet",
        "---",
        "a",
    ],
)
def test_job_names_are_valid_deterministic_and_unique_per_attempt(execution: str) -> None:
    names = [training_job_name(execution, attempt) for attempt in range(5)]
    assert all(NAME_RULE.match(name) and len(name) <= 63 for name in names)
    assert len(set(names)) == 5
    assert names == [training_job_name(execution, attempt) for attempt in range(5)]


def test_long_executions_sharing_a_prefix_get_different_names() -> None:
    first = training_job_name("p" * 80 + "-one", 0)
    second = training_job_name("p" * 80 + "-two", 0)
    assert first != second and first.startswith("ppp")
    assert training_job_name("nightly-run-7", 2).startswith("nightly-run-7-a2-")


def test_negative_attempt_is_rejected() -> None:
    with pytest.raises(ConfigurationError):
        training_job_name("run", -1)


def request(config: TrainingJobConfig, **overrides) -> dict:
    arguments = {
        "run_id": "run-42",
        "job_name": training_job_name("exec-1", 0),
        "train_s3_uri": "s3://bucket/datasets/v3/",
        "source_s3_uri": "s3://bucket/code/abc/sourcedir.tar.gz",
        "output_s3_uri": "s3://bucket/models/recommender/",
        "hyperparameters": {"train_until": "2026-03-01T00:00:00+00:00", "k": 10},
    }
    return build_training_job_request(config, **{**arguments, **overrides})


def test_spot_request_has_max_wait_checkpoints_and_run_id_tag() -> None:
    config = TrainingJobConfig(
        role_arn=ROLE,
        region="eu-west-1",
        use_spot=True,
        max_runtime_seconds=1800,
        checkpoint_s3_uri="s3://bucket/checkpoints/exec-1/",
        tags={"team": "recs"},
    )
    built = request(config)
    assert built["EnableManagedSpotTraining"] is True
    assert built["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
    assert built["CheckpointConfig"] == {"S3Uri": "s3://bucket/checkpoints/exec-1/", "LocalPath": "/opt/ml/checkpoints"}
    assert {"Key": RUN_ID_TAG, "Value": "run-42"} in built["Tags"] and {"Key": "team", "Value": "recs"} in built["Tags"]
    assert built["AlgorithmSpecification"]["TrainingImage"] == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
    )
    assert built["EnableNetworkIsolation"] is False
    hyperparameters = built["HyperParameters"]
    assert all(isinstance(value, str) for value in hyperparameters.values())
    assert json.loads(hyperparameters["sagemaker_program"]) == "train.py"
    assert json.loads(hyperparameters["sagemaker_submit_directory"]) == "s3://bucket/code/abc/sourcedir.tar.gz"
    assert json.loads(hyperparameters["k"]) == 10
    assert built["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://bucket/datasets/v3/"
    assert built["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/models/recommender/"}
    assert built["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"


def test_on_demand_request_has_no_spot_settings_and_uses_the_configured_image() -> None:
    config = TrainingJobConfig(
        role_arn=ROLE, image_uri="my.ecr/recs:1", use_spot=False, checkpoint_s3_uri="s3://bucket/ckpt/"
    )
    built = request(config, holdout_s3_uri="s3://bucket/holdout/")
    assert built["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in built["StoppingCondition"] and "CheckpointConfig" not in built
    assert built["AlgorithmSpecification"]["TrainingImage"] == "my.ecr/recs:1"
    assert [channel["ChannelName"] for channel in built["InputDataConfig"]] == ["train", "holdout"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"job_name": "bad_name"},
        {"train_s3_uri": "/local/path"},
        {"hyperparameters": {"sagemaker_program": "evil.py"}},
    ],
)
def test_bad_requests_are_refused(overrides: dict) -> None:
    with pytest.raises(ConfigurationError):
        request(TrainingJobConfig(role_arn=ROLE, region="us-east-1"), **overrides)


@pytest.mark.parametrize(
    "fields",
    [
        {"role_arn": "training-role", "region": "us-east-1"},
        {"role_arn": ROLE, "instance_type": "m5.xlarge", "region": "us-east-1"},
        {"role_arn": ROLE},
        {"role_arn": ROLE, "region": "us-east-1", "max_runtime_seconds": 600, "max_wait_seconds": 300},
        {"role_arn": ROLE, "region": "us-east-1", "checkpoint_s3_uri": "bucket/x"},
    ],
)
def test_config_is_validated(fields: dict) -> None:
    with pytest.raises(ConfigurationError):
        TrainingJobConfig(**fields)


def test_unmapped_region_needs_an_explicit_image() -> None:
    with pytest.raises(ConfigurationError, match="mars-east-1"):
        training_image_uri("mars-east-1")


def test_failed_job_reason_reaches_the_status() -> None:
    status = map_training_status(
        {
            "TrainingJobName": "exec-1-a0-abc",
            "TrainingJobStatus": "Failed",
            "SecondaryStatus": "Failed",
            "FailureReason": "AlgorithmError: InvalidInputError: cannot train a recommender on 0 interactions",
            "TrainingTimeInSeconds": 40,
            "BillableTimeInSeconds": 40,
        }
    )
    assert status.terminal and not status.succeeded
    assert "0 interactions" in status.to_dict()["failure_reason"]
    assert status.model_artifact is None


def test_stopped_spot_job_without_reason_explains_itself() -> None:
    status = map_training_status(
        {
            "TrainingJobName": "j",
            "TrainingJobStatus": "Stopped",
            "SecondaryStatus": "MaxWaitTimeExceeded",
            "SecondaryStatusTransitions": [
                {"Status": "Training", "StatusMessage": "Training image download completed."},
                {"Status": "MaxWaitTimeExceeded", "StatusMessage": "Spot capacity not available in time."},
            ],
        }
    )
    assert status.failure_reason == "Spot capacity not available in time."


def test_completed_job_gives_artifact_and_seconds() -> None:
    status = map_training_status(
        {
            "TrainingJobName": "j",
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/models/j/output/model.tar.gz"},
            "TrainingTimeInSeconds": 300,
            "BillableTimeInSeconds": 90,
        }
    )
    assert status.succeeded and status.failure_reason == ""
    assert (status.training_seconds, status.billable_seconds) == (300, 90)
    assert status.model_artifact == "s3://bucket/models/j/output/model.tar.gz"
    in_progress = map_training_status({"TrainingJobName": "j", "TrainingJobStatus": "InProgress"})
    assert not in_progress.terminal and in_progress.training_seconds is None


def test_cost_uses_billable_seconds_and_reports_the_spot_saving() -> None:
    price = TRAINING_PRICES_USD_PER_HOUR["ml.m5.xlarge"]
    spot = estimate_training_cost("ml.m5.xlarge", training_seconds=3600, billable_seconds=1200, spot=True)
    assert spot["cost_usd"] == pytest.approx(price / 3, abs=1e-6)
    assert spot["on_demand_cost_usd"] == pytest.approx(price, abs=1e-6)
    assert spot["spot_saving_usd"] == pytest.approx(price * 2 / 3, abs=1e-6)
    assert spot["spot_saving_percent"] == pytest.approx(66.7)
    on_demand = estimate_training_cost("ml.m5.xlarge", training_seconds=600, billable_seconds=600, spot=False)
    assert on_demand["spot_saving_usd"] == 0 and on_demand["cost_usd"] == pytest.approx(price / 6, abs=1e-6)


def test_cost_of_unknown_instance_or_configured_price() -> None:
    unknown = estimate_training_cost("ml.x99.huge", training_seconds=60, billable_seconds=60, spot=False)
    assert unknown["cost_usd"] is None and "no price" in unknown["price_source"]
    priced = estimate_training_cost(
        "ml.x99.huge", training_seconds=3600, billable_seconds=None, spot=False, instance_count=2, hourly_price_usd=1.5
    )
    assert priced["cost_usd"] == pytest.approx(3.0) and priced["billable_seconds"] == 3600
