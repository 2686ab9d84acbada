"""One item of the scale-out merge's Distributed Map: its uploads as partial versions, and their drift summary."""

from driftloop.observability import step_handler
from driftloop.pipeline import scaleout
from driftloop.pipeline.scaleout import MergePartsItem

lambda_handler = step_handler(scaleout.merge_parts, MergePartsItem)
