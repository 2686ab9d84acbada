"""Shared simulator sizes for the simulator tests."""

from driftloop.simulate import SimulatorConfig

SMALL = SimulatorConfig(seed=11, n_users=300, n_items=60, events_per_month=3000)
DEFAULT = SimulatorConfig(seed=7)
