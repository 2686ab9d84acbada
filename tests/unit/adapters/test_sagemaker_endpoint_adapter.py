"""SageMakerEndpoint: idempotent deploys, normalised weight comparison, guarded blue/green updates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sagemaker_stubs import (
    IMAGE,
    REGION,
    ROLE_ARN,
    THROTTLED,
    add_error,
    arn,
    config_exists,
    endpoint_exists,
    endpoint_in_progress,
    endpoint_not_found,
    model_exists,
    model_not_found,
    stubbed,
)

from driftloop.adapters.endpoint import (
    Endpoint,
    EndpointState,
    GuardrailPolicy,
    ModelSpec,
    Variant,
    normalise_endpoint_status,
    same_traffic_split,
    update_endpoint_request,
)
from driftloop.adapters.sagemaker_endpoint import SageMakerEndpoint
from driftloop.errors import ConfigurationError, DriftloopError, InvalidInputError, TransientError

NAME = "recs"
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
CHAMPION = Variant("champion", "recs-champ", 0.9, 2, "ml.m5.large")
CHALLENGER = Variant("challenger", "recs-chall", 0.1, 2, "ml.m5.large")


def production_variant(variant: Variant) -> dict[str, Any]:
    return {"VariantName": variant.name, "ModelName": variant.model_name,
            "InitialInstanceCount": variant.instance_count, "InstanceType": variant.instance_type,
            "InitialVariantWeight": variant.weight}


def endpoint(status: str = "InService", config: str = "cfg-old", live: dict[str, float] | None = None,
             desired: dict[str, float] | None = None, pending: str | None = None, **extra: Any) -> dict[str, Any]:
    live = {"champion": 1.0} if live is None else live
    response: dict[str, Any] = {
        "EndpointName": NAME, "EndpointArn": arn("endpoint", NAME), "EndpointConfigName": config,
        "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW,
        "ProductionVariants": [
            {"VariantName": name, "CurrentWeight": weight, "DesiredWeight": (desired or live)[name],
             "CurrentInstanceCount": 2, "DesiredInstanceCount": 2}
            for name, weight in live.items()
        ],
        **extra,
    }
    if pending:
        response["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return response


def config(name: str, variants: list[Variant]) -> dict[str, Any]:
    return {"EndpointConfigName": name, "EndpointConfigArn": arn("endpoint-config", name),
            "ProductionVariants": [production_variant(v) for v in variants], "CreationTime": NOW}


@pytest.mark.parametrize(("spelling", "api"), [
    ("IN_SERVICE", "InService"), ("UPDATING", "Updating"), ("SYSTEM_UPDATING", "SystemUpdating"),
    ("ROLLING_BACK", "RollingBack"), ("UPDATE_ROLLBACK_FAILED", "UpdateRollbackFailed"),
    ("OUT_OF_SERVICE", "OutOfService"), ("InService", "InService"), ("Creating", "Creating"),
])
def test_eventbridge_and_api_spellings_normalise_to_the_api_one(spelling: str, api: str) -> None:
    assert normalise_endpoint_status(spelling) == api


def test_unknown_status_spelling_is_kept_and_never_in_service() -> None:
    assert normalise_endpoint_status("WARMING_UP") == "WARMING_UP"


def test_traffic_split_compares_relative_weights() -> None:
    assert same_traffic_split({"a": 1, "b": 1}, {"a": 50, "b": 50})
    assert same_traffic_split({"a": 0.9, "b": 0.1}, {"a": 90.0, "b": 10.0})
    assert not same_traffic_split({"a": 0.9, "b": 0.1}, {"a": 0.8, "b": 0.2})
    assert not same_traffic_split({"a": 1.0}, {"a": 1.0, "b": 0.0})


# --- set_weights -------------------------------------------------------------------------------

def test_set_weights_is_a_no_op_when_the_split_already_serves() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint(live={"champion": 0.9, "challenger": 0.1}),
                             {"EndpointName": NAME})
        SageMakerEndpoint(client, NAME).set_weights({"champion": 90.0, "challenger": 10.0})


def test_set_weights_sends_only_the_named_variants() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint(live={"champion": 0.9, "challenger": 0.1}))
        stubber.add_response(
            "update_endpoint_weights_and_capacities", {"EndpointArn": arn("endpoint", NAME)},
            {"EndpointName": NAME, "DesiredWeightsAndCapacities": [
                {"VariantName": "challenger", "DesiredWeight": 0.5},
                {"VariantName": "champion", "DesiredWeight": 0.5}]},
        )
        SageMakerEndpoint(client, NAME).set_weights({"champion": 0.5, "challenger": 0.5})


def test_variants_left_out_keep_their_weight_when_comparing() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint(live={"champion": 0.9, "challenger": 0.1}))
        SageMakerEndpoint(client, NAME).set_weights({"challenger": 0.1})


def test_set_weights_waits_while_the_endpoint_updates() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint("Updating", live={"champion": 1.0, "challenger": 0.0}))
        with pytest.raises(TransientError, match="Updating"):
            SageMakerEndpoint(client, NAME).set_weights({"champion": 0.5, "challenger": 0.5})


def test_set_weights_accepts_its_own_change_in_flight() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint("Updating", live={"champion": 1.0, "challenger": 0.0},
                                                           desired={"champion": 0.5, "challenger": 0.5}))
        SageMakerEndpoint(client, NAME).set_weights({"champion": 1.0, "challenger": 1.0})


def test_set_weights_rejects_unknown_variants_and_negative_weights() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint())
        with pytest.raises(InvalidInputError, match="challenger"):
            SageMakerEndpoint(client, NAME).set_weights({"challenger": 1.0})
        with pytest.raises(InvalidInputError, match=">= 0"):
            SageMakerEndpoint(client, NAME).set_weights({"champion": -1.0})


def test_set_weights_race_with_an_update_is_transient() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint(live={"champion": 1.0, "challenger": 0.0}))
        add_error(stubber, "update_endpoint_weights_and_capacities", endpoint_in_progress(NAME))
        with pytest.raises(TransientError):
            SageMakerEndpoint(client, NAME).set_weights({"champion": 0.5, "challenger": 0.5})


# --- ensure_model --------------------------------------------------------------------------------

SPEC = ModelSpec("recs-chall", "s3://data/models/recs/job/output/model.tar.gz", IMAGE, ROLE_ARN,
                 (("SAGEMAKER_PROGRAM", "inference.py"),))


def model(spec: ModelSpec, url: str | None = None) -> dict[str, Any]:
    return {"ModelName": spec.name, "ModelArn": arn("model", spec.name), "CreationTime": NOW,
            "ExecutionRoleArn": spec.role_arn,
            "PrimaryContainer": {"Image": spec.image, "ModelDataUrl": url or spec.model_data_url}}


def test_ensure_model_creates_a_missing_model() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_model", model_not_found(SPEC.name), {"ModelName": SPEC.name})
        stubber.add_response("create_model", {"ModelArn": arn("model", SPEC.name)}, {
            "ModelName": SPEC.name, "ExecutionRoleArn": ROLE_ARN,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": SPEC.model_data_url,
                                 "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}})
        SageMakerEndpoint(client, NAME).ensure_model(SPEC)


def test_ensure_model_adopts_the_same_model_made_concurrently() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_model", model_not_found(SPEC.name))
        add_error(stubber, "create_model", model_exists(SPEC.name))
        stubber.add_response("describe_model", model(SPEC))
        SageMakerEndpoint(client, NAME).ensure_model(SPEC)


def test_ensure_model_refuses_a_name_holding_other_artifacts() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_model", model(SPEC, url="s3://data/models/other.tar.gz"))
        with pytest.raises(ConfigurationError, match="other artifacts"):
            SageMakerEndpoint(client, NAME).ensure_model(SPEC)


# --- deploy --------------------------------------------------------------------------------------

VARIANTS = [CHAMPION, CHALLENGER]


def expect_config_created(stubber: Any, name: str = "cfg-ab") -> None:
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", name)},
                         {"EndpointConfigName": name, "ProductionVariants": [production_variant(v) for v in VARIANTS]})


def test_deploy_creates_a_missing_endpoint() -> None:
    with stubbed() as (client, stubber):
        expect_config_created(stubber)
        add_error(stubber, "describe_endpoint", endpoint_not_found(NAME))
        stubber.add_response("create_endpoint", {"EndpointArn": arn("endpoint", NAME)},
                             {"EndpointName": NAME, "EndpointConfigName": "cfg-ab"})
        SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)


def test_concurrent_endpoint_creation_is_adopted() -> None:
    with stubbed() as (client, stubber):
        expect_config_created(stubber)
        add_error(stubber, "describe_endpoint", endpoint_not_found(NAME))
        add_error(stubber, "create_endpoint", endpoint_exists(NAME))
        SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)


def test_deploy_updates_without_retaining_variant_properties() -> None:
    with stubbed() as (client, stubber):
        expect_config_created(stubber)
        stubber.add_response("describe_endpoint", endpoint())
        stubber.add_response("update_endpoint", {"EndpointArn": arn("endpoint", NAME)},
                             {"EndpointName": NAME, "EndpointConfigName": "cfg-ab",
                              "RetainAllVariantProperties": False})
        SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)


def test_retried_deploy_adopts_its_config_and_stops_once_it_serves() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "create_endpoint_config", config_exists("cfg-ab"))
        stubber.add_response("describe_endpoint_config", config("cfg-ab", VARIANTS), {"EndpointConfigName": "cfg-ab"})
        stubber.add_response("describe_endpoint", endpoint("Updating", pending="cfg-ab"))
        SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)
        add_error(stubber, "create_endpoint_config", config_exists("cfg-ab"))
        stubber.add_response("describe_endpoint_config", config("cfg-ab", VARIANTS))
        stubber.add_response("describe_endpoint", endpoint(config="cfg-ab"))
        SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)


def test_existing_config_with_other_variants_is_refused() -> None:
    other = [CHAMPION, Variant("challenger", "recs-other", 0.1, 2, "ml.m5.large")]
    with stubbed() as (client, stubber):
        add_error(stubber, "create_endpoint_config", config_exists("cfg-ab"))
        stubber.add_response("describe_endpoint_config", config("cfg-ab", other))
        with pytest.raises(ConfigurationError, match="new name"):
            SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack"])
def test_deploy_waits_for_in_service(status: str) -> None:
    with stubbed() as (client, stubber):
        expect_config_created(stubber)
        stubber.add_response("describe_endpoint", endpoint(status))
        with pytest.raises(TransientError, match=status):
            SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)


def test_deploy_on_a_failed_endpoint_is_not_retried() -> None:
    with stubbed() as (client, stubber):
        expect_config_created(stubber)
        stubber.add_response("describe_endpoint", endpoint("Failed", FailureReason="image not found"))
        with pytest.raises(DriftloopError, match="image not found") as raised:
            SageMakerEndpoint(client, NAME).deploy("cfg-ab", VARIANTS)
    assert not isinstance(raised.value, TransientError)


def test_throttled_describe_is_transient() -> None:
    with stubbed() as (client, stubber):
        add_error(stubber, "describe_endpoint", THROTTLED)
        with pytest.raises(TransientError):
            SageMakerEndpoint(client, NAME).describe()


def test_deploy_validates_variants_before_calling_aws() -> None:
    with stubbed() as (client, _):
        with pytest.raises(InvalidInputError, match="unique"):
            SageMakerEndpoint(client, NAME).deploy("cfg", [CHAMPION, CHAMPION])
        with pytest.raises(InvalidInputError, match="positive weight"):
            SageMakerEndpoint(client, NAME).deploy("cfg", [Variant("champion", "m", 0.0)])


def test_describe_reads_live_weights_and_counts() -> None:
    with stubbed() as (client, stubber):
        stubber.add_response("describe_endpoint", endpoint("IN_SERVICE", config="cfg-ab",
                                                           live={"champion": 3.0, "challenger": 1.0}))
        stubber.add_response("describe_endpoint_config", config("cfg-ab", VARIANTS))
        state = SageMakerEndpoint(client, NAME).describe()
    assert state == EndpointState(NAME, "InService", "cfg-ab", (
        Variant("champion", "recs-champ", 3.0, 2, "ml.m5.large"),
        Variant("challenger", "recs-chall", 1.0, 2, "ml.m5.large")))
    assert state.weights() == {"champion": 75.0, "challenger": 25.0}


# --- guardrails ----------------------------------------------------------------------------------

SWAP = [Variant("champion", "recs-chall", 1.0, 2, "ml.m5.large")]


def test_canary_update_request_has_the_blue_green_shape() -> None:
    policy = GuardrailPolicy("canary", ("recs-5xx", "recs-latency"), step_percent=10, wait_interval_seconds=600,
                             termination_wait_seconds=300)
    with stubbed() as (client, stubber):
        stubber.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", "cfg-swap")})
        stubber.add_response("describe_endpoint", endpoint())
        stubber.add_response("update_endpoint", {"EndpointArn": arn("endpoint", NAME)}, {
            "EndpointName": NAME, "EndpointConfigName": "cfg-swap", "RetainAllVariantProperties": False,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                                                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
                    "TerminationWaitInSeconds": 300,
                    "MaximumExecutionTimeoutInSeconds": 2100,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "recs-5xx"}, {"AlarmName": "recs-latency"}]},
            }})
        returned = SageMakerEndpoint(client, NAME).deploy_with_guardrails(
            "cfg-swap", SWAP, "canary", ["recs-5xx", "recs-latency"], step_percent=10, wait_interval_seconds=600,
            termination_wait_seconds=300)
    assert returned == policy


def test_linear_update_request_uses_linear_steps() -> None:
    policy = GuardrailPolicy("linear", ("recs-5xx",), step_percent=20, wait_interval_seconds=120,
                             maximum_execution_timeout_seconds=3600)
    request = update_endpoint_request(NAME, "cfg-swap", policy)
    routing = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "LINEAR", "WaitIntervalInSeconds": 120,
                       "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}}
    assert request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == 3600
    with stubbed() as (client, stubber):
        stubber.add_response("update_endpoint", {"EndpointArn": arn("endpoint", NAME)}, request)
        client.update_endpoint(**request)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"policy": "rolling", "alarms": ("a",)}, "canary"),
    ({"policy": "canary", "alarms": ()}, "1 to 10 alarms"),
    ({"policy": "canary", "alarms": tuple(f"a{i}" for i in range(11))}, "1 to 10 alarms"),
    ({"policy": "canary", "alarms": ("a", "a")}, "distinct"),
    ({"policy": "canary", "alarms": ("a",), "step_percent": 60}, "1-50"),
    ({"policy": "linear", "alarms": ("a",), "step_percent": 5}, "10-50"),
    ({"policy": "linear", "alarms": ("a",), "wait_interval_seconds": 3601}, "0-3600"),
    ({"policy": "linear", "alarms": ("a",), "step_percent": 10, "wait_interval_seconds": 3600}, "36300 s"),
    ({"policy": "canary", "alarms": ("a",), "maximum_execution_timeout_seconds": 500}, "600-28800"),
    ({"policy": "canary", "alarms": ("a",), "maximum_execution_timeout_seconds": 700}, "shorter"),
])
def test_guardrail_policy_rejects_what_sagemaker_would(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GuardrailPolicy(**arguments)


def test_guarded_update_must_keep_the_variant_names() -> None:
    with stubbed() as (client, stubber):
        expect_config_created(stubber)
        stubber.add_response("describe_endpoint", endpoint())
        with pytest.raises(ConfigurationError, match="variant names"):
            SageMakerEndpoint(client, NAME).deploy_with_guardrails("cfg-ab", VARIANTS, "canary", ["recs-5xx"])


def test_backends_without_traffic_shifting_swap_at_once() -> None:
    class Recording(Endpoint):
        name = "recording"

        def __init__(self) -> None:
            self.deployed: list[tuple[str, list[Variant]]] = []

        def describe(self) -> EndpointState | None:
            return None

        def ensure_model(self, model: ModelSpec) -> None:
            return None

        def deploy(self, config_name: str, variants: list[Variant]) -> None:
            self.deployed.append((config_name, variants))

        def set_weights(self, weights: dict[str, float]) -> None:
            return None

    endpoint_port = Recording()
    endpoint_port.deploy_with_guardrails("cfg-swap", SWAP, "linear", ["recs-5xx"], step_percent=25)
    assert endpoint_port.deployed == [("cfg-swap", SWAP)]
    with pytest.raises(ConfigurationError):
        endpoint_port.deploy_with_guardrails("cfg-swap", SWAP, "linear", [])


# --- moto, where it is faithful (no UpdateEndpoint) ----------------------------------------------

def test_moto_endpoint_lifecycle_is_idempotent() -> None:
    with mock_aws():
        port = SageMakerEndpoint(boto3.client("sagemaker", region_name=REGION), NAME)
        for spec in (ModelSpec("recs-champ", "s3://d/champ.tar.gz", IMAGE, ROLE_ARN),
                     ModelSpec("recs-chall", "s3://d/chall.tar.gz", IMAGE, ROLE_ARN)):
            port.ensure_model(spec)
            port.ensure_model(spec)
        assert port.describe() is None
        port.deploy("cfg-ab", VARIANTS)
        port.deploy("cfg-ab", VARIANTS)
        assert port.describe().weights() == {"champion": 90.0, "challenger": 10.0}
        port.set_weights({"champion": 1.0, "challenger": 1.0})
        port.set_weights({"champion": 50.0, "challenger": 50.0})
        assert port.describe().weights() == {"champion": 50.0, "challenger": 50.0}
