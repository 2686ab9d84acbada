import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.traffic.stages import TrafficPlan


def test_default_plan_is_10_50_100():
    plan = TrafficPlan()
    assert plan.stages == (10, 50, 100)
    assert [plan.weights_for_stage(i) for i in range(3)] == [
        {"champion": 90, "challenger": 10},
        {"champion": 50, "challenger": 50},
        {"champion": 0, "challenger": 100},
    ]
    assert plan.is_last(2) and not plan.is_last(1)


def test_weights_use_variant_names():
    assert TrafficPlan((25, 100)).weights_for_stage(0, "blue", "green") == {"blue": 75, "green": 25}


def test_parse_accepts_spaces_and_percent_signs():
    assert TrafficPlan.parse(" 5%, 20 ,100") == TrafficPlan((5, 20, 100))
    assert TrafficPlan.parse("50").stages == (50,)


@pytest.mark.parametrize(
    "text", ["", "10,,100", "ten,100", "10,5", "10,10,100", "0,100", "10,101", "1.5,100"]
)
def test_parse_rejects_bad_plans(text):
    with pytest.raises(ConfigurationError):
        TrafficPlan.parse(text)


def test_plan_rejects_non_integer_weights():
    with pytest.raises(ConfigurationError):
        TrafficPlan((10.0, 100))
    with pytest.raises(ConfigurationError):
        TrafficPlan((True, 100))


def test_stage_index_out_of_range_is_invalid_input():
    with pytest.raises(InvalidInputError):
        TrafficPlan().weights_for_stage(3)
    with pytest.raises(InvalidInputError):
        TrafficPlan().weights_for_stage(-1)


def test_same_variant_for_both_roles_is_rejected():
    with pytest.raises(ConfigurationError):
        TrafficPlan().weights_for_stage(0, "a", "a")


plans = st.sets(st.integers(1, 100), min_size=1, max_size=8).filter(lambda s: s != {100}).map(
    lambda s: TrafficPlan(tuple(sorted(s))))


@given(plans)
def test_weights_always_sum_to_100_and_challenger_share_grows(plan):
    weights = [plan.weights_for_stage(i) for i in range(len(plan.stages))]
    assert all(sum(w.values()) == 100 and min(w.values()) >= 0 for w in weights)
    shares = [w["challenger"] for w in weights]
    assert shares == sorted(shares) and len(set(shares)) == len(shares)
    assert TrafficPlan.parse(",".join(map(str, plan.stages))) == plan
    assert plan.to_dict() == {"stages": list(plan.stages), "holdback": 0,
                              "test_stages": [p for p in plan.stages if p < 100]}
    assert plan.last_test_stage_index == max(i for i, p in enumerate(plan.stages) if p < 100)


def test_the_move_to_100_percent_is_the_promotion_not_a_test_stage():
    assert TrafficPlan((10, 50, 100)).test_stage_indices == (0, 1)
    assert TrafficPlan((10, 50)).test_stage_indices == (0, 1)
    with pytest.raises(ConfigurationError, match="no stage where both variants serve"):
        TrafficPlan((100,))


def test_holdback_keeps_the_champion_at_every_stage_and_makes_the_last_stage_a_test():
    plan = TrafficPlan.parse("10,50,100", holdback=5)
    assert plan.test_stage_indices == (0, 1, 2) and plan.last_test_stage_index == 2
    assert plan.weights_for_stage(2) == {"champion": 5, "challenger": 95}
    assert TrafficPlan((100,), holdback=10).weights_for_stage(0) == {"champion": 10, "challenger": 90}


@pytest.mark.parametrize("holdback", [-1, 100, 2.5, True])
def test_bad_holdback_is_a_configuration_error(holdback):
    with pytest.raises(ConfigurationError):
        TrafficPlan((10, 100), holdback)


def test_holdback_that_merges_two_stages_is_rejected():
    with pytest.raises(ConfigurationError, match="same stage"):
        TrafficPlan((10, 50, 100), holdback=50)
