"""Follow the training job; a failed job raises TrainingFailedError."""

from driftloop.observability import step_handler
from driftloop.pipeline import training
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(training.poll, StepInvocation)
