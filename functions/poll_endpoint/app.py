"""Whether the endpoint is still settling after a step changed it (read-only)."""

from driftloop.observability import step_handler
from driftloop.pipeline import rollout
from driftloop.pipeline.rollout import EndpointPollInvocation

lambda_handler = step_handler(rollout.poll_endpoint, EndpointPollInvocation)
