"""Start (or adopt) the challenger's training job."""

from driftloop.observability import step_handler
from driftloop.pipeline import training
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(training.start, StepInvocation)
