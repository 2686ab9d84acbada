"""The SageMaker adapter of the endpoint port (:mod:`driftloop.adapters.endpoint`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import is_already_exists, is_not_found, raise_for_client_error
from driftloop.adapters.endpoint import (
    IN_SERVICE,
    SETTLING_STATUSES,
    Endpoint,
    EndpointState,
    GuardrailPolicy,
    ModelSpec,
    Variant,
    checked_weights,
    normalise_endpoint_status,
    same_traffic_split,
    update_endpoint_request,
    validate_variants,
)
from driftloop.adapters.tags import tag_list
from driftloop.capture import CAPTURE_CONTENT_TYPE
from driftloop.errors import ConfigurationError, DriftloopError, InvalidInputError, TransientError


@dataclass(frozen=True)
class DataCapture:
    """Data Capture of every endpoint config driftloop creates: requests and responses, as JSON, to
    ``destination`` (``s3://<data bucket>/datacapture``), ``sampling_percent`` of them, encrypted with
    ``kms_key`` when one is given (empty: the bucket's default encryption)."""

    destination: str
    sampling_percent: int = 100
    kms_key: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.sampling_percent <= 100:
            raise ConfigurationError(
                f"Data Capture sampling must be within 1..100 percent, not {self.sampling_percent}")

    def to_request(self) -> dict[str, Any]:
        """The ``DataCaptureConfig`` of CreateEndpointConfig
        (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataCaptureConfig.html)."""
        config: dict[str, Any] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": self.sampling_percent,
            "DestinationS3Uri": self.destination,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": [CAPTURE_CONTENT_TYPE]},
        }
        if self.kms_key:
            config["KmsKeyId"] = self.kms_key
        return config


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
    """``data_capture``: the Data Capture every new endpoint config gets (None: none, for tests of other parts).
    ``tags``: put on every model, config and endpoint created."""

    def __init__(self, client: Any, name: str, data_capture: DataCapture | None = None,
                 tags: Mapping[str, str] | None = None) -> None:
        self._client, self.name, self._data_capture = client, name, data_capture
        self._tags = {"Tags": tag_list(dict(tags))} if tags else {}

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
                    **self._tags,
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
            capture = {"DataCaptureConfig": self._data_capture.to_request()} if self._data_capture else {}
            self._client.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=[_production_variant(variant) for variant in variants],
                **capture,
                **self._tags,
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
        validate_variants(variants)
        self._ensure_config(config_name, variants)
        endpoint = self._describe_endpoint()
        if endpoint is None:
            try:
                self._client.create_endpoint(EndpointName=self.name, EndpointConfigName=config_name, **self._tags)
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
        desired = checked_weights(weights)
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
