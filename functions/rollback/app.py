"""Champion back at 100%, challenger removed (no-op if nothing moved)."""

from driftloop.observability import step_handler
from driftloop.pipeline import rollout
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(rollout.rollback, StepInvocation)
