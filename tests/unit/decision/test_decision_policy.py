from __future__ import annotations

import json
import math

import pytest

from driftloop.decision import (
    AccuracyEstimate,
    ChallengerGain,
    CostAwareRetrainPolicy,
    DriftRetrainPolicy,
    RetrainCostModel,
    TriggerSignals,
    make_policy,
)
from driftloop.errors import ConfigurationError, InvalidInputError

# $1 per point-day; a retrain costs exactly $10 (no job time, no start-up)
COST = RetrainCostModel(value_per_point=1.0, hourly_price=1.0, startup_seconds=0, ab_exposure_cost=10.0)
UNMEASURED = AccuracyEstimate.not_measurable("the upload has no purchases")


def _measured(ndcg, half_width=0.01):
    return AccuracyEstimate(ndcg, ndcg - half_width, ndcg + half_width, 0.3, 400)


def _week(age, accuracy=UNMEASURED, novelty=None, drift=None):
    return TriggerSignals(7.0, accuracy, novelty, None, age, 100, drift)


def test_cumulative_threshold_with_the_prior_alone():
    # 0.001 NDCG per missed day: the next week's shortfall after d days is 0.1 d points, costing 0.7 d dollars
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    first = policy.update(_week(7))  # nothing missed yet; next week: 0.7 points -> $4.90
    assert not first.retrain and first.staleness_cost == pytest.approx(4.9)
    second = policy.update(_week(14))  # this week cost $4.90; the next $9.80: $14.70 >= $10
    assert second.retrain and second.staleness_cost == pytest.approx(14.7)
    assert second.retraining_cost == pytest.approx(10.0 + COST.default_job_seconds / 3600)
    assert second.expected_gain == pytest.approx(0.014)
    assert "reaches the retraining cost" in second.reasons[0]


def test_staleness_resets_after_a_retrain_and_realised_gains_steer_the_rate():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    policy.update(_week(7))
    policy.retrained(job_seconds=60)
    assert policy.accumulated_staleness == 0.0
    for _ in range(2):  # two precise measurements: retraining gained nothing after 7 missed days
        policy.observe_gain(0.0, age_days=7, standard_error=0.001)
    rate, low, high = policy.gain_per_day()
    assert 0 < rate < 0.00002 and low < 0 < high
    decisions = [policy.update(_week(age)) for age in (7, 14, 21, 28)]
    assert not any(decision.retrain for decision in decisions)


def test_gains_weigh_by_their_precision():
    precise, noisy = (CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001) for _ in range(2))
    precise.observe_gain(0.07, age_days=7, standard_error=0.005)  # 700 users
    noisy.observe_gain(0.07, age_days=7, standard_error=0.05)  # 20 users: barely moves the prior
    assert precise.gain_per_day()[0] > 0.006
    assert 0.001 < noisy.gain_per_day()[0] < 0.0015
    unknown = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    unknown.observe_gain(0.07, age_days=7)  # no error given: as uncertain as the prior
    assert unknown.gain_per_day()[0] == pytest.approx((0.001 + 0.01) / 2)


def test_realised_gain_at_retrain_is_recorded_against_the_last_missed_days():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.0)
    policy.update(_week(21))  # the upload began after 14 missed days
    policy.retrained(job_seconds=30, realised_gain=0.028, gain_standard_error=0.014)
    assert policy.gain_rates == [pytest.approx(0.002)] and policy.gain_rate_errors == [pytest.approx(0.001)]
    assert policy.job_seconds == [30.0]


def test_novelty_and_decline_raise_the_estimate():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.0)
    baseline = policy.update(_week(7, _measured(0.20), novelty=0.0))
    assert baseline.expected_gain == 0.0 and not baseline.retrain
    novel = policy.update(_week(14, _measured(0.20), novelty=0.5))
    assert novel.expected_gain == pytest.approx(0.10) and novel.retrain
    assert "from novelty" in novel.reasons[1]
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.0)
    policy.update(_week(7, _measured(0.20)))
    noisy = policy.update(_week(14, _measured(0.19, half_width=0.05)))  # inside the noise: no decline
    assert noisy.gain_sources["measured_decline"] == 0.0
    clear = policy.update(_week(21, _measured(0.12)))
    assert clear.gain_sources["measured_decline"] == pytest.approx(0.07) and clear.retrain


def test_unmeasurable_accuracy_falls_back_to_the_other_signals():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    decisions = [policy.update(_week(age)) for age in (7, 14)]
    assert [decision.retrain for decision in decisions] == [False, True]
    assert all("accuracy not measurable" in decision.reasons[-1] for decision in decisions)
    assert all(math.isfinite(decision.staleness_cost) for decision in decisions)


def test_decision_is_recomputable_from_its_record():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    policy.update(_week(7, _measured(0.2), novelty=0.01))
    record = json.loads(json.dumps(policy.update(_week(14, _measured(0.18), novelty=0.02)).to_dict()))
    state = record["parameters"]["state_before_retrain"]
    cost = RetrainCostModel.from_dict(record["parameters"]["cost"])
    signals = TriggerSignals.from_dict(record["signals"])
    upcoming = cost.staleness_cost(record["expected_gain"], signals.period_days)
    assert record["staleness_cost"] == pytest.approx(state["accumulated_staleness"] + upcoming)
    assert record["retrain"] == (record["staleness_cost"] >= record["retraining_cost"])


