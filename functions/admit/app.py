"""Admit a trigger: de-duplicate, take the per-model lock, describe the run."""

from driftloop.observability import step_handler
from driftloop.pipeline import admit
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(admit.run, StepInvocation)
