from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from driftloop.decision import (
    AccuracyEstimate,
    ChallengerGain,
    TriggerSignals,
    measure_challenger_gain,
    measure_signals,
)
from driftloop.decision.signals import bootstrap_interval
from driftloop.errors import InvalidInputError
from driftloop.model.recommender import Recommender

UTC = timezone.utc  # noqa: UP017
DAY = datetime(2026, 1, 1, tzinfo=UTC)


def _table(rows, event="purchase", start=DAY):
    return pa.table(
        {
            "user_id": [user for user, _ in rows],
            "item_id": [item for _, item in rows],
            "event_time": [start + timedelta(hours=index) for index in range(len(rows))],
            "event_type": [event] * len(rows),
        }
    )


# Two taste groups: users u0..u9 buy a*, v0..v9 buy b*.
TASTE_GROUPS = [(f"u{user}", f"a{item}") for user in range(10) for item in range(4) if (user + item) % 4 != 0] + [
    (f"v{user}", f"b{item}") for user in range(10) for item in range(4) if (user + item) % 4 != 0
]


@pytest.fixture(scope="module")
def champion() -> Recommender:
    return Recommender.fit(_table(TASTE_GROUPS))


def _signals(model, upload, **kwargs):
    defaults = {"histories": None, "days_since_training": 7.0, "interactions_since_training": 10, "data_drift": None}
    return measure_signals(model, upload, **{**defaults, **kwargs})


def test_returning_users_are_scored_with_an_interval(champion):
    # u0 never bought a0, v1 never bought b3: each buys the item its own group shares
    upload = _table([("u0", "a0"), ("v1", "b3"), ("new", "a1")])
    signals = _signals(champion, upload)
    accuracy = signals.accuracy
    assert accuracy.users == 2 and accuracy.reason is None
    assert accuracy.ndcg_at_10 == pytest.approx(1.0) and accuracy.hit_rate_at_10 == 1.0
    assert accuracy.ci_low <= accuracy.ndcg_at_10 <= accuracy.ci_high
    assert signals.user_novelty == pytest.approx(1 / 3) and signals.item_novelty == 0.0
    assert signals.period_days == 1.0  # a span of two hours counts as one day


def test_novel_items_count_and_score_zero(champion):
    upload = _table([("u0", "brand-new"), ("u0", "a0"), ("u1", "brand-new")])
    signals = _signals(champion, upload)
    assert signals.item_novelty == pytest.approx(2 / 3)
    assert signals.accuracy.users == 2
    assert 0 < signals.accuracy.ndcg_at_10 < 1


@pytest.mark.parametrize(
    ("upload", "why"),
    [
        (_table([("u0", "a0")], event="view"), "the upload has no purchases"),
        (_table([("stranger", "a0")]), "no returning users among the buyers"),
        (_table([("u1", "a1")]), "returning users bought nothing new"),
        (_table([]).cast(_table([("x", "y")]).schema), "the upload has no purchases"),
    ],
)
def test_unmeasurable_accuracy_says_why_and_never_crashes(champion, upload, why):
    signals = _signals(champion, upload)
    assert signals.accuracy == AccuracyEstimate.not_measurable(why)
    assert signals.accuracy.reason == f"accuracy not measurable: {why}"


def test_recent_histories_make_a_stranger_returning_and_exclude_what_they_bought(champion):
    upload = _table([("stranger", "a0"), ("stranger", "a1")])
    signals = _signals(champion, upload, histories={"stranger": ["a1", "a2"]})
    assert signals.accuracy.users == 1
    # a1 was bought since training: not a target any more; a0 is, and the item-item model finds it
    assert signals.accuracy.ndcg_at_10 > 0.5


def test_period_days_default_to_the_upload_span(champion):
    upload = _table([("u0", "a0"), ("v1", "b3")]).set_column(
        2, "event_time", pa.array([DAY, DAY + timedelta(days=6, hours=12)], pa.timestamp("us", tz="UTC"))
    )
    assert _signals(champion, upload).period_days == pytest.approx(6.5)
    assert _signals(champion, upload, period_days=7.0).period_days == 7.0


def test_signals_round_trip_through_json(champion):
    signals = _signals(champion, _table([("u0", "a0")]), data_drift="warn")
    restored = TriggerSignals.from_dict(json.loads(json.dumps(signals.to_dict())))
    assert restored == signals


@pytest.mark.parametrize(
    "changes",
    [{"period_days": 0.0}, {"days_since_training": -1.0}, {"data_drift": "maybe"}, {"item_novelty": 1.5}],
)
def test_signals_reject_nonsense(changes):
    fields = {
        "period_days": 7.0,
        "accuracy": AccuracyEstimate.not_measurable("x"),
        "item_novelty": None,
        "user_novelty": None,
        "days_since_training": 7.0,
        "interactions_since_training": 1,
        "data_drift": None,
    }
    with pytest.raises(InvalidInputError):
        TriggerSignals(**{**fields, **changes})


