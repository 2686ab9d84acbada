"""Compute drift of the new uploads against the champion's baseline."""

from driftloop.observability import step_handler
from driftloop.pipeline import drift
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(drift.run, StepInvocation)
