"""Record the run, release the lock, notify."""

from driftloop.observability import step_handler
from driftloop.pipeline import finalize
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(finalize.run, StepInvocation)
