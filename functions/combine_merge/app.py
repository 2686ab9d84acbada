"""The scale-out merge's coordinator: plans the map's items before it, combines the partials after it."""

from driftloop.observability import step_handler
from driftloop.pipeline import scaleout
from driftloop.pipeline.scaleout import CoordinatorInvocation
from driftloop.pipeline.services import Services


def coordinate(event: CoordinatorInvocation, services: Services) -> dict:
    return (scaleout.plan if event.phase == "plan" else scaleout.combine)(event, services)


lambda_handler = step_handler(coordinate, CoordinatorInvocation)
