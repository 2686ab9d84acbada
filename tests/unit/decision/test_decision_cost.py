from __future__ import annotations

import math

import pytest

from driftloop.decision import RetrainCostModel
from driftloop.errors import ConfigurationError


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("value_per_point", -1.0),
        ("value_per_point", 0.0),
        ("hourly_price", 0.0),
        ("hourly_price", -0.23),
        ("hourly_price", math.nan),
        ("startup_seconds", -1.0),
        ("ab_exposure_cost", -0.01),
        ("ab_exposure_cost", math.inf),
        ("value_per_point", "1"),
        ("value_per_point", True),
        ("default_job_seconds", 0.0),
    ],
)
def test_nonsense_parameters_are_rejected_at_construction(field, value):
    with pytest.raises(ConfigurationError, match=field):
        RetrainCostModel(**{field: value})


def test_retraining_cost_is_mean_recent_job_plus_startup_priced_plus_exposure():
    cost = RetrainCostModel(value_per_point=1.0, hourly_price=3.6, startup_seconds=100, ab_exposure_cost=2.0)
    # 3.6 $/h = $0.001 per second
    assert cost.retraining_cost([200, 400]) == pytest.approx((300 + 100) * 0.001 + 2.0)
    assert cost.retraining_cost([]) == pytest.approx((cost.default_job_seconds + 100) * 0.001 + 2.0)
    # unusable measurements fall back to the default instead of poisoning the mean
    assert cost.retraining_cost([math.nan, -5]) == cost.retraining_cost([])


def test_staleness_cost_is_points_times_value_times_days():
    cost = RetrainCostModel(value_per_point=2.0, hourly_price=1.0)
    assert cost.staleness_cost(0.03, 10) == pytest.approx(3 * 2.0 * 10)
    assert cost.staleness_cost(-0.02, 10) == 0.0
    assert cost.staleness_cost(0.02, 0) == 0.0


def test_round_trips_through_a_dict():
    cost = RetrainCostModel(value_per_point=3.0, hourly_price=0.5, startup_seconds=0, ab_exposure_cost=0)
    assert RetrainCostModel.from_dict(cost.to_dict()) == cost
