"""Every endpoint config driftloop creates captures requests and responses (validated by botocore's model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagemaker_stubs import arn, endpoint_not_found, stubbed

from driftloop.adapters.endpoint import Variant
from driftloop.adapters.sagemaker_endpoint import DataCapture, SageMakerEndpoint
from driftloop.config import Settings
from driftloop.errors import ConfigurationError
from driftloop.local.template import load_app

REPO = Path(__file__).resolve().parents[3]
NAME = "recs"
VARIANTS = [Variant("champion", "recs-champ", 1.0, 1, "ml.m5.large")]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def created_config(capture: DataCapture) -> dict:
    with stubbed() as (client, stubber):
        expected = {"EndpointConfigName": "cfg", "DataCaptureConfig": capture.to_request(), "ProductionVariants": [
            {"VariantName": "champion", "ModelName": "recs-champ", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}]}
        stubber.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", "cfg")}, expected)
        stubber.add_client_error("describe_endpoint", service_error_code=endpoint_not_found(NAME)[0],
                                 service_message=endpoint_not_found(NAME)[1], http_status_code=400)
        stubber.add_response("create_endpoint", {"EndpointArn": arn("endpoint", NAME)},
                             {"EndpointName": NAME, "EndpointConfigName": "cfg"})
        SageMakerEndpoint(client, NAME, capture).deploy("cfg", VARIANTS)
    return expected["DataCaptureConfig"]


def test_the_config_captures_input_and_output_as_json_into_the_data_bucket() -> None:
    config = created_config(DataCapture("s3://data-bucket/datacapture", 25))
    assert config == {
        "EnableCapture": True, "InitialSamplingPercentage": 25, "DestinationS3Uri": "s3://data-bucket/datacapture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}


def test_the_customer_key_encrypts_the_capture() -> None:
    assert created_config(DataCapture("s3://data-bucket/datacapture", 100, KEY))["KmsKeyId"] == KEY


@pytest.mark.parametrize("percent", [0, 101])
def test_sampling_outside_1_to_100_is_refused(percent: int) -> None:
    with pytest.raises(ConfigurationError, match="1..100"):
        DataCapture("s3://b/datacapture", percent)


def test_the_template_parameter_reaches_the_settings() -> None:
    app = load_app(REPO / "template.yaml", {"DataCaptureSamplingPercent": "40"})
    environment = app.functions["UpdateWeightsFunction"].environment
    settings = Settings.from_env(environment)
    assert settings.data_capture_sampling_percent == 40 and settings.data_capture_kms_key == ""
    with pytest.raises(ConfigurationError, match="DATA_CAPTURE_SAMPLING_PERCENT"):
        Settings.from_env({**environment, "DATA_CAPTURE_SAMPLING_PERCENT": "0"})
