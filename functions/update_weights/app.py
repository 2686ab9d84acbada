"""Put the challenger on the endpoint at this stage's weight."""

from driftloop.observability import step_handler
from driftloop.pipeline import rollout
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(rollout.update_weights, StepInvocation)
