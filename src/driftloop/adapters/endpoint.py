"""The endpoint port: which models serve behind which variants, at which weights.

``SageMakerEndpoint`` drives a real endpoint; ``driftloop.local.adapters.SimulatedEndpoint`` keeps the
same state in the local workspace and serves recommendations with the same inference code.

Every change waits for ``InService``: a call that finds the endpoint creating or updating raises
``TransientError`` so the state machine retries it later, and a call whose change is already live or
under way returns without calling AWS again.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import is_already_exists, is_not_found, raise_for_client_error
from driftloop.errors import ConfigurationError, DriftloopError, InvalidInputError, TransientError

IN_SERVICE = "InService"
# DescribeEndpoint's EndpointStatus values (botocore model). EventBridge's "SageMaker Endpoint State
# Change" events spell the same states IN_SERVICE, UPDATING, ...
ENDPOINT_STATUSES = (
    "OutOfService", "Creating", "Updating", "SystemUpdating", "RollingBack", "InService", "Deleting", "Failed",
    "UpdateRollbackFailed",
)
SETTLING_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
_STATUS_BY_KEY = {status.lower(): status for status in ENDPOINT_STATUSES}
_WEIGHT_TOLERANCE = 1e-9


def normalise_endpoint_status(status: str) -> str:
    """The API spelling (``InService``) of an endpoint status spelled by the API or by EventBridge
    (``IN_SERVICE``). An unknown spelling comes back unchanged, so it never equals ``InService``."""
    return _STATUS_BY_KEY.get(re.sub(r"[\s_-]", "", status).lower(), status)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_data_url: str
    image: str
    role_arn: str
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Variant:
    name: str
    model_name: str
    weight: float
    instance_count: int = 1
    instance_type: str = "ml.m5.large"


@dataclass(frozen=True)
class EndpointState:
    name: str
    status: str
    config_name: str
    variants: tuple[Variant, ...]

    def weights(self) -> dict[str, float]:
        total = sum(variant.weight for variant in self.variants) or 1.0
        return {variant.name: round(100.0 * variant.weight / total, 6) for variant in self.variants}

    def variant(self, name: str) -> Variant | None:
        return next((variant for variant in self.variants if variant.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weights_percent": self.weights()}


def same_traffic_split(first: Mapping[str, float], second: Mapping[str, float]) -> bool:
    """True when both name the same variants and route the same fraction of traffic to each
    (weights are relative: {a: 1, b: 1} splits like {a: 50, b: 50})."""
    first_total, second_total = sum(first.values()), sum(second.values())
    if set(first) != set(second) or first_total <= 0 or second_total <= 0:
        return False
    return all(
        abs(first[name] / first_total - second[name] / second_total) <= _WEIGHT_TOLERANCE for name in first
    )


def _checked_weights(weights: Mapping[str, float]) -> dict[str, float]:
    checked = {name: float(weight) for name, weight in weights.items()}
    if not checked:
        raise InvalidInputError("no variant weights given")
    bad = {name: weight for name, weight in checked.items() if not math.isfinite(weight) or weight < 0}
    if bad:
        raise InvalidInputError(f"variant weights must be finite and >= 0, got {bad}")
    return checked


def _validate_variants(variants: Sequence[Variant]) -> None:
    if not variants:
        raise InvalidInputError("an endpoint config needs at least one variant")
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"variant names must be unique, got {names}")
    weights = _checked_weights({variant.name: variant.weight for variant in variants})
    if sum(weights.values()) <= 0:
        raise InvalidInputError("at least one variant needs a positive weight")
    small = [variant.name for variant in variants if variant.instance_count < 1]
    if small:
        raise InvalidInputError(f"variants {small} need at least one instance")


def _canary_or_linear(policy: str) -> str:
    if policy not in ("canary", "linear"):
        raise ConfigurationError(f"guardrail policy must be 'canary' or 'linear', not {policy!r}")
    return policy


@dataclass(frozen=True)
class GuardrailPolicy:
    """A blue/green UpdateEndpoint that shifts traffic in steps and rolls back on any alarm.

    ``step_percent`` is the canary's share (``canary``, 1-50 % of the fleet) or the size of every step
    (``linear``, 10-50 %), as ``CAPACITY_PERCENT``; ``wait_interval_seconds`` is the bake time after each
    step; ``termination_wait_seconds`` keeps the old fleet after the last step so a late alarm can still
    roll back. The deployment timeout defaults to the whole schedule plus ten minutes of provisioning.
    """

    policy: str
    alarms: tuple[str, ...]
    step_percent: int = 10
    wait_interval_seconds: int = 300
    termination_wait_seconds: int = 300
    maximum_execution_timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        _canary_or_linear(self.policy)
        object.__setattr__(self, "alarms", tuple(self.alarms))
        if not 1 <= len(self.alarms) <= 10:
            raise ConfigurationError(f"auto-rollback needs 1 to 10 alarms, got {len(self.alarms)}")
        if any(not alarm.strip() or len(alarm) > 255 for alarm in self.alarms) or len(set(self.alarms)) < len(
            self.alarms
        ):
            raise ConfigurationError(f"alarm names must be distinct, non-blank and <= 255 characters: {self.alarms}")
        low = 1 if self.policy == "canary" else 10
        if not low <= self.step_percent <= 50:
            raise ConfigurationError(f"a {self.policy} step must be {low}-50 % of the fleet, got {self.step_percent}")
        for label, seconds in (("wait_interval_seconds", self.wait_interval_seconds),
                               ("termination_wait_seconds", self.termination_wait_seconds)):
            if not 0 <= seconds <= 3600:
                raise ConfigurationError(f"{label} must be 0-3600, got {seconds}")
        timeout = self.timeout_seconds
        if not 600 <= timeout <= 28800:
            raise ConfigurationError(f"the deployment timeout must be 600-28800 s, got {timeout}")
        if timeout < self.schedule_seconds:
            raise ConfigurationError(
                f"timeout {timeout} s is shorter than the {self.policy} schedule ({self.schedule_seconds} s)"
            )

    @property
    def steps(self) -> int:
        return 2 if self.policy == "canary" else math.ceil(100 / self.step_percent)

    @property
    def schedule_seconds(self) -> int:
        """Baking after every traffic step, then the wait before the old fleet is terminated."""
        return self.steps * self.wait_interval_seconds + self.termination_wait_seconds

    @property
    def timeout_seconds(self) -> int:
        if self.maximum_execution_timeout_seconds is not None:
            return self.maximum_execution_timeout_seconds
        return min(28800, max(600, self.schedule_seconds + 600))

    def deployment_config(self) -> dict[str, Any]:
        """UpdateEndpoint's ``DeploymentConfig``."""
        size = {"Type": "CAPACITY_PERCENT", "Value": self.step_percent}
        routing: dict[str, Any] = {"Type": self.policy.upper(), "WaitIntervalInSeconds": self.wait_interval_seconds}
        routing["CanarySize" if self.policy == "canary" else "LinearStepSize"] = size
        return {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": self.termination_wait_seconds,
                "MaximumExecutionTimeoutInSeconds": self.timeout_seconds,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm} for alarm in self.alarms]},
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "timeout_seconds": self.timeout_seconds, "schedule_seconds": self.schedule_seconds}


