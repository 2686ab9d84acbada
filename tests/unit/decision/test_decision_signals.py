from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from driftloop.decision import AccuracyEstimate, TriggerSignals, measure_signals
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


@pytest.fixture(scope="module")
def champion() -> Recommender:
    """Two taste groups: users u0..u9 buy a*, v0..v9 buy b*."""
    rows = [(f"u{user}", f"a{item}") for user in range(10) for item in range(4) if (user + item) % 4 != 0]
    rows += [(f"v{user}", f"b{item}") for user in range(10) for item in range(4) if (user + item) % 4 != 0]
    return Recommender.fit(_table(rows))


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


def test_malformed_signal_records_are_one_clear_error():
    with pytest.raises(InvalidInputError, match="incomplete or malformed"):
        TriggerSignals.from_dict({"period_days": 7})


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_users():
    rng = np.random.default_rng(1)
    small, large = rng.random(20), rng.random(2000)
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    large_low, large_high = bootstrap_interval(large)
    assert large_high - large_low < high - low
    assert bootstrap_interval(np.ones(5)) == (1.0, 1.0)
