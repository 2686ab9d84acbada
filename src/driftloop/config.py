"""Settings of one deployment, read from the Lambda environment that template.yaml defines."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from driftloop.errors import ConfigurationError

AB_TEST = "ab"
GUARDRAIL_MODES = ("canary", "linear")
DEPLOYMENT_MODES = (AB_TEST, *GUARDRAIL_MODES)
MAX_ROLLBACK_ALARMS = 10
RETRAIN_POLICIES = ("auto", "drift", "schedule")
RETRAIN_CHALLENGERS = ("auto", "off")
# The periods the concept-drift check compares conversion over (CONVERSION_PERIOD).
PERIOD_UNITS = ("hour", "day", "week")
# The retrain decision's parameters, in the drift step's environment only (template.yaml, DriftFunction).
RETRAIN_ENVIRONMENT = ("RETRAIN_POLICY", "RETRAIN_EVERY_DAYS", "VALUE_PER_NDCG_POINT", "TRAINING_HOURLY_PRICE",
                       "TRAINING_STARTUP_SECONDS", "AB_EXPOSURE_COST", "RETRAIN_CHALLENGER")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ConfigurationError(f"expected true or false, got {text!r}")
    return value == "true"


def _json_object(name: str, text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{name} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a JSON object, not {text!r}")
    return value


@dataclass(frozen=True)
class Settings:
    data_bucket: str
    ledger_table: str
    notification_topic_arn: str
    model_name: str
    endpoint_name: str
    champion_variant: str
    challenger_variant: str
    incoming_prefix: str
    monitor_report_prefix: str
    psi_threshold: float
    js_threshold: float
    significance_level: float
    min_sample_size: int
    evaluation_margin: float
    traffic_stages: tuple[int, ...]
    min_samples_per_variant: int
    attribution_window_minutes: float
    holdout_days: int
    dataset_partitioning: str
    cooldown_hours: float
    lock_lease_minutes: float
    max_bake_waits: int
    training_image: str
    training_instance_type: str
    training_hyperparameters: dict[str, object]
    use_spot_training: bool
    max_training_seconds: int
    endpoint_instance_type: str
    sagemaker_role_arn: str
    deployment_mode: str = AB_TEST
    rollback_alarm_names: tuple[str, ...] = ()
    conversion_period: str = "day"
    minimum_lift: float = 0.05
    ab_holdback_percent: int = 0
    cooldown_schedule_role_arn: str = ""
    data_capture_sampling_percent: int = 100
    data_capture_kms_key: str = ""
    stack_name: str = ""
    # Kept as text: RetrainSettings parses and checks it when a run starts, so a bad value fails that run.
    retrain_environment: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.conversion_period not in PERIOD_UNITS:
            raise ConfigurationError(
                f"CONVERSION_PERIOD must be one of {', '.join(PERIOD_UNITS)}, not {self.conversion_period!r}")
        if self.dataset_partitioning not in ("event_date", "none"):
            raise ConfigurationError(
                f"DATASET_PARTITIONING must be event_date or none, not {self.dataset_partitioning!r}")
        if self.champion_variant == self.challenger_variant:
            raise ConfigurationError("champion and challenger variants need different names")
        if not self.traffic_stages or any(
            not 0 < stage <= 100 for stage in self.traffic_stages
        ) or list(self.traffic_stages) != sorted(set(self.traffic_stages)):
            raise ConfigurationError(f"TRAFFIC_STAGES must increase within 1..100: {self.traffic_stages}")
        if not 1 <= self.data_capture_sampling_percent <= 100:
            raise ConfigurationError(
                f"DATA_CAPTURE_SAMPLING_PERCENT must be within 1..100, not {self.data_capture_sampling_percent}")
        if self.deployment_mode not in DEPLOYMENT_MODES:
            raise ConfigurationError(f"DEPLOYMENT_MODE must be one of {DEPLOYMENT_MODES}, not {self.deployment_mode!r}")
        if self.guarded_deployment and not 1 <= len(self.rollback_alarm_names) <= MAX_ROLLBACK_ALARMS:
            raise ConfigurationError(
                f"DEPLOYMENT_MODE={self.deployment_mode} rolls back on CloudWatch alarms: ROLLBACK_ALARM_NAMES needs "
                f"1 to {MAX_ROLLBACK_ALARMS} names, got {len(self.rollback_alarm_names)}"
            )

    @property
    def guarded_deployment(self) -> bool:
        """A challenger reaches traffic through SageMaker's blue/green guardrails instead of the A/B stages."""
        return self.deployment_mode in GUARDRAIL_MODES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def need(name: str) -> str:
            try:
                return env[name]
            except KeyError:
                raise ConfigurationError(f"environment variable {name} is not set") from None

        try:
            return cls(
                data_bucket=need("DATA_BUCKET"),
                ledger_table=need("LEDGER_TABLE"),
                notification_topic_arn=need("NOTIFICATION_TOPIC_ARN"),
                model_name=need("MODEL_NAME"),
                endpoint_name=need("ENDPOINT_NAME"),
                champion_variant=need("CHAMPION_VARIANT"),
                challenger_variant=need("CHALLENGER_VARIANT"),
                incoming_prefix=need("INCOMING_PREFIX"),
                monitor_report_prefix=need("MONITOR_REPORT_PREFIX"),
                psi_threshold=float(need("PSI_THRESHOLD")),
                js_threshold=float(need("JS_THRESHOLD")),
                significance_level=float(need("SIGNIFICANCE_LEVEL")),
                min_sample_size=int(need("MIN_SAMPLE_SIZE")),
                evaluation_margin=float(need("EVALUATION_MARGIN")),
                traffic_stages=tuple(int(part) for part in need("TRAFFIC_STAGES").split(",") if part.strip()),
                min_samples_per_variant=int(need("MIN_SAMPLES_PER_VARIANT")),
                attribution_window_minutes=float(need("ATTRIBUTION_WINDOW_MINUTES")),
                holdout_days=int(need("HOLDOUT_DAYS")),
                dataset_partitioning=need("DATASET_PARTITIONING"),
                cooldown_hours=float(need("COOLDOWN_HOURS")),
                lock_lease_minutes=float(need("LOCK_LEASE_MINUTES")),
                max_bake_waits=int(need("MAX_BAKE_WAITS")),
                training_image=need("TRAINING_IMAGE"),
                training_instance_type=need("TRAINING_INSTANCE_TYPE"),
                training_hyperparameters=_json_object("TRAINING_HYPERPARAMETERS", need("TRAINING_HYPERPARAMETERS")),
                use_spot_training=_bool(need("USE_SPOT_TRAINING")),
                max_training_seconds=int(need("MAX_TRAINING_SECONDS")),
                endpoint_instance_type=need("ENDPOINT_INSTANCE_TYPE"),
                sagemaker_role_arn=need("SAGEMAKER_ROLE_ARN"),
                deployment_mode=need("DEPLOYMENT_MODE"),
                rollback_alarm_names=tuple(name.strip() for name in need("ROLLBACK_ALARM_NAMES").split(",")
                                           if name.strip()),
                conversion_period=need("CONVERSION_PERIOD"),
                minimum_lift=float(need("MINIMUM_LIFT")),
                ab_holdback_percent=int(need("AB_HOLDBACK_PERCENT")),
                cooldown_schedule_role_arn=env.get("COOLDOWN_SCHEDULE_ROLE_ARN", ""),
                data_capture_sampling_percent=int(env.get("DATA_CAPTURE_SAMPLING_PERCENT", "100")),
                data_capture_kms_key=env.get("DATA_CAPTURE_KMS_KEY", ""),
                stack_name=env.get("STACK_NAME", ""),
                retrain_environment={name: env[name] for name in RETRAIN_ENVIRONMENT if name in env},
            )
        except ValueError as error:
            raise ConfigurationError(f"bad setting: {error}") from error

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class RetrainSettings:
    """The retrain decision's template parameters (the drift step's environment).

    Read by the drift step when a run starts rather than by every Lambda, so a value that makes no
    sense fails that run with its reason (a ConfigurationError in the run record) instead of every step.
    """

    policy: str
    every_days: float
    value_per_ndcg_point: float
    training_hourly_price: float | None  # None: the list price of the training instance type
    startup_seconds: float
    ab_exposure_cost: float
    challenger: str = "auto"  # auto: the auto policy fits a cheap challenger at every trigger; off: never

    def __post_init__(self) -> None:
        if self.policy not in RETRAIN_POLICIES:
            raise ConfigurationError(f"RetrainPolicy must be one of {', '.join(RETRAIN_POLICIES)}, not {self.policy!r}")
        if self.challenger not in RETRAIN_CHALLENGERS:
            raise ConfigurationError(
                f"RetrainChallenger must be one of {', '.join(RETRAIN_CHALLENGERS)}, not {self.challenger!r}")
        checks = (
            ("RetrainEveryDays", self.every_days, "> 0 days", self.every_days > 0),
            ("ValuePerNdcgPoint", self.value_per_ndcg_point, "> 0 USD per 0.01 NDCG@10 per day",
             self.value_per_ndcg_point > 0),
            ("TrainingHourlyPrice", self.training_hourly_price, "> 0 USD per hour (empty: the list price)",
             self.training_hourly_price is None or self.training_hourly_price > 0),
            ("TrainingStartupSeconds", self.startup_seconds, ">= 0 seconds", self.startup_seconds >= 0),
            ("AbExposureCost", self.ab_exposure_cost, ">= 0 USD", self.ab_exposure_cost >= 0),
        )
        for name, value, rule, ok in checks:
            if not ok or (value is not None and not math.isfinite(value)):
                raise ConfigurationError(f"{name}={value} makes no sense: it must be {rule}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrainSettings:

        def number(variable: str, parameter: str) -> float:
            text = env.get(variable)
            if text is None:
                raise ConfigurationError(f"environment variable {variable} ({parameter}) is not set")
            try:
                return float(text)
            except ValueError:
                raise ConfigurationError(f"{parameter}={text!r} is not a number") from None

        price = env.get("TRAINING_HOURLY_PRICE", "").strip()
        return cls(
            policy=env.get("RETRAIN_POLICY", ""),
            every_days=number("RETRAIN_EVERY_DAYS", "RetrainEveryDays"),
            value_per_ndcg_point=number("VALUE_PER_NDCG_POINT", "ValuePerNdcgPoint"),
            training_hourly_price=number("TRAINING_HOURLY_PRICE", "TrainingHourlyPrice") if price else None,
            startup_seconds=number("TRAINING_STARTUP_SECONDS", "TrainingStartupSeconds"),
            ab_exposure_cost=number("AB_EXPOSURE_COST", "AbExposureCost"),
            challenger=env.get("RETRAIN_CHALLENGER", "auto"),
        )

    @property
    def fits_challenger(self) -> bool:
        return self.policy == "auto" and self.challenger == "auto"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
