"""Make the challenger the champion and the new drift baseline."""

from driftloop.observability import step_handler
from driftloop.pipeline import rollout
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(rollout.promote, StepInvocation)
