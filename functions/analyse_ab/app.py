"""Judge the A/B stage: continue, promote or roll back."""

from driftloop.observability import step_handler
from driftloop.pipeline import ab_analysis
from driftloop.pipeline.invocation import StepInvocation

lambda_handler = step_handler(ab_analysis.analyse, StepInvocation)
