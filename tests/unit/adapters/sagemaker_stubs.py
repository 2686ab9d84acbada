"""A SageMaker client whose calls are answered by botocore's Stubber: every request is validated
against the real service model and compared with the expected parameters, and the error codes and
messages are the ones AWS sends (sources cited next to each)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.stub import Stubber

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/driftloop-sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


# Texts AWS returns, as seen in public bug reports and the API reference:
# aws/aws-sdk#165 and amazon-sagemaker-examples#2360: DescribeTrainingJob on an unknown name.
TRAINING_JOB_NOT_FOUND = ("ValidationException", "Requested resource not found.")


def training_job_exists(name: str) -> tuple[str, str]:
    # amazon-sagemaker-examples#3108, SuperCowPowers/workbench#384
    return ("ResourceInUse", "Training job names must be unique within an AWS account and region, and a "
            f"training job with this name already exists ({arn('training-job', name)})")


def endpoint_not_found(name: str) -> tuple[str, str]:
    # hashicorp/terraform-provider-aws#40048 and the SageMaker API's Could-not-find family
    return ("ValidationException", f'Could not find endpoint "{arn("endpoint", name)}".')


def model_not_found(name: str) -> tuple[str, str]:
    # the SageMaker Could-not-find family (moto sends the same text)
    return ("ValidationException", f'Could not find model "{arn("model", name)}".')


def config_exists(name: str) -> tuple[str, str]:
    # awslabs/spot-tagging-bot-for-digital-assets#2
    message = f'Cannot create already existing endpoint configuration "{arn("endpoint-config", name)}".'
    return ("ValidationException", message)


def endpoint_exists(name: str) -> tuple[str, str]:
    # aws/sagemaker-python-sdk#101, ministryofjustice/modernisation-platform-environments#9383
    return ("ValidationException", f'Cannot create already existing endpoint "{arn("endpoint", name)}".')


# The next two follow the same families; their exact texts were not found in a public report, and
# the adapters only rely on "already existing" / "in-progress endpoint" within them.
def model_exists(name: str) -> tuple[str, str]:
    return ("ValidationException", f'Cannot create already existing model "{arn("model", name)}".')


def endpoint_in_progress(name: str) -> tuple[str, str]:
    return ("ValidationException", f'Cannot update in-progress endpoint "{arn("endpoint", name)}".')


# aws/sagemaker-python-sdk#645: every SageMaker operation throttles this way.
THROTTLED = ("ThrottlingException", "Rate exceeded")


def sagemaker_client() -> Any:
    return boto3.client("sagemaker", region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@contextmanager
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    """The client and its stubber; on exit every queued answer must have been used."""
    client = sagemaker_client()
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def add_error(stubber: Stubber, method: str, error: tuple[str, str], expected: dict[str, Any] | None = None) -> None:
    stubber.add_client_error(method, service_error_code=error[0], service_message=error[1],
                             http_status_code=400, expected_params=expected)
