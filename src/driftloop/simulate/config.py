"""What to simulate: the size and intensities (``SimulatorConfig``) and which drifts are on (``Scenario``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from driftloop.errors import ConfigurationError

_MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class Scenario(StrEnum):
    """Which parts of the world move over time.

    ``NO_DRIFT`` keeps every distribution of month 0 (users still churn and are replaced by
    look-alikes, so tenure stays stationary). ``SEASONAL`` turns everything on: tastes rotate
    between winter and summer and drift for good (concept drift), the population and devices
    shift, new items launch and prices rise (data drift). ``POPULATION_SHIFT`` moves only the
    population and catalogue, keeping tastes as in month 0 (data drift without concept drift).
    """

    NO_DRIFT = "no_drift"
    SEASONAL = "seasonal"
    POPULATION_SHIFT = "population_shift"

    @property
    def moves_tastes(self) -> bool:
        return self is Scenario.SEASONAL

    @property
    def moves_population(self) -> bool:
        return self is not Scenario.NO_DRIFT


@dataclass(frozen=True)
class SimulatorConfig:
    """Size of the simulated shop and how strongly each kind of drift acts.

    Trend intensities (taste drift, population shift, mobile adoption, inflation) are reached at
    ``horizon_months`` and grow linearly from month 0; seasonal ones (``seasonal_strength``: log-odds
    boost of in-season categories, ``seasonal_taste_swing``: how far personal tastes turn from
    their winter to their summer version, 0..1) peak in mid-summer. A scenario that keeps a
    mechanism ignores its intensity.
    """

    seed: int = 0
    n_users: int = 2000
    n_items: int = 400
    events_per_month: int = 20_000
    start_month: str = "2025-01"
    horizon_months: int = 12
    monthly_churn: float = 0.03
    promo_rate: float = 0.05
    seasonal_strength: float = 0.6
    seasonal_taste_swing: float = 0.5
    taste_drift: float = 0.7
    population_shift: float = 1.0
    mobile_adoption: float = 0.4
    new_item_rate: float = 0.03
    new_items_from_month: int = 4
    inflation: float = 0.06

    def __post_init__(self) -> None:
        problems = []
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if self.n_users < 1:
            problems.append("n_users must be >= 1")
        if self.n_items < 12:
            problems.append("n_items must be >= 12 (at least one item per category)")
        if self.events_per_month < 1:
            problems.append("events_per_month must be >= 1")
        if not _MONTH_PATTERN.match(self.start_month):
            problems.append(f"start_month must look like 2025-01, got {self.start_month!r}")
        if self.horizon_months < 1:
            problems.append("horizon_months must be >= 1")
        if not self.new_items_from_month >= 1:
            problems.append("new_items_from_month must be >= 1 (month 0 is the original catalogue)")
        for name in (
            "monthly_churn",
            "promo_rate",
            "seasonal_taste_swing",
            "taste_drift",
            "population_shift",
            "mobile_adoption",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be within 0..1, got {value}")
        for name in ("seasonal_strength", "new_item_rate", "inflation"):
            value = getattr(self, name)
            if not 0.0 <= value <= 10.0:
                problems.append(f"{name} must be within 0..10, got {value}")
        if problems:
            raise ConfigurationError("invalid SimulatorConfig: " + "; ".join(problems))

    def month_label(self, month: int) -> str:
        """``YYYY-MM`` of simulation month ``month`` (0 is ``start_month``)."""
        return str(np.datetime64(self.start_month, "M") + month)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
