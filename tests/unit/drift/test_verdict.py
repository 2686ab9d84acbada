"""The drift step's decision (drift/verdict.py) on every branch, without AWS."""

from __future__ import annotations

import pytest

from driftloop.drift.verdict import DriftFindings, PolicyOpinion, trigger_reasons

KEEP = PolicyOpinion("auto", retrain=False, reason="expected gain 0.4 < cost 1.2")
RETRAIN = PolicyOpinion("auto", retrain=True, reason="expected gain 2.0 > cost 1.2")
STEADY = "conversion steady"
DROP = "conversion dropped 18% since d7"


def findings(**overrides) -> DriftFindings:
    values = {"new_uploads": 2, "has_champion": True, "data_drift": "warn", "data_reasons": ("price drifted",),
              "policy": KEEP, "concept_reason": STEADY}
    return DriftFindings(**(values | overrides))


def test_a_first_deployment_with_data_retrains():
    verdict = DriftFindings(new_uploads=1, has_champion=False).verdict()
    assert verdict.decision == "retrain"
    assert verdict.reasons == ["no champion yet: first deployment"] and verdict.overridden_by == []


def test_a_first_deployment_without_data_cannot_retrain_and_says_so():
    verdict = DriftFindings(new_uploads=0, has_champion=False).verdict()
    assert verdict.decision == "none"
    assert verdict.reasons == ["no champion yet: first deployment",
                               "a retrain was asked for, but there is no new data to retrain on"]


def test_the_policy_decides_when_nothing_forces():
    verdict = findings(policy=RETRAIN).verdict()
    assert verdict.decision == "retrain"
    assert verdict.reasons == ["auto policy: expected gain 2.0 > cost 1.2", "price drifted", STEADY]
    assert verdict.overridden_by == []


@pytest.mark.parametrize(("data_drift", "decision"), [("warn", "warn"), ("retrain", "warn"), ("none", "none")])
def test_drift_the_policy_does_not_retrain_for_is_a_warning(data_drift, decision):
    verdict = findings(data_drift=data_drift).verdict()
    assert verdict.decision == decision
    assert verdict.reasons[0] == "auto policy: expected gain 0.4 < cost 1.2"


def test_a_forcing_trigger_overrides_a_policy_that_would_keep_the_champion():
    forced = ("retraining requested: new catalogue",)
    verdict = findings(forced=forced).verdict()
    assert verdict.decision == "retrain"
    assert verdict.reasons[:2] == [forced[0], "retraining although the auto policy: expected gain 0.4 < cost 1.2 "
                                   "(alone it would keep the champion)"]
    assert verdict.overridden_by == list(forced)


def test_a_forcing_trigger_with_a_policy_that_retrains_overrides_nothing():
    verdict = findings(policy=RETRAIN, forced=("alarm a is in ALARM: x",)).verdict()
    assert verdict.decision == "retrain" and verdict.overridden_by == []
    assert verdict.reasons[1] == "auto policy: expected gain 2.0 > cost 1.2"


def test_a_conversion_drop_retrains_and_comes_first():
    verdict = findings(concept_reason=DROP, concept_detected=True, data_drift="none").verdict()
    assert verdict.decision == "retrain"
    assert verdict.reasons[0] == DROP and STEADY not in verdict.reasons
    assert verdict.overridden_by == [DROP]


def test_without_new_uploads_nothing_is_compared():
    verdict = findings(new_uploads=0, data_drift=None, policy=None).verdict()
    assert verdict.decision == "none"
    assert verdict.reasons == ["no new uploads to compare", STEADY]


def test_without_new_uploads_a_forced_retrain_or_a_conversion_drop_cannot_retrain():
    verdict = findings(new_uploads=0, data_drift=None, policy=None, forced=("alarm a is in ALARM: x",),
                       concept_reason=DROP, concept_detected=True).verdict()
    assert verdict.decision == "none"
    assert verdict.reasons == [DROP, "alarm a is in ALARM: x", "no new uploads to compare",
                               "a retrain was asked for, but there is no new data to retrain on",
                               "the conversion drop asks for a retrain, but there is no new data to retrain on"]


def test_the_verdict_is_plain_data():
    assert findings().verdict().to_dict() == {
        "decision": "warn", "reasons": ["auto policy: expected gain 0.4 < cost 1.2", "price drifted", STEADY],
        "overridden_by": []}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"new_uploads": -1}, "new_uploads must be an integer >= 0"),
    ({"new_uploads": 1.5}, "new_uploads must be an integer >= 0"),
    ({"data_drift": "maybe"}, "data_drift must be one of"),
    ({"policy": None}, "needs the retrain policy's opinion"),
    ({"data_drift": None}, "needs the data drift report's decision"),
    ({"concept_reason": None, "concept_detected": True}, "a detected conversion drop needs its reason"),
    ({"has_champion": False, "policy": None, "data_drift": None}, "the conversion check needs a champion"),
])
def test_inconsistent_findings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        findings(**overrides)


@pytest.mark.parametrize(("trigger_type", "detail", "violations", "expected"), [
    ("monitor_report", {}, 3, ("Model Monitor reported 3 drift or model-quality violations",)),
    ("monitor_report", {}, 0, ()),
    ("alarm", {"alarm_name": "conv", "state_reason": "x" * 300}, 0, (f"alarm conv is in ALARM: {'x' * 200}",)),
    ("manual", {}, 0, ("retraining requested: manual request",)),
    ("manual", {"force": False, "reason": "deferred"}, 0, ()),
    ("upload", {}, 0, ()),
    ("schedule", {}, 0, ()),
])
def test_what_a_trigger_forces(trigger_type, detail, violations, expected):
    assert trigger_reasons(trigger_type, detail, violations) == expected


def test_a_negative_violation_count_is_refused():
    with pytest.raises(ValueError, match="drift_violations"):
        trigger_reasons("monitor_report", {}, -1)
