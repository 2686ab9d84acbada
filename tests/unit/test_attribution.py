"""Purchases attributed to served recommendations: by inferenceId, else by user, item and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from driftloop.attribution import attribute, purchases_of
from driftloop.capture import ServedRecommendation
from driftloop.errors import InvalidInputError
from driftloop.traffic.online import FEEDBACK_COLUMNS, summarise_feedback

AT = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)
HOUR = timedelta(minutes=60)
TIME = pa.timestamp("us", tz="UTC")


def served(user: str, items: tuple[str, ...], minutes: float = 0, variant: str = "champion",
           inference_id: str | None = None) -> ServedRecommendation:
    return ServedRecommendation(variant, f"e-{user}-{minutes}", AT + timedelta(minutes=minutes), user, items,
                                inference_id=inference_id)


def bought(*rows: tuple[str, str, float, str | None]) -> pa.Table:
    return pa.table({"user_id": [row[0] for row in rows], "item_id": [row[1] for row in rows],
                     "event_time": pa.array([AT + timedelta(minutes=row[2]) for row in rows], TIME),
                     "inference_id": pa.array([row[3] for row in rows], pa.string())})


def converted(rows: list[ServedRecommendation], purchases: pa.Table, window: timedelta = HOUR) -> list[bool]:
    return attribute(rows, purchases, window)["converted"].to_pylist()


def test_a_recommended_item_bought_by_the_same_user_within_the_window_converts() -> None:
    rows = [served("u1", ("a", "b")), served("u2", ("a",)), served("u3", ("a",)), served("u4", ("a",))]
    purchases = bought(("u1", "b", 60, None),   # at the window's end: counts
                       ("u2", "a", 61, None),   # one minute late
                       ("u3", "a", -1, None),   # before it was recommended
                       ("u4", "z", 5, None))    # not a recommended item
    table = attribute(rows, purchases, HOUR)
    assert table["converted"].to_pylist() == [True, False, False, False]
    assert table["purchased_item"].to_pylist() == ["b", None, None, None]


def test_a_tagged_purchase_converts_only_its_own_request() -> None:
    rows = [served("u1", ("a",), inference_id="r-1"), served("u1", ("a",), minutes=1, inference_id="r-2")]
    assert converted(rows, bought(("u1", "z", 5, "r-2"))) == [False, True]
    # Tagged: not attributed by user and time to the other request, even for a recommended item.
    assert converted(rows, bought(("u1", "a", 5, "r-2"))) == [False, True]
    assert converted(rows, bought(("u1", "a", 5, "r-9"))) == [False, False]
    # Untagged purchases still count by user and time for requests that carry an inferenceId.
    assert converted(rows, bought(("u1", "a", 5, None))) == [True, True]


def test_a_zero_window_counts_purchases_made_as_the_recommendation_is_served() -> None:
    rows = [served("u1", ("a",))]
    assert converted(rows, bought(("u1", "a", 0, None)), timedelta(0)) == [True]
    assert converted(rows, bought(("u1", "a", 0.001, None)), timedelta(0)) == [False]
    with pytest.raises(InvalidInputError):
        attribute(rows, bought(), -HOUR)


def test_the_result_is_what_the_ab_analysis_reads() -> None:
    rows = [served("u1", ("a",), variant="champion"), served("u2", ("a",), variant="challenger")]
    table = attribute(rows, bought(("u2", "a", 1, None)), HOUR)
    assert set(FEEDBACK_COLUMNS) <= set(table.column_names)
    counts = summarise_feedback(table, HOUR, AT + 2 * HOUR)
    assert (counts["champion"].conversions, counts["challenger"].conversions) == (0, 1)
    assert counts["challenger"].latency_p95_ms is None and counts["challenger"].errors == 0


def test_purchases_are_taken_from_an_upload_of_any_event_types() -> None:
    upload = pa.table({
        "user_id": ["u1", "u1", None, "u2"], "item_id": ["a", "b", "c", "d"],
        "event_type": ["view", "purchase", "purchase", "purchase"],
        "event_time": pa.array([AT] * 4, TIME), "price": [1.0] * 4})
    purchases = purchases_of(upload)
    assert purchases["item_id"].to_pylist() == ["b", "d"]
    assert purchases["inference_id"].null_count == 2
    with pytest.raises(InvalidInputError, match="event_type"):
        purchases_of(upload.drop_columns(["event_type"]))
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        purchases_of(upload.set_column(3, "event_time", pa.array([AT.replace(tzinfo=None)] * 4)))
