"""Whether the endpoint is still settling after a step changed it (read-only)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftloop.pipeline import rollout
from driftloop.pipeline.rollout import EndpointPollInvocation
from driftloop.pipeline.services import services_from_env

logger = Logger()


@logger.inject_lambda_context(log_event=False)
@event_parser(model=EndpointPollInvocation)
def lambda_handler(event: EndpointPollInvocation, context: LambdaContext) -> dict:
    return rollout.poll_endpoint(event, services_from_env())
