"""Offline gate: champion vs challenger on the newest held-out data."""

from driftloop.observability import step_handler
from driftloop.pipeline import evaluate
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(evaluate.run, StepInvocation)
