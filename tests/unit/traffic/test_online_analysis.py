import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from driftloop.errors import InvalidInputError
from driftloop.traffic.judgement import ABJudge, ABTestConfig
from driftloop.traffic.online import (
    FeedbackCounts,
    FeedbackWindow,
    analyse_stage,
    stratify_feedback,
    summarise_feedback,
)
from driftloop.traffic.stages import TrafficPlan
from driftloop.traffic.stratified import ArmCounts

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)


def _feedback(rows):
    """rows: (variant, hours_ago, converted, latency_ms, error)."""
    variants, hours, converted, latency, error = zip(*rows, strict=True)
    return pa.table(
        {
            "request_id": [f"r{i}" for i in range(len(rows))],
            "user_id": [f"u{i % 7}" for i in range(len(rows))],
            "variant": list(variants),
            "items": [["i1", "i2"]] * len(rows),
            "served_at": pa.array([NOW - timedelta(hours=h) for h in hours], pa.timestamp("us", tz="UTC")),
            "purchased_item": [None] * len(rows),
            "converted": pa.array(converted, pa.bool_()),
            "latency_ms": pa.array(latency, pa.float64()),
            "error": pa.array(error, pa.bool_()),
        }
    )


ROWS = [
    ("champion", 30, True, 10.0, False),
    ("champion", 48, False, 20.0, False),
    ("champion", 2, True, 30.0, False),  # not matured: its conversion must not count
    ("challenger", 25, True, 40.0, False),
    ("challenger", 24, None, None, True),  # exactly one window old: matured; null converted = no
    ("challenger", 1, False, 100.0, None),
]


def test_summary_counts_only_matured_conversions_and_all_errors():
    summary = summarise_feedback(_feedback(ROWS), WINDOW, NOW)
    assert list(summary) == ["challenger", "champion"]
    assert summary["champion"] == FeedbackCounts(
        "champion", 3, 2, 1, 0, float(np.quantile([10, 20, 30], 0.95))
    )
    assert summary["challenger"] == FeedbackCounts(
        "challenger", 3, 2, 1, 1, float(np.quantile([40, 100], 0.95))
    )
    assert summary["challenger"].error_rate == pytest.approx(1 / 3)
    assert summary["challenger"].conversion_rate == 0.5
    json.dumps({name: counts.to_dict() for name, counts in summary.items()})


def test_summary_accepts_pandas_and_other_time_zones():
    frame = _feedback(ROWS).to_pandas()
    from_pandas = summarise_feedback(frame, WINDOW, NOW.astimezone(datetime.now().astimezone().tzinfo))
    assert from_pandas == summarise_feedback(_feedback(ROWS), WINDOW, NOW)


def test_summary_of_empty_log_is_empty():
    assert summarise_feedback(_feedback(ROWS).slice(0, 0), WINDOW, NOW) == {}


def test_summary_rejects_bad_input():
    table = _feedback(ROWS)
    with pytest.raises(InvalidInputError, match="lacks columns"):
        summarise_feedback(table.drop_columns(["error"]), WINDOW, NOW)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        summarise_feedback(table, WINDOW, NOW.replace(tzinfo=None))
    naive = table.set_column(4, "served_at", table.column("served_at").cast(pa.timestamp("us")))
    with pytest.raises(InvalidInputError, match="served_at"):
        summarise_feedback(naive, WINDOW, NOW)
    with pytest.raises(InvalidInputError, match="negative"):
        summarise_feedback(table, -WINDOW, NOW)
    with pytest.raises(InvalidInputError):
        summarise_feedback([1, 2, 3], WINDOW, NOW)


def test_inconsistent_counts_are_rejected():
    with pytest.raises(InvalidInputError):
        FeedbackCounts("a", served=10, matured=11, conversions=0, errors=0, latency_p95_ms=None)


START = NOW - timedelta(hours=3)
WINDOWS = [FeedbackWindow(0, START, START + timedelta(hours=1)), FeedbackWindow(1, START + timedelta(hours=1), NOW)]
JUDGE = ABJudge(TrafficPlan((10, 50, 100)), ABTestConfig(min_samples_per_variant=100, max_waits=3, minimum_lift=0.1))


def _log(groups):
    """groups: (variant, minutes after START, served, conversions, errors)."""
    rows = []
    for variant, minutes, served, conversions, errors in groups:
        for i in range(served):
            rows.append((variant, (NOW - START - timedelta(minutes=minutes)).total_seconds() / 3600,
                         i < conversions, 10.0, i < errors))
    return _feedback(rows)


