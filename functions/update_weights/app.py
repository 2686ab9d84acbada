"""Put the challenger on the endpoint at this stage's weight."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftloop.pipeline import rollout
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import services_from_env

logger = Logger()


@logger.inject_lambda_context(log_event=False)
@event_parser(model=StepInvocation)
def lambda_handler(event: StepInvocation, context: LambdaContext) -> dict:
    return rollout.update_weights(event, services_from_env())
