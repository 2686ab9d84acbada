"""SageMaker training jobs as plain data: names, CreateTrainingJob requests, statuses and cost.

No AWS calls here: the start/poll steps send these requests through their trainer port.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from driftloop.errors import ConfigurationError

# SageMaker scikit-learn framework image (Python 3.10, numpy 2.1, pyarrow 17, scikit-learn 1.4.2);
# the registry accounts are those of the SageMaker Python SDK's image_uri_config/sklearn.json.
SKLEARN_IMAGE_TAG = "1.4-2-cpu-py3"
SKLEARN_IMAGE_ACCOUNTS = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}

# On-demand SageMaker Training prices in USD per instance-hour, us-east-1, from the AWS SageMaker
# pricing page as known in mid-2025. Other regions differ (typically +5-25%): pass hourly_price_usd.
PRICE_REGION = "us-east-1"
PRICE_DATE = "2025-06"
TRAINING_PRICES_USD_PER_HOUR = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.c5.9xlarge": 1.836,
    "ml.r5.large": 0.151,
    "ml.r5.xlarge": 0.302,
    "ml.r5.2xlarge": 0.605,
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
    "ml.p3.2xlarge": 3.825,
}

MAX_JOB_NAME = 63
_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
RUN_ID_TAG = "driftloop:run-id"
ENTRY_POINT = "train.py"
METRIC_DEFINITIONS = tuple(
    {"Name": name, "Regex": rf"{name}=([0-9.eE+-]+)"}
    for name in ("ndcg_at_10", "recall_at_10", "hit_rate_at_10", "baseline_ndcg_at_10")
)


def training_image_uri(region: str) -> str:
    """The pinned scikit-learn framework image for ``region``."""
    account = SKLEARN_IMAGE_ACCOUNTS.get(region)
    if account is None:
        raise ConfigurationError(f"no scikit-learn image mapping for region {region!r}; configure image_uri")
    return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:{SKLEARN_IMAGE_TAG}"


def training_job_name(execution_name: str, attempt: int) -> str:
    """``<readable execution prefix>-a<attempt>-<hash>``: deterministic, at most 63 characters, and
    different for every (execution, attempt), even when long execution names share a prefix."""
    if attempt < 0:
        raise ConfigurationError(f"attempt must be >= 0, not {attempt}")
    digest = hashlib.sha256(f"{execution_name}\0{attempt}".encode()).hexdigest()[:10]
    suffix = f"-a{attempt}-{digest}"
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", execution_name).strip("-") or "train"
    name = f"{readable[: MAX_JOB_NAME - len(suffix)].rstrip('-')}{suffix}"
    if not _NAME_PATTERN.match(name):
        raise ConfigurationError(f"cannot derive a valid job name from {execution_name!r}")
    return name


@dataclass(frozen=True)
class TrainingJobConfig:
    """How training jobs run. Without ``image_uri``, the pinned image for ``region`` is used."""

    role_arn: str
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    image_uri: str | None = None
    region: str | None = None
    use_spot: bool = True
    max_runtime_seconds: int = 3600
    max_wait_seconds: int | None = None  # spot only; default twice the runtime
    checkpoint_s3_uri: str | None = None  # spot only
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.role_arn.startswith("arn:"):
            raise ConfigurationError(f"role_arn must be an IAM role ARN, not {self.role_arn!r}")
        if not self.instance_type.startswith("ml."):
            raise ConfigurationError(f"instance_type must be an ml.* type, not {self.instance_type!r}")
        if self.instance_count < 1 or self.volume_size_gb < 1 or self.max_runtime_seconds < 1:
            raise ConfigurationError("instance_count, volume_size_gb and max_runtime_seconds must be >= 1")
        if not self.image_uri and not self.region:
            raise ConfigurationError("set image_uri or region (to use the pinned scikit-learn image)")
        if self.max_wait_seconds is not None and self.max_wait_seconds < self.max_runtime_seconds:
            raise ConfigurationError("max_wait_seconds must be >= max_runtime_seconds")
        if self.checkpoint_s3_uri is not None and not self.checkpoint_s3_uri.startswith("s3://"):
            raise ConfigurationError(f"checkpoint_s3_uri must be an s3:// URI, not {self.checkpoint_s3_uri!r}")
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def image(self) -> str:
        return self.image_uri or training_image_uri(str(self.region))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _s3_channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def build_training_job_request(
    config: TrainingJobConfig,
    run_id: str,
    job_name: str,
    train_s3_uri: str,
    source_s3_uri: str,
    output_s3_uri: str,
    hyperparameters: Mapping[str, Any] | None = None,
    holdout_s3_uri: str | None = None,
) -> dict[str, Any]:
    """CreateTrainingJob keyword arguments. Hyperparameters are JSON-encoded, as the SageMaker SDK
    sends them (the training toolkit decodes them into ``SM_HPS``)."""
    if not _NAME_PATTERN.match(job_name):
        raise ConfigurationError(f"invalid training job name {job_name!r}")
    for label, uri in (("train", train_s3_uri), ("source", source_s3_uri), ("output", output_s3_uri)):
        if not uri.startswith("s3://"):
            raise ConfigurationError(f"{label} location must be an s3:// URI, not {uri!r}")
    reserved = sorted(name for name in (hyperparameters or {}) if name.startswith("sagemaker_"))
    if reserved:
        raise ConfigurationError(f"hyperparameters {reserved} are reserved for the container")
    encoded = {name: json.dumps(value) for name, value in (hyperparameters or {}).items()}
    encoded.update(
        {
            "sagemaker_program": json.dumps(ENTRY_POINT),
            "sagemaker_submit_directory": json.dumps(source_s3_uri),
            "sagemaker_container_log_level": json.dumps(20),
        }
    )
    channels = [_s3_channel("train", train_s3_uri)]
    if holdout_s3_uri:
        channels.append(_s3_channel("holdout", holdout_s3_uri))
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": config.max_runtime_seconds}
    if config.use_spot:
        stopping["MaxWaitTimeInSeconds"] = config.max_wait_seconds or 2 * config.max_runtime_seconds
    tags = {**config.tags, RUN_ID_TAG: run_id}
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "RoleArn": config.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": config.image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(definition) for definition in METRIC_DEFINITIONS],
        },
        "HyperParameters": encoded,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_s3_uri},
        "ResourceConfig": {
            "InstanceType": config.instance_type,
            "InstanceCount": config.instance_count,
            "VolumeSizeInGB": config.volume_size_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": config.use_spot,
        # The container pip-installs requirements.txt from the source bundle, so it needs the network.
        "EnableNetworkIsolation": False,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }
    if config.use_spot and config.checkpoint_s3_uri:
        request["CheckpointConfig"] = {"S3Uri": config.checkpoint_s3_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
    return request


@dataclass(frozen=True)
class TrainingStatus:
    """What the run record keeps from DescribeTrainingJob."""

    job_name: str
    status: str
    secondary_status: str
    failure_reason: str
    billable_seconds: int | None
    training_seconds: int | None
    model_artifact: str | None
    status_message: str

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "Completed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "terminal": self.terminal}


def map_training_status(describe_response: Mapping[str, Any]) -> TrainingStatus:
    """DescribeTrainingJob's answer reduced to the fields the run record needs. A stopped or failed
    job without a ``FailureReason`` gets the last secondary-status message instead (spot interruption,
    max wait exceeded), so the record always says why."""
    status = str(describe_response.get("TrainingJobStatus", "Unknown"))
    transitions = describe_response.get("SecondaryStatusTransitions") or []
    status_message = str(transitions[-1].get("StatusMessage", "")) if transitions else ""
    secondary = str(describe_response.get("SecondaryStatus", ""))
    reason = str(describe_response.get("FailureReason", "") or "")
    if not reason and status in ("Failed", "Stopped"):
        reason = status_message or f"{status} ({secondary or 'no reason given'})"
    billable = describe_response.get("BillableTimeInSeconds")
    training = describe_response.get("TrainingTimeInSeconds")
    return TrainingStatus(
        job_name=str(describe_response.get("TrainingJobName", "")),
        status=status,
        secondary_status=secondary,
        failure_reason=reason,
        billable_seconds=int(billable) if billable is not None else None,
        training_seconds=int(training) if training is not None else None,
        model_artifact=(describe_response.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        status_message=status_message,
    )


def estimate_training_cost(
    instance_type: str,
    training_seconds: int | None,
    billable_seconds: int | None,
    spot: bool,
    instance_count: int = 1,
    hourly_price_usd: float | None = None,
) -> dict[str, Any]:
    """Cost = on-demand price x billed seconds. Managed spot shows up as fewer billable seconds than
    training seconds; the saving is the difference priced on demand. Prices: ``PRICE_REGION`` at
    ``PRICE_DATE`` unless ``hourly_price_usd`` is given."""
    price = hourly_price_usd if hourly_price_usd is not None else TRAINING_PRICES_USD_PER_HOUR.get(instance_type)
    trained = training_seconds or 0
    billed = billable_seconds if billable_seconds is not None else trained
    estimate: dict[str, Any] = {
        "instance_type": instance_type,
        "instance_count": instance_count,
        "spot": spot,
        "training_seconds": trained,
        "billable_seconds": billed,
        "hourly_price_usd": price,
        "price_source": "configured" if hourly_price_usd is not None else f"{PRICE_REGION} list price {PRICE_DATE}",
        "cost_usd": None,
        "on_demand_cost_usd": None,
        "spot_saving_usd": None,
        "spot_saving_percent": round(100.0 * (1 - billed / trained), 1) if spot and trained else 0.0,
    }
    if price is None:
        estimate["price_source"] = f"no price known for {instance_type}"
        return estimate
    per_second = price * instance_count / 3600.0
    estimate["cost_usd"] = round(billed * per_second, 6)
    estimate["on_demand_cost_usd"] = round(trained * per_second, 6)
    estimate["spot_saving_usd"] = round(max(trained - billed, 0) * per_second, 6)
    return estimate
