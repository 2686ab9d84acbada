"""Admit's rules (admission.py) on every branch, without AWS."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from driftloop.admission import DEFERRED, DUPLICATE, AdmissionRules, iso, respects_cooldown
from driftloop.triggers import Trigger

RUN = {"run_id": "20250801T000512Z-upload-abc", "model": "recommender", "trigger": {"type": "upload"},
       "started_at": "2025-08-01T00:05:12Z", "execution": "arn:exec-2"}
PROMOTED = datetime(2025, 8, 1, tzinfo=UTC)
CHAMPION = {"run_id": "r0", "promoted_at": PROMOTED.isoformat()}
rules = AdmissionRules(cooldown_hours=24)


def trigger(kind: str, **detail) -> Trigger:
    return Trigger(type=kind, source="test", event_id="e", time="2025-08-01T00:05:12Z", detail=detail)


def test_a_redelivered_trigger_is_a_duplicate_with_its_own_derived_id():
    first = rules.duplicate(RUN, first_execution="arn:exec-1", execution="arn:exec-2")
    again = rules.duplicate(RUN, first_execution="arn:exec-1", execution="arn:exec-2")
    other = rules.duplicate(RUN, first_execution="arn:exec-1", execution="arn:exec-3")
    assert first == again and first.run["run_id"] != other.run["run_id"]
    assert first.run["run_id"].startswith(f"{RUN['run_id']}-dup-") and first.run["duplicate_of"] == RUN["run_id"]
    assert (first.admitted, first.outcome) == (False, DUPLICATE)
    assert first.reason == "this trigger was already admitted by execution arn:exec-1"
    assert RUN["run_id"] == "20250801T000512Z-upload-abc", "the caller's run is not changed"


def test_an_older_event_after_a_newer_one_is_a_duplicate():
    decision = rules.out_of_order(RUN, "incoming/a.csv", "0001", later="00000002")
    assert (decision.admitted, decision.outcome, decision.run) == (False, DUPLICATE, RUN)
    assert "newer version of incoming/a.csv (sequencer 2) came first; this one (0001)" in decision.reason


def test_an_upload_already_merged_is_a_duplicate_with_the_reason_given():
    decision = rules.already_merged(RUN, "incoming/a.csv is in the champion's training data")
    assert decision.to_dict() == {"admitted": False, "outcome": DUPLICATE, "run": RUN,
                                  "reason": "incoming/a.csv is in the champion's training data"}


@pytest.mark.parametrize(("hours_after", "ends"), [(1, PROMOTED.timestamp() + 86_400), (23.99, PROMOTED.timestamp()
                                                   + 86_400), (24, None), (30, None)])
def test_the_cooldown_holds_for_its_hours_after_a_promotion(hours_after, ends):
    assert rules.cooldown_ends(CHAMPION, now=PROMOTED.timestamp() + hours_after * 3600) == ends


def test_without_a_champion_or_with_a_zero_cooldown_nothing_waits():
    assert rules.cooldown_ends(None, now=0.0) is None
    assert AdmissionRules(cooldown_hours=0).cooldown_ends(CHAMPION, now=PROMOTED.timestamp()) is None


def test_only_a_persons_forced_retrain_skips_the_cooldown():
    assert not respects_cooldown(trigger("manual"))
    assert not respects_cooldown(trigger("manual", force=True))
    assert respects_cooldown(trigger("manual", force=False))
    for kind in ("upload", "alarm", "schedule", "monitor_report"):
        assert respects_cooldown(trigger(kind))


def test_the_schedule_fires_the_whole_second_after_the_cooldown_or_after_now():
    ends = PROMOTED.timestamp() + 86_400.25
    assert rules.schedule_time(ends, now=ends - 3600).timestamp() == math.ceil(ends) + 1
    assert rules.schedule_time(ends, now=ends + 10.5).timestamp() == math.ceil(ends + 10.5) + 1


def test_a_trigger_in_the_cooldown_is_deferred_to_the_scheduled_run():
    decision = rules.deferred_by_cooldown(RUN, PROMOTED.timestamp() + 86_400, "2025-08-02T00:00:01+00:00")
    assert (decision.admitted, decision.outcome) == (False, DEFERRED)
    assert decision.reason == ("cool-down after the last promotion until 2025-08-02T00:00:00.000+00:00; "
                               "its data joins the run scheduled for 2025-08-02T00:00:01+00:00")


def test_a_trigger_while_another_run_holds_the_lock_is_coalesced():
    decision = rules.deferred_by_lock(RUN, holder="r9", expires_at=PROMOTED.timestamp())
    assert (decision.admitted, decision.outcome) == (False, DEFERRED)
    assert decision.reason == ("run r9 holds the lock until 2025-08-01T00:00:00.000+00:00; "
                               "this trigger is coalesced into the next run")


def test_an_admitted_run_takes_over_the_pending_triggers_and_counts_the_others():
    decision = rules.admitted(RUN, "upload", PROMOTED.timestamp(), first_deployment=False,
                              pending=["mine", "other-1", "other-2"], own_key="mine")
    assert decision.to_dict() == {
        "admitted": True, "reason": "upload trigger admitted; lock held until 2025-08-01T00:00:00.000+00:00",
        "coalesced_triggers": 2,
        "run": {**RUN, "lock_expires_at": iso(PROMOTED.timestamp()), "first_deployment": False}}
    alone = rules.admitted(RUN, "manual", 0.0, first_deployment=True, pending=[], own_key="mine")
    assert alone.coalesced_triggers == 0 and alone.run["first_deployment"] is True


@pytest.mark.parametrize("hours", [-1, float("nan"), float("inf"), True, "24", None])
def test_a_cooldown_that_is_not_a_number_of_hours_is_refused(hours):
    with pytest.raises(ValueError, match="cooldown_hours must be a number >= 0"):
        AdmissionRules(cooldown_hours=hours)