def update_endpoint_request(
    endpoint_name: str, config_name: str, guardrails: GuardrailPolicy | None = None
) -> dict[str, Any]:
    """UpdateEndpoint's arguments. Variant properties are deliberately not retained: the new config
    carries every weight and instance count (the pipeline copies the live champion's instance count
    into it), so retaining would only keep stale weights, e.g. the champion at 100 % after switching
    to the A/B config. ``RetainAllVariantProperties`` is sent as False rather than left to the default,
    and ``ExcludeRetainedVariantProperties`` is omitted because it only applies when retaining."""
    request: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "EndpointConfigName": config_name,
        "RetainAllVariantProperties": False,
    }
    if guardrails is not None:
        request["DeploymentConfig"] = guardrails.deployment_config()
    return request


class Endpoint(ABC):
    """Every method is idempotent: calling it twice leaves the same state as calling it once."""

    name: str

    @abstractmethod
    def describe(self) -> EndpointState | None:
        """The endpoint as it is now, or None when it does not exist."""

    @abstractmethod
    def ensure_model(self, model: ModelSpec) -> None:
        """Create the model unless a model of that name exists."""

    @abstractmethod
    def deploy(self, config_name: str, variants: list[Variant]) -> None:
        """Create the endpoint config (unless it exists) and create or update the endpoint to it.

        Variant properties are never retained from the old config: the weights and instance counts
        that serve afterwards are exactly the ones in ``variants``.
        """

    @abstractmethod
    def set_weights(self, weights: dict[str, float]) -> None:
        """Change variant weights in place; raises TransientError while the endpoint is updating."""

    def deploy_with_guardrails(
        self,
        config_name: str,
        variants: list[Variant],
        policy: str,
        alarms: list[str],
        *,
        step_percent: int = 10,
        wait_interval_seconds: int = 300,
        termination_wait_seconds: int = 300,
        maximum_execution_timeout_seconds: int | None = None,
    ) -> GuardrailPolicy:
        """Like ``deploy``, but the switch to the new config is a blue/green swap that shifts traffic
        in ``canary`` or ``linear`` steps and rolls back by itself when any of ``alarms`` fires.
        Returns the validated policy (for the run record)."""
        guardrails = GuardrailPolicy(
            policy=policy,
            alarms=tuple(alarms),
            step_percent=step_percent,
            wait_interval_seconds=wait_interval_seconds,
            termination_wait_seconds=termination_wait_seconds,
            maximum_execution_timeout_seconds=maximum_execution_timeout_seconds,
        )
        self.deploy_guarded(config_name, variants, guardrails)
        return guardrails

    def deploy_guarded(self, config_name: str, variants: list[Variant], guardrails: GuardrailPolicy) -> None:
        """Backends that cannot shift traffic gradually swap at once (the local simulated endpoint)."""
        self.deploy(config_name, variants)


