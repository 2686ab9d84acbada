"""The endpoint port: which models serve behind which variants, at which weights.

``SageMakerEndpoint`` drives a real endpoint; ``driftloop.local.adapters.SimulatedEndpoint`` keeps the
same state in the local workspace and serves recommendations with the same inference code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.errors import TransientError

IN_SERVICE = "InService"


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


def _variant_from_config(entry: dict[str, Any]) -> Variant:
    return Variant(
        name=entry["VariantName"],
        model_name=entry["ModelName"],
        weight=float(entry.get("InitialVariantWeight", 1.0)),
        instance_count=int(entry.get("InitialInstanceCount", 1)),
        instance_type=entry.get("InstanceType", ""),
    )


class SageMakerEndpoint(Endpoint):
    def __init__(self, client: Any, name: str) -> None:
        self._client, self.name = client, name

    def describe(self) -> EndpointState | None:
        try:
            endpoint = self._client.describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            if "Could not find" in error.response["Error"].get("Message", ""):
                return None
            raise_for_client_error(error, f"DescribeEndpoint {self.name}")
        config = self._client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        models = {entry["VariantName"]: entry for entry in config["ProductionVariants"]}
        live = {entry["VariantName"]: entry for entry in endpoint.get("ProductionVariants", [])}
        variants = []
        for name, entry in models.items():
            variant = _variant_from_config(entry)
            if name in live:
                variant = Variant(
                    name=name,
                    model_name=variant.model_name,
                    weight=float(live[name].get("CurrentWeight", variant.weight)),
                    instance_count=int(live[name].get("CurrentInstanceCount", variant.instance_count)),
                    instance_type=variant.instance_type,
                )
            variants.append(variant)
        return EndpointState(self.name, endpoint["EndpointStatus"], endpoint["EndpointConfigName"], tuple(variants))

    def ensure_model(self, model: ModelSpec) -> None:
        try:
            self._client.describe_model(ModelName=model.name)
            return
        except ClientError as error:
            if "Could not find" not in error.response["Error"].get("Message", ""):
                raise_for_client_error(error, f"DescribeModel {model.name}")
        self._client.create_model(
            ModelName=model.name,
            ExecutionRoleArn=model.role_arn,
            PrimaryContainer={
                "Image": model.image,
                "ModelDataUrl": model.model_data_url,
                "Environment": dict(model.environment),
            },
        )

    def deploy(self, config_name: str, variants: list[Variant]) -> None:
        try:
            self._client.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=[
                    {
                        "VariantName": variant.name,
                        "ModelName": variant.model_name,
                        "InitialInstanceCount": variant.instance_count,
                        "InstanceType": variant.instance_type,
                        "InitialVariantWeight": variant.weight,
                    }
                    for variant in variants
                ],
            )
        except ClientError as error:
            if "already existing" not in error.response["Error"].get("Message", "").lower() and (
                "already exists" not in error.response["Error"].get("Message", "").lower()
            ):
                raise_for_client_error(error, f"CreateEndpointConfig {config_name}")
        state = self.describe()
        if state is None:
            self._client.create_endpoint(EndpointName=self.name, EndpointConfigName=config_name)
            return
        if state.config_name == config_name:
            return
        if state.status != IN_SERVICE:
            raise TransientError(f"endpoint {self.name} is {state.status}; retry when InService")
        self._client.update_endpoint(
            EndpointName=self.name,
            EndpointConfigName=config_name,
            RetainAllVariantProperties=False,
        )

    def set_weights(self, weights: dict[str, float]) -> None:
        state = self.describe()
        if state is None or state.status != IN_SERVICE:
            raise TransientError(f"endpoint {self.name} is not InService yet")
        if state.weights() == {name: round(100.0 * w / (sum(weights.values()) or 1), 6) for name, w in weights.items()}:
            return
        try:
            self._client.update_endpoint_weights_and_capacities(
                EndpointName=self.name,
                DesiredWeightsAndCapacities=[
                    {"VariantName": name, "DesiredWeight": float(weight)} for name, weight in weights.items()
                ],
            )
        except ClientError as error:
            raise_for_client_error(error, f"UpdateEndpointWeightsAndCapacities {self.name}")
