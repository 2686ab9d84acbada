"""Judge the A/B stage: continue, promote or roll back."""

from driftloop.observability import step_handler
from driftloop.pipeline import rollout
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(rollout.analyse, StepInvocation)