def test_state_round_trip_continues_the_same_decisions():
    original = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.0005)
    original.update(_week(7, _measured(0.2)))
    original.observe_gain(0.01, age_days=14, standard_error=0.004)
    restored = make_policy("auto", COST, json.loads(json.dumps(original.state())), prior_gain_per_day=0.0005)
    assert restored.state() == original.state()
    signals = _week(14, _measured(0.19))
    assert restored.update(signals).to_dict() == original.update(signals).to_dict()


def test_state_of_another_policy_or_malformed_state_is_refused():
    with pytest.raises(ConfigurationError, match="cannot restore"):
        make_policy("auto", COST, {"policy": "drift"})
    with pytest.raises(InvalidInputError, match="malformed"):
        make_policy("auto", COST, {"policy": "auto", "gain_rates": ["x"]})
    with pytest.raises(InvalidInputError, match="JSON object"):
        make_policy("auto", COST, ["auto"])


def test_drift_policy_follows_the_drift_check_and_still_prices_the_decision():
    policy = DriftRetrainPolicy(COST)
    assert not policy.update(_week(7, drift="warn")).retrain
    assert "did not run" in policy.update(_week(14)).reasons[0]
    decision = policy.update(_week(21, drift="retrain"))
    assert decision.retrain and decision.policy == "drift" and decision.staleness_cost > 0


def test_schedule_policy_retrains_when_the_champion_is_old_enough():
    policy = make_policy("schedule", COST, every_days=14)
    assert [policy.update(_week(age)).retrain for age in (7, 14)] == [False, True]
    assert policy.parameters()["every_days"] == 14.0


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sometimes", {}, "must be one of"),
        ("auto", {"prior_gain_per_day": -0.1}, "prior_gain_per_day"),
        ("auto", {"memory": 0}, "memory"),
        ("auto", {"prior_gain_sd_per_day": 0}, "prior_gain_sd_per_day"),
        ("schedule", {"every_days": 0}, "every_days"),
        ("auto", {"every_days": 7}, "unexpected keyword"),
    ],
)
def test_nonsense_policy_parameters_are_configuration_errors(name, params, message):
    with pytest.raises(ConfigurationError, match=message):
        make_policy(name, COST, **params)


def test_update_refuses_something_that_is_not_signals():
    with pytest.raises(InvalidInputError):
        CostAwareRetrainPolicy(COST).update({"period_days": 7})


def test_a_gain_after_the_first_upload_counts_against_the_champions_age():
    """The upload covered everything since training (nothing was missed when it began): the default
    age is the champion's age, so the evaluation's gain is not dropped."""
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.0)
    policy.update(TriggerSignals(10.0, UNMEASURED, None, None, 10.0, 100, None))
    policy.retrained(job_seconds=60, realised_gain=0.01)
    assert policy.gain_rates == [pytest.approx(0.001)]


def _challenged(age, gain, error, missed_days=3.5):
    measured = ChallengerGain(gain, gain - 2 * error, gain + 2 * error, error, 400, missed_days)
    return TriggerSignals(7.0, UNMEASURED, None, None, age, 100, None, challenger_gain=measured)


def test_a_challenger_measured_on_the_first_upload_decides_before_any_retrain():
    # The prior alone (0.001 per missed day) keeps the champion after its first week ($4.90 < $10).
    assert not CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001).update(_week(7)).retrain
    # A challenger fitted on the first half of the week gained 1.75 points after 3.5 missed days: 0.005 per
    # day, measured far more precisely than the prior; the next week (7 missed days) would cost ~$24.
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    decision = policy.update(_challenged(7, 0.0175, 0.001))
    assert decision.retrain
    rate = decision.gain_sources["gain_per_day"]
    assert 0.0045 < rate < 0.005
    assert decision.expected_gain == pytest.approx(rate * 7)
    assert decision.gain_sources["challenger_gain"] == 0.0175
    assert any("challenger fitted on 3.5 more days of data gained +0.0175" in reason for reason in decision.reasons)
    # The measurement is remembered like a retrain's realised gain, with its precision.
    assert policy.state()["gain_rates"] == [pytest.approx(0.005)]


def test_a_noisy_challenger_barely_moves_the_prior():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    decision = policy.update(_challenged(7, 0.0175, 0.05))  # +1.75 points give or take 5: noise
    assert not decision.retrain
    assert decision.gain_sources["gain_per_day"] < 0.0011


def test_a_challenger_with_nothing_missed_tells_nothing():
    policy = CostAwareRetrainPolicy(COST, prior_gain_per_day=0.001)
    decision = policy.update(_challenged(7, 0.0, 0.001, missed_days=0.0))
    assert policy.state()["gain_rates"] == []
    assert decision.gain_sources["gain_per_day"] == pytest.approx(0.001)
