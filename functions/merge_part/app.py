"""One item of the scale-out merge's Distributed Map: its uploads as partial versions, and their drift summary."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftloop.pipeline import scaleout
from driftloop.pipeline.scaleout import MergePartsItem
from driftloop.pipeline.services import services_from_env

logger = Logger()


@logger.inject_lambda_context(log_event=False)
@event_parser(model=MergePartsItem)
def lambda_handler(event: MergePartsItem, context: LambdaContext) -> dict:
    return scaleout.merge_parts(event, services_from_env())
