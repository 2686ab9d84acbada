from __future__ import annotations

import pytest
from sim_fixtures import SMALL

from driftloop.simulate import Scenario, Simulator


@pytest.fixture(scope="session")
def small_seasonal() -> Simulator:
    return Simulator(SMALL, Scenario.SEASONAL)


@pytest.fixture(scope="session")
def small_stationary() -> Simulator:
    return Simulator(SMALL, Scenario.NO_DRIFT)
