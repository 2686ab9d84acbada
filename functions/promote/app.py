"""Make the challenger the champion and the new drift baseline."""

from driftloop.observability import step_handler
from driftloop.pipeline import promotion
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(promotion.promote, StepInvocation)
