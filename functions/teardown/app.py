"""The custom resource that deletes what the Lambdas created when the stack is deleted (driftloop teardown)."""

import os

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftloop.teardown_resource import handle

logger = Logger(service="driftloop")


@logger.inject_lambda_context(log_event=False)  # the event holds a pre-signed URL
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    session = boto3.session.Session()
    response = handle(event, session.client("cloudformation"), session.client("sagemaker"),
                      session.client("scheduler"), os.environ)
    logger.info("teardown answered", extra={"status": response["Status"], "reason": response["Reason"]})
    return response
