"""Conversion counts without a feedback log: Data Capture joined with the bucket's purchases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest
from report_fixtures import (
    T0,
    MemoryStore,
    feedback_table,
    first_deployment_record,
    put_capture,
    put_purchases,
    served_line,
)

from driftloop.layout import capture_key
from driftloop.local.template import load_app
from driftloop.report import reading
from driftloop.report.html import Charts, render_page
from driftloop.report.reading import DEFAULT_ATTRIBUTION_WINDOW_MINUTES, build_content, load_report_input

ENDPOINT = "driftloop-recommender"
TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def captured() -> MemoryStore:
    """Champion: converted by a tagged purchase event, by an untagged upload purchase, and one 90 minutes
    late; challenger: one tagged conversion, one request nobody bought from."""
    store = MemoryStore()
    put_capture(store, ENDPOINT, "champion", [
        served_line("e1", at(1), "u1", ["i1", "i2"], "r1"),
        served_line("e2", at(1.5), "u2", ["i3"]),
        served_line("e3", at(2), "u3", ["i4"]),
    ])
    put_capture(store, ENDPOINT, "challenger", [
        served_line("e4", at(1), "u4", ["i5"], "r4"),
        served_line("e5", at(3), "u5", ["i6"]),
    ])
    put_purchases(store, "purchases/date=2025-07-01/events-0.parquet",
                  [("u1", "i9", at(2), "r1"), ("u4", "i5", at(5), "r4")])
    put_purchases(store, "incoming/2025-07.parquet", [("u2", "i3", at(30), None), ("u3", "i4", at(92), None)])
    return store


def per_variant(store: MemoryStore) -> dict[str, tuple[int, int]]:
    counts = load_report_input(store).feedback
    return {variant: (sum(counts.filter(pc.equal(counts["variant"], variant))["served"].to_pylist()),
                      sum(counts.filter(pc.equal(counts["variant"], variant))["conversions"].to_pylist()))
            for variant in set(counts["variant"].to_pylist())}


def test_capture_joined_with_purchases_gives_the_conversion_series(captured: MemoryStore) -> None:
    loaded = load_report_input(captured)
    assert per_variant(captured) == {"champion": (3, 2), "challenger": (2, 1)}
    assert set(loaded.feedback["endpoint"].to_pylist()) == {ENDPOINT}
    origin = loaded.feedback_origin
    assert (origin.source, origin.files, origin.attribution_window_minutes) == ("data_capture", 2, 60.0)
    assert not origin.window_from_runs and "template's default" in origin.describe()
    assert origin.purchases == {"objects_read": 2, "unreadable": 0, "purchases": 4}
    series = build_content(loaded, datetime(2025, 7, 2, tzinfo=UTC)).conversion
    assert series.total_served == 5
    assert sum(sum(variant.conversions) for variant in series.variants) == 3


def test_the_runs_attribution_window_is_used(captured: MemoryStore) -> None:
    record = first_deployment_record("run-a")
    record["evidence"]["ab"] = {"evidence": {"feedback": {"source": "data_capture",
                                                          "attribution_window_minutes": 120}}}
    captured.put_record(record)
    assert per_variant(captured) == {"champion": (3, 3), "challenger": (2, 1)}
    origin = load_report_input(captured).feedback_origin
    assert origin.window_from_runs and "120 minutes (the window the runs used)" in origin.describe()


def test_the_feedback_log_wins_over_capture(captured: MemoryStore) -> None:
    captured.put_feedback(ENDPOINT, feedback_table([("champion", at(1), True)] * 7))
    assert per_variant(captured) == {"champion": (7, 7)}
    assert load_report_input(captured).feedback_origin.source == "feedback_log"


def test_bad_lines_and_objects_are_counted_not_fatal(captured: MemoryStore) -> None:
    good = served_line("e6", at(4), "u6", ["i7"])
    captured.objects[capture_key(ENDPOINT, "champion", at(4), "part-1")] = \
        f"{good}\nnot json\n{{\"captureData\": {{}}}}\n{good[:40]}".encode()
    captured.objects["incoming/broken.parquet"] = b"not parquet"
    loaded = load_report_input(captured)
    origin = loaded.feedback_origin
    assert per_variant(captured)["champion"] == (4, 2)
    assert origin.capture["skipped"] == {"malformed": 1, "missing_field": 1, "truncated": 1}
    assert origin.purchases["unreadable"] == 1
    page = render_page(build_content(loaded, datetime(2025, 7, 2, tzinfo=UTC)), Charts(b"png", None, None))
    assert "Captured lines skipped: 1 malformed, 1 missing_field, 1 truncated." in page
    assert "SageMaker Data Capture under datacapture/" in page


def test_an_empty_bucket_says_where_it_looked() -> None:
    loaded = load_report_input(MemoryStore())
    assert loaded.feedback.num_rows == 0 and loaded.feedback_origin.source == "none"
    page = render_page(build_content(loaded, datetime(2025, 7, 2, tzinfo=UTC)), Charts(None, None, None))
    assert "Neither a feedback log under feedback/ nor Data Capture under datacapture/ was found." in page


def test_the_default_window_is_the_templates() -> None:
    environment = load_app(TEMPLATE).environment
    assert float(environment["ATTRIBUTION_WINDOW_MINUTES"]) == DEFAULT_ATTRIBUTION_WINDOW_MINUTES


@pytest.mark.parametrize("records_per_count", [1, 7, 50_000])
def test_counts_of_many_files_are_batched_and_folded_without_loss(records_per_count: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "_RECORDS_PER_COUNT", records_per_count)
    store = MemoryStore()
    for endpoint in (ENDPOINT, "second-endpoint"):
        for index in range(150):  # more files than are summed at once
            put_capture(store, endpoint, "champion", [served_line(f"e{index}", at(index), f"u{index}", ["i1"])],
                        name=f"part-{index:03d}")
    put_purchases(store, "purchases/date=2025-07-01/events-0.parquet",
                  [(f"u{index}", "i1", at(index + 1), None) for index in range(0, 150, 3)])
    counts = load_report_input(store).feedback
    assert per_variant(store) == {"champion": (300, 100)}
    for endpoint in (ENDPOINT, "second-endpoint"):
        mine = counts.filter(pc.equal(counts["endpoint"], endpoint))
        assert (sum(mine["served"].to_pylist()), sum(mine["conversions"].to_pylist())) == (150, 50)
