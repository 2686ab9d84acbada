import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.traffic.online import (
    ACTIONS,
    FeedbackCounts,
    OnlineTestConfig,
    analyse_stage,
    summarise_feedback,
)
from driftloop.traffic.stages import TrafficPlan

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


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0},
        {"min_samples_per_variant": 0},
        {"min_lift": -0.1},
        {"max_error_rate": 2},
        {"max_latency_p95_ms": 0},
        {"method": "bayes"},
        {"max_waits": -1},
        {"msprt_tau": 0},
    ],
)
def test_config_is_validated(kwargs):
    with pytest.raises(ConfigurationError):
        OnlineTestConfig(**kwargs)


def counts(variant, matured, rate, errors=0, latency=50.0, served=None):
    served = matured if served is None else served
    return FeedbackCounts(variant, served, matured, round(matured * rate), errors, latency)


PLAN = TrafficPlan()
CONFIG = OnlineTestConfig(min_samples_per_variant=500, max_waits=3)


def judge(champion, challenger, stage, config=CONFIG, waits=0):
    by_variant = {c.variant: c for c in (champion, challenger) if c is not None}
    return analyse_stage(by_variant, "champion", "challenger", stage, PLAN, config, waits)


def test_error_guardrail_rolls_back_even_with_better_conversion():
    decision = judge(counts("champion", 5000, 0.05), counts("challenger", 5000, 0.09, errors=150), 0)
    assert decision.action == "rollback" and "error rate" in decision.reason
    assert decision.weights == {"champion": 100, "challenger": 0}


def test_latency_guardrail_rolls_back():
    decision = judge(counts("champion", 5000, 0.05), counts("challenger", 5000, 0.05, latency=900.0), 1)
    assert decision.action == "rollback" and "latency" in decision.reason


def test_guardrails_wait_for_enough_requests():
    decision = judge(counts("champion", 50, 0.05), counts("challenger", 50, 0.05, errors=10), 0)
    assert decision.action == "continue" and decision.evidence["guardrail_breaches"] == []


def test_too_few_samples_waits_at_the_same_stage_then_rolls_back():
    few = counts("challenger", 120, 0.05)
    waiting = judge(counts("champion", 5000, 0.05), few, 0, waits=1)
    assert (waiting.action, waiting.next_stage_index, waiting.waits) == ("continue", 0, 2)
    assert waiting.weights == {"champion": 90, "challenger": 10}
    given_up = judge(counts("champion", 5000, 0.05), few, 0, waits=3)
    assert given_up.action == "rollback" and "not enough samples after 3 waits" in given_up.reason


def test_missing_variant_counts_as_no_samples():
    decision = judge(counts("champion", 5000, 0.05), None, 0)
    assert decision.action == "continue" and "challenger has 0/500" in decision.reason


def test_champion_without_samples_at_full_challenger_traffic_rolls_back_at_once():
    decision = judge(counts("champion", 100, 0.05), counts("challenger", 5000, 0.05), 2)
    assert decision.action == "rollback" and "waiting cannot help" in decision.reason


def test_significant_loss_rolls_back_at_the_first_stage():
    decision = judge(counts("champion", 5000, 0.06), counts("challenger", 5000, 0.04), 0)
    assert decision.action == "rollback" and "significantly worse" in decision.reason
    assert decision.evidence["test"]["significant"]


def test_passing_stage_moves_on_and_last_stage_promotes_a_win():
    champion, challenger = counts("champion", 5000, 0.05), counts("challenger", 5000, 0.07)
    first = judge(champion, challenger, 0, waits=2)
    assert (first.action, first.next_stage_index, first.waits) == ("continue", 1, 0)
    assert first.weights == {"champion": 50, "challenger": 50}
    last = judge(champion, challenger, 2)
    assert last.action == "promote" and last.next_stage_index is None
    assert last.weights == {"champion": 0, "challenger": 100}


def test_last_stage_without_a_win_rolls_back_and_says_so():
    decision = judge(counts("champion", 5000, 0.05), counts("challenger", 5000, 0.051), 2)
    assert decision.action == "rollback" and "without a win" in decision.reason


def test_min_lift_turns_a_small_significant_win_into_no_win():
    champion, challenger = counts("champion", 50_000, 0.05), counts("challenger", 50_000, 0.054)
    assert judge(champion, challenger, 2).action == "promote"
    strict = OnlineTestConfig(min_samples_per_variant=500, min_lift=0.10)
    assert judge(champion, challenger, 2, config=strict).action == "rollback"


def test_always_valid_test_promotes_early_on_a_clear_win():
    msprt = OnlineTestConfig(method="msprt", min_samples_per_variant=500)
    decision = judge(counts("champion", 20_000, 0.05), counts("challenger", 20_000, 0.07), 0, config=msprt)
    assert decision.action == "promote" and "stopping early" in decision.reason
    fixed = judge(counts("champion", 20_000, 0.05), counts("challenger", 20_000, 0.07), 0)
    assert fixed.action == "continue"  # the fixed-horizon test only promotes at the last stage


def test_decision_is_json_serialisable():
    decision = judge(counts("champion", 5000, 0.05), counts("challenger", 5000, 0.07), 1)
    assert json.loads(json.dumps(decision.to_dict()))["action"] == "continue"


@st.composite
def stage_inputs(draw):
    plan = TrafficPlan(tuple(sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=5)))))
    variants = {}
    for name in ("champion", "challenger"):
        if draw(st.booleans()) or name == "champion":
            served = draw(st.integers(0, 20_000))
            matured = draw(st.integers(0, served))
            variants[name] = FeedbackCounts(
                name,
                served,
                matured,
                draw(st.integers(0, matured)),
                draw(st.integers(0, served)),
                draw(st.none() | st.floats(0, 2000)),
            )
    config = OnlineTestConfig(
        min_samples_per_variant=draw(st.integers(1, 5000)),
        method=draw(st.sampled_from(["two_proportion", "msprt"])),
        max_waits=draw(st.integers(0, 5)),
        min_lift=draw(st.floats(0, 0.5)),
    )
    stage = draw(st.integers(0, len(plan.stages) - 1))
    return plan, variants, config, stage, draw(st.integers(0, 8))


@settings(max_examples=150, deadline=None)
@given(stage_inputs())
def test_stage_policy_always_gives_a_valid_action_and_weights(inputs):
    plan, variants, config, stage, waits = inputs
    decision = analyse_stage(variants, "champion", "challenger", stage, plan, config, waits)
    assert decision.action in ACTIONS
    assert sum(decision.weights.values()) == 100 and set(decision.weights) == {"champion", "challenger"}
    assert decision.reason
    if decision.action == "continue":
        assert decision.next_stage_index in (stage, stage + 1)
        assert decision.weights == plan.weights_for_stage(decision.next_stage_index)
        assert decision.waits == (waits + 1 if decision.next_stage_index == stage else 0)
        assert decision.waits <= config.max_waits
    else:
        assert decision.next_stage_index is None
        assert decision.weights["challenger"] == (100 if decision.action == "promote" else 0)
    if decision.action == "promote":
        assert plan.is_last(stage) or config.method == "msprt"
        assert decision.evidence["test"]["significant"] and decision.evidence["test"]["difference"] > 0
