"""The power report on traffic so thin that the waits it needs exceed any number."""

from __future__ import annotations

from driftloop.traffic.judgement import ABJudge, ABTestConfig
from driftloop.traffic.stages import TrafficPlan

JUDGE = ABJudge(TrafficPlan((10, 50, 100)), ABTestConfig(minimum_lift=0.10, min_samples_per_variant=300, max_waits=3))
COUNTS = [{"stage": 0, "champion": {"served": 300, "conversions": 1},
           "challenger": {"served": 300, "conversions": 0}}]


def test_a_vanishing_request_rate_gives_no_wait_count_instead_of_an_overflow():
    verdict = JUDGE.judge_counts(COUNTS, waits=0, requests_per_wait=5e-324)
    assert verdict.action == "rollback" and "by the end of the test" in verdict.reason  # no more traffic will come
    assert verdict.power["requests_needed"] > 0 and verdict.power["waits_needed"] is None


def test_a_small_request_rate_still_counts_its_waits():
    verdict = JUDGE.judge_counts(COUNTS, waits=0, requests_per_wait=1.0)
    assert verdict.action == "continue"
    assert verdict.power["waits_needed"] == verdict.power["requests_needed"]


def test_a_champion_that_never_converted_is_judged_not_crashed():
    silent_champion = [{"stage": 0, "champion": {"served": 300, "conversions": 0},
                        "challenger": {"served": 300, "conversions": 1}}]
    verdict = JUDGE.judge_counts(silent_champion)
    assert verdict.action == "continue" and verdict.test["relative_lift"] is None
    assert 0 < verdict.power["information_needed"] < float("inf")


def test_a_silent_champion_s_underpowered_warning_reads():
    silent_champion = [{"stage": 0, "champion": {"served": 300, "conversions": 0},
                        "challenger": {"served": 300, "conversions": 1}}]
    verdict = JUDGE.judge_counts(silent_champion, requests_per_wait=1.0)
    assert "lift of n/a (the champion never converted)" in verdict.power["warning"]


def test_waits_beyond_max_waits_at_the_last_stage_end_the_test():
    counts = [{"stage": 1, "champion": {"served": 300, "conversions": 30},
               "challenger": {"served": 300, "conversions": 31}}]
    verdict = JUDGE.judge_counts(counts, waits=5, requests_per_wait=301.0)
    assert verdict.action == "rollback" and "by the end of the test" in verdict.reason
    assert verdict.power["information_at_end"] == verdict.power["information"]
