"""Merge the champion's training set with the new uploads into a new version."""

from driftloop.observability import step_handler
from driftloop.pipeline import merge
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(merge.run, StepInvocation)
