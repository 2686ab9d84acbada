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
