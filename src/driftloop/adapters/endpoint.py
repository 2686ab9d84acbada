"""The endpoint port: which models serve behind which variants, at which weights.

``driftloop.adapters.sagemaker_endpoint.SageMakerEndpoint`` drives a real endpoint;
``driftloop.local.adapters.SimulatedEndpoint`` keeps the same state in the local workspace and serves
recommendations with the same inference code.

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

from driftloop.errors import ConfigurationError, InvalidInputError

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


def checked_weights(weights: Mapping[str, float]) -> dict[str, float]:
    checked = {name: float(weight) for name, weight in weights.items()}
    if not checked:
        raise InvalidInputError("no variant weights given")
    bad = {name: weight for name, weight in checked.items() if not math.isfinite(weight) or weight < 0}
    if bad:
        raise InvalidInputError(f"variant weights must be finite and >= 0, got {bad}")
    return checked


def validate_variants(variants: Sequence[Variant]) -> None:
    if not variants:
        raise InvalidInputError("an endpoint config needs at least one variant")
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"variant names must be unique, got {names}")
    weights = checked_weights({variant.name: variant.weight for variant in variants})
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