@pytest.mark.parametrize(
    "record",
    [
        {"period_days": 7},
        {"period_days": 7, "accuracy": "high", "days_since_training": 7, "interactions_since_training": 1},
        {"period_days": "soon", "accuracy": {}, "days_since_training": 7, "interactions_since_training": 1},
    ],
)
def test_malformed_signal_records_are_one_clear_error(record):
    with pytest.raises(InvalidInputError, match="incomplete or malformed"):
        TriggerSignals.from_dict(record)


@pytest.mark.parametrize(
    "fields",
    [
        {"ndcg_at_10": 0.1, "ci_low": None, "ci_high": 0.2, "hit_rate_at_10": 0.3, "users": 5},
        {"ndcg_at_10": 1.5, "ci_low": 0.1, "ci_high": 0.2, "hit_rate_at_10": 0.3, "users": 5},
        {"ndcg_at_10": 0.1, "ci_low": 0.0, "ci_high": 0.2, "hit_rate_at_10": 0.3, "users": -1},
    ],
)
def test_accuracy_estimates_reject_nonsense(fields):
    with pytest.raises(InvalidInputError):
        AccuracyEstimate(**fields)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_users():
    rng = np.random.default_rng(1)
    small, large = rng.random(20), rng.random(2000)
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    large_low, large_high = bootstrap_interval(large)
    assert large_high - large_low < high - low
    assert bootstrap_interval(np.ones(5)) == (1.0, 1.0)


def test_bootstrap_in_chunks_matches_one_draw_per_resample(monkeypatch):
    values = np.random.default_rng(3).random(50)
    whole = bootstrap_interval(values, seed=7)
    monkeypatch.setattr("driftloop.decision.signals._BOOTSTRAP_CELLS", 50 * 7)  # 7 resamples per chunk
    assert bootstrap_interval(values, seed=7) == pytest.approx(whole)


def test_many_users_get_the_normal_interval_fast():
    values = np.random.default_rng(4).random(200_000)
    low, high = bootstrap_interval(values)
    half_width = 1.959964 * values.std(ddof=1) / np.sqrt(values.size)
    assert (low, high) == pytest.approx((values.mean() - half_width, values.mean() + half_width))


def test_a_challenger_that_knows_the_new_item_measures_a_paired_gain(champion):
    # Since training, every u-user bought the launched item "n1"; u0..u4 buy it in the next upload.
    launches = _table([(f"u{user}", "n1") for user in range(5, 10)], start=DAY + timedelta(days=10))
    challenger = Recommender.fit(pa.concat_tables([_table(TASTE_GROUPS), launches]))
    purchases = {f"u{user}": {"n1"} for user in range(5)}
    measured = measure_challenger_gain(champion, challenger, purchases, missed_days=10.0)
    assert measured.users == 5 and measured.missed_days == 10.0
    assert measured.gain > 0.2 and measured.ci_low <= measured.gain <= measured.ci_high
    assert measured.standard_error is not None and measured.standard_error >= 0
    # The same model on both sides gains exactly nothing.
    same = measure_challenger_gain(champion, champion, purchases, missed_days=0.0)
    assert same.gain == 0.0 and same.ci_low == 0.0 == same.ci_high
    assert measure_challenger_gain(champion, challenger, {}, missed_days=1.0) is None
    assert measure_challenger_gain(champion, challenger, {"stranger": {"n1"}}, missed_days=1.0) is None
    with pytest.raises(InvalidInputError, match="missed_days"):
        measure_challenger_gain(champion, challenger, {}, missed_days=-1.0)


def test_a_challenger_gain_rides_along_the_signals_and_round_trips(champion):
    gain = ChallengerGain(gain=0.02, ci_low=0.01, ci_high=0.03, standard_error=0.005, users=40, missed_days=14.0)
    signals = _signals(champion, _table([("u0", "a0")]), challenger_gain=gain)
    record = json.loads(json.dumps(signals.to_dict()))
    assert record["challenger_gain"]["gain"] == 0.02
    assert TriggerSignals.from_dict(record) == signals
    # Records written before the field existed (or without a challenger) read as "not measured".
    del record["challenger_gain"]
    assert TriggerSignals.from_dict(record).challenger_gain is None
    assert _signals(champion, _table([("u0", "a0")])).challenger_gain is None


@pytest.mark.parametrize(
    "changes",
    [
        {"gain": float("nan")},
        {"gain": 2.0},
        {"missed_days": -1.0},
        {"users": 0},
        {"standard_error": -0.1},
        {"ci_low": "low"},
    ],
)
def test_challenger_gains_reject_nonsense(changes):
    fields = {"gain": 0.01, "ci_low": 0.0, "ci_high": 0.02, "standard_error": 0.005, "users": 10, "missed_days": 7.0}
    with pytest.raises(InvalidInputError, match="challenger gain"):
        ChallengerGain(**{**fields, **changes})
    with pytest.raises(InvalidInputError, match="challenger gain"):
        ChallengerGain.from_dict([1, 2])