def test_strata_are_the_windows_in_which_both_variants_served_matured_requests():
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 100, 30, 0),
                ("champion", 70, 500, 200, 0), ("challenger", 70, 500, 200, 0),
                ("champion", 175, 50, 5, 0)])  # the last minutes: only the champion, not matured either
    result = stratify_feedback(log, [*WINDOWS, FeedbackWindow(1, NOW - timedelta(minutes=10), NOW)],
                               timedelta(0), NOW, "champion", "challenger")
    assert [(s.stage_index, s.champion, s.challenger) for s in result.strata] == [
        (0, ArmCounts(900, 270), ArmCounts(100, 30)), (1, ArmCounts(550, 205), ArmCounts(500, 200))]
    assert len(result.left_out) == 1 and "challenger 0" in result.left_out[0]
    assert result.requests_per_wait == (1050 + 50) / 2  # the mean of the (here overlapping) windows at stage 1


def test_a_higher_base_rate_at_the_larger_stage_is_not_a_lift():
    # Equal variants; conversion rises from 30 % to 40 % just as the challenger's share goes from 10 to 50 %.
    # Pooled, the challenger converts 0.38 against 0.33; within each stage they are equal.
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 100, 30, 0),
                ("champion", 70, 1000, 400, 0), ("challenger", 70, 1000, 400, 0)])
    decision = analyse_stage(log, WINDOWS, NOW, timedelta(0), "champion", "challenger", 1, JUDGE, waits=3)
    assert decision.action == "rollback" and "no significant win" in decision.reason
    assert decision.evidence["test"]["difference"] == pytest.approx(0.0)
    assert decision.weights == {"champion": 100, "challenger": 0}


def test_a_real_lift_within_the_stages_promotes_at_the_last_test_stage():
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 100, 36, 0),
                ("champion", 70, 2000, 600, 0), ("challenger", 70, 2000, 760, 0)])
    decision = analyse_stage(log, WINDOWS, NOW, timedelta(0), "champion", "challenger", 1, JUDGE, waits=0)
    assert decision.action == "promote", decision.reason
    assert decision.weights == {"champion": 0, "challenger": 100}
    assert 0.05 < decision.evidence["power"]["minimum_detectable_lift_now"] < 0.2
    json.dumps(decision.to_dict())


def test_guardrail_breach_rolls_back_before_any_test():
    log = _log([("champion", 10, 500, 150, 0), ("challenger", 10, 500, 300, 50)])
    decision = analyse_stage(log, WINDOWS, NOW, timedelta(0), "champion", "challenger", 0, JUDGE)
    assert decision.action == "rollback" and decision.reason.startswith("guardrail breached: error rate")
    assert "test" not in decision.evidence


def test_first_stage_moves_on_once_it_has_its_samples_and_waits_before():
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 60, 18, 0)])
    waiting = analyse_stage(log, WINDOWS[:1], NOW, timedelta(0), "champion", "challenger", 0, JUDGE)
    assert (waiting.action, waiting.next_stage_index, waiting.waits) == ("continue", 0, 1)
    assert waiting.weights == {"champion": 90, "challenger": 10}
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 120, 36, 0)])
    moving = analyse_stage(log, WINDOWS[:1], NOW, timedelta(0), "champion", "challenger", 0, JUDGE, waits=1)
    assert (moving.action, moving.next_stage_index, moving.waits) == ("continue", 1, 0)
    assert moving.weights == {"champion": 50, "challenger": 50}


def test_unmatured_requests_do_not_count_as_misses():
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 100, 30, 0)])
    decision = analyse_stage(log, WINDOWS[:1], NOW, timedelta(hours=24), "champion", "challenger", 0, JUDGE)
    assert decision.action == "continue" and "no window yet" in decision.reason


def test_an_unreadable_feedback_log_rolls_back_with_the_problem():
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 120, 36, 0)]).drop_columns(["converted"])
    decision = analyse_stage(log, WINDOWS, NOW, timedelta(0), "champion", "challenger", 1, JUDGE)
    assert decision.action == "rollback" and decision.reason.startswith("bad input: feedback log: ")
    assert "lacks columns" in decision.reason and decision.weights == {"champion": 100, "challenger": 0}


def test_a_stage_that_is_not_a_test_stage_rolls_back_instead_of_failing():
    log = _log([("champion", 10, 900, 270, 0), ("challenger", 10, 120, 36, 0)])
    for stage in (2, 9):
        decision = analyse_stage(log, WINDOWS[:1], NOW, timedelta(0), "champion", "challenger", stage, JUDGE)
        assert decision.action == "rollback" and f"unknown stage {stage}" in decision.reason
        assert decision.stage_index == stage


def test_the_pipeline_cuts_one_window_per_bake_labelled_with_the_stage_that_served_it():
    from driftloop.pipeline.ab_analysis import feedback_windows

    looks = [{"stage_index": 0, "at": (START + timedelta(hours=1)).isoformat()},
             {"stage_index": 1, "at": NOW.isoformat()}]
    assert feedback_windows(START, looks) == WINDOWS
    assert feedback_windows(START, []) == []
