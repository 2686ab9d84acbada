"""The scale-out merge's coordinator: plans the map's items before it, combines the partials after it."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftloop.pipeline import scaleout
from driftloop.pipeline.scaleout import CoordinatorInvocation
from driftloop.pipeline.services import services_from_env

logger = Logger()


@logger.inject_lambda_context(log_event=False)
@event_parser(model=CoordinatorInvocation)
def lambda_handler(event: CoordinatorInvocation, context: LambdaContext) -> dict:
    step = scaleout.plan if event.phase == "plan" else scaleout.combine
    return step(event, services_from_env())