def _production_variant(variant: Variant) -> dict[str, Any]:
    return {
        "VariantName": variant.name,
        "ModelName": variant.model_name,
        "InitialInstanceCount": variant.instance_count,
        "InstanceType": variant.instance_type,
        "InitialVariantWeight": float(variant.weight),
    }


def _variant_from_config(entry: Mapping[str, Any]) -> Variant:
    return Variant(
        name=entry["VariantName"],
        model_name=entry["ModelName"],
        weight=float(entry.get("InitialVariantWeight", 1.0)),
        instance_count=int(entry.get("InitialInstanceCount", 1)),
        instance_type=entry.get("InstanceType", ""),
    )


def _same_variants(existing: Sequence[Variant], wanted: Sequence[Variant]) -> bool:
    def shape(variants: Sequence[Variant]) -> dict[str, tuple[str, int, str]]:
        return {v.name: (v.model_name, v.instance_count, v.instance_type) for v in variants}

    return shape(existing) == shape(wanted) and same_traffic_split(
        {v.name: v.weight for v in existing}, {v.name: v.weight for v in wanted}
    )


class SageMakerEndpoint(Endpoint):
    def __init__(self, client: Any, name: str) -> None:
        self._client, self.name = client, name

    def _call(self, what: str, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(**arguments)
        except ClientError as error:
            raise_for_client_error(error, what)

    def _describe_endpoint(self) -> dict[str, Any] | None:
        try:
            return self._client.describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            # ValidationException 'Could not find endpoint "arn:aws:sagemaker:...:endpoint/<name>".'
            if is_not_found(error):
                return None
            raise_for_client_error(error, f"DescribeEndpoint {self.name}")

    def _config_variants(self, config_name: str) -> list[Variant]:
        config = self._call(f"DescribeEndpointConfig {config_name}", "describe_endpoint_config",
                            EndpointConfigName=config_name)
        return [_variant_from_config(entry) for entry in config["ProductionVariants"]]

    def describe(self) -> EndpointState | None:
        endpoint = self._describe_endpoint()
        if endpoint is None:
            return None
        live = {entry["VariantName"]: entry for entry in endpoint.get("ProductionVariants", [])}
        variants = []
        for variant in self._config_variants(endpoint["EndpointConfigName"]):
            current = live.get(variant.name, {})
            variants.append(Variant(
                name=variant.name,
                model_name=variant.model_name,
                weight=float(current.get("CurrentWeight", variant.weight)),
                instance_count=int(current.get("CurrentInstanceCount", variant.instance_count)),
                instance_type=variant.instance_type,
            ))
        return EndpointState(self.name, normalise_endpoint_status(endpoint["EndpointStatus"]),
                             endpoint["EndpointConfigName"], tuple(variants))

    def _existing_model(self, name: str) -> dict[str, Any] | None:
        try:
            return self._client.describe_model(ModelName=name)
        except ClientError as error:
            # ValidationException 'Could not find model "arn:aws:sagemaker:...:model/<name>".'
            if is_not_found(error):
                return None
            raise_for_client_error(error, f"DescribeModel {name}")

    def ensure_model(self, model: ModelSpec) -> None:
        existing = self._existing_model(model.name)
        if existing is None:
            try:
                self._client.create_model(
                    ModelName=model.name,
                    ExecutionRoleArn=model.role_arn,
                    PrimaryContainer={
                        "Image": model.image,
                        "ModelDataUrl": model.model_data_url,
                        "Environment": dict(model.environment),
                    },
                )
                return
            except ClientError as error:
                # A concurrent attempt won: 'Cannot create already existing model "arn:..."'.
                if not is_already_exists(error):
                    raise_for_client_error(error, f"CreateModel {model.name}")
            existing = self._call(f"DescribeModel {model.name}", "describe_model", ModelName=model.name)
        container = existing.get("PrimaryContainer", {})
        if (container.get("ModelDataUrl"), container.get("Image")) != (model.model_data_url, model.image):
            raise ConfigurationError(
                f"model {model.name} exists with other artifacts ({container.get('ModelDataUrl')}, "
                f"{container.get('Image')}) than requested ({model.model_data_url}, {model.image})"
            )

    def _ensure_config(self, config_name: str, variants: Sequence[Variant]) -> None:
        try:
            self._client.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=[_production_variant(variant) for variant in variants],
            )
            return
        except ClientError as error:
            # 'Cannot create already existing endpoint configuration "arn:..."': an earlier attempt made it.
            if not is_already_exists(error):
                raise_for_client_error(error, f"CreateEndpointConfig {config_name}")
        existing = self._config_variants(config_name)
        if not _same_variants(existing, variants):
            raise ConfigurationError(
                f"endpoint config {config_name} exists with other variants {existing} than requested "
                f"{list(variants)}; configs are immutable, so a different deployment needs a new name"
            )

    def _require_in_service(self, endpoint: Mapping[str, Any]) -> None:
        status = normalise_endpoint_status(str(endpoint.get("EndpointStatus", "")))
        if status == IN_SERVICE:
            return
        if status in SETTLING_STATUSES:
            raise TransientError(f"endpoint {self.name} is {status}; retry when it is InService")
        reason = endpoint.get("FailureReason") or "no reason given"
        raise DriftloopError(f"endpoint {self.name} is {status} ({reason}); it needs an operator")

    @staticmethod
    def _targets(endpoint: Mapping[str, Any], config_name: str) -> bool:
        """The endpoint serves ``config_name`` or is being moved to it (DescribeEndpoint names the
        incoming config in ``PendingDeploymentSummary`` while the old one still serves)."""
        pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        return config_name in (endpoint.get("EndpointConfigName"), pending)

    def _switch(self, config_name: str, variants: list[Variant], guardrails: GuardrailPolicy | None) -> None:
        _validate_variants(variants)
        self._ensure_config(config_name, variants)
        endpoint = self._describe_endpoint()
        if endpoint is None:
            try:
                self._client.create_endpoint(EndpointName=self.name, EndpointConfigName=config_name)
            except ClientError as error:
                if not is_already_exists(error):
                    raise_for_client_error(error, f"CreateEndpoint {self.name}")
            return
        if self._targets(endpoint, config_name):
            return
        self._require_in_service(endpoint)
        if guardrails is not None:
            live = {entry["VariantName"] for entry in endpoint.get("ProductionVariants", [])}
            wanted = {variant.name for variant in variants}
            if live != wanted:
                # SageMaker's deployment-guardrails exclusions: a blue/green update keeps the variant names.
                raise ConfigurationError(
                    f"a guarded update must keep the variant names {sorted(live)}, got {sorted(wanted)}"
                )
        self._call(f"UpdateEndpoint {self.name}", "update_endpoint",
                   **update_endpoint_request(self.name, config_name, guardrails))

    def deploy(self, config_name: str, variants: list[Variant]) -> None:
        self._switch(config_name, variants, None)

    def deploy_guarded(self, config_name: str, variants: list[Variant], guardrails: GuardrailPolicy) -> None:
        """A new endpoint is simply created (there is no old fleet to shift traffic from)."""
        self._switch(config_name, variants, guardrails)

    def set_weights(self, weights: dict[str, float]) -> None:
        desired = _checked_weights(weights)
        endpoint = self._describe_endpoint()
        if endpoint is None:
            raise TransientError(f"endpoint {self.name} does not exist yet")
        live = endpoint.get("ProductionVariants", [])
        current = {entry["VariantName"]: float(entry.get("CurrentWeight", 0.0)) for entry in live}
        unknown = sorted(set(desired) - set(current))
        if unknown:
            self._require_in_service(endpoint)
            raise InvalidInputError(f"endpoint {self.name} has no variants {unknown} (it has {sorted(current)})")
        # Variants left out keep their weight, as in UpdateEndpointWeightsAndCapacities.
        target = {**current, **desired}
        if sum(target.values()) <= 0:
            raise InvalidInputError(f"weights {desired} would leave endpoint {self.name} without traffic")
        if same_traffic_split(current, target):
            return
        in_flight = {entry["VariantName"]: float(entry.get("DesiredWeight", entry.get("CurrentWeight", 0.0)))
                     for entry in live}
        status = normalise_endpoint_status(str(endpoint.get("EndpointStatus", "")))
        if status in SETTLING_STATUSES and same_traffic_split(in_flight, target):
            return
        self._require_in_service(endpoint)
        self._call(
            f"UpdateEndpointWeightsAndCapacities {self.name}",
            "update_endpoint_weights_and_capacities",
            EndpointName=self.name,
            DesiredWeightsAndCapacities=[
                {"VariantName": name, "DesiredWeight": weight} for name, weight in sorted(desired.items())
            ],
        )
