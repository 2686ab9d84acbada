"""A deterministic customer-behaviour simulator that writes monthly uploads in the pipeline's schema."""

from driftloop.simulate.config import Scenario, SimulatorConfig
from driftloop.simulate.schema import CATEGORIES, GROUND_TRUTH_SCHEMA, INTERACTIONS_SCHEMA
from driftloop.simulate.simulator import Simulator

__all__ = [
    "CATEGORIES",
    "GROUND_TRUTH_SCHEMA",
    "INTERACTIONS_SCHEMA",
    "Scenario",
    "Simulator",
    "SimulatorConfig",
]
