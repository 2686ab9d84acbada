"""The charts read at a glance: no label drawn over another, no money in scientific notation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox
from report_fixtures import T0, MemoryStore, ab_record, drift_report, feedback_table, first_deployment_record

from driftloop.report.charts import conversion_figure, cost_figure, drift_figure, format_usd
from driftloop.report.reading import build_content, load_report_input

RUNS = 14


@pytest.fixture(scope="module")
def crowded_store() -> MemoryStore:
    """Fourteen runs two minutes apart, every one promoted after drift in most features."""
    store = MemoryStore()
    store.put_record(first_deployment_record("run-00", T0))
    previous = "run-00"
    for index in range(1, RUNS):
        run_id = f"run-{index:02d}"
        drifted = {name: 0.15 if (index + offset) % 5 else 0.05 for offset, name in enumerate(
            ["item_category_with_a_long_name", "price", "region", "device", "age_band"])}
        store.put_record(ab_record(run_id, T0 + timedelta(minutes=2 * index), "promoted", previous, drifted,
                                   "promote"))
        store.put_json(f"reports/{run_id}/drift.json", drift_report())
        previous = run_id
    rows = []
    for minute in range(2 * RUNS + 2):
        served = T0 + timedelta(minutes=minute, seconds=5)
        rows += [("champion", served, minute % 3 == 0), ("challenger", served, minute % 2 == 0)]
    store.put_feedback("driftloop-recommender", feedback_table(rows))
    return store


def _boxes(figure: Figure, texts: list) -> list[tuple[str, Bbox]]:
    FigureCanvasAgg(figure).draw()
    renderer = figure.canvas.get_renderer()
    return [(text.get_text(), text.get_window_extent(renderer)) for text in texts if text.get_text()]


def _overlapping(boxes: list[tuple[str, Bbox]]) -> list[tuple[str, str]]:
    return [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]


def test_conversion_chart_labels_and_legend_never_overlap(crowded_store: MemoryStore) -> None:
    content = build_content(load_report_input(crowded_store), datetime(2026, 1, 1, tzinfo=UTC))
    figure = conversion_figure(content.conversion, content.markers, content.windows, content.labels)
    rates_axis = figure.axes[0]
    labels = [child for child in rates_axis.get_children() if isinstance(child, Annotation)]
    assert len(labels) == len(content.markers) >= RUNS
    legend = rates_axis.get_legend()
    boxes = _boxes(figure, [*labels, rates_axis.title, rates_axis._left_title])
    FigureCanvasAgg(figure).draw()
    legend_box = legend.get_window_extent(figure.canvas.get_renderer())
    assert _overlapping(boxes) == []
    assert [text for text, box in boxes if box.overlaps(legend_box)] == []


def test_drift_panel_titles_never_run_into_each_other(crowded_store: MemoryStore) -> None:
    content = build_content(load_report_input(crowded_store), datetime(2026, 1, 1, tzinfo=UTC))
    figure = drift_figure(content.drift, content.labels)
    titles = [axis._left_title for axis in figure.axes if axis.get_visible()]
    assert any("drifted in" in title.get_text() for title in titles)
    assert _overlapping(_boxes(figure, titles)) == []
    ticks = [label for axis in figure.axes if axis.get_visible() for label in axis.get_xticklabels()]
    for axis in figure.axes:
        if axis.get_visible():
            assert _overlapping(_boxes(figure, axis.get_xticklabels())) == [], "run labels on the x axis overlap"
    assert ticks


def test_cost_chart_legend_stays_clear_of_the_bars_labels(crowded_store: MemoryStore) -> None:
    content = build_content(load_report_input(crowded_store), datetime(2026, 1, 1, tzinfo=UTC))
    figure = cost_figure(content.costs, content.labels)
    axis = figure.axes[0]
    labels = [child for child in axis.get_children() if isinstance(child, Annotation)]
    boxes = _boxes(figure, [*labels, axis._left_title])
    legend_box = axis.get_legend().get_window_extent(figure.canvas.get_renderer())
    assert [text for text, box in boxes if box.overlaps(legend_box)] == []


@pytest.mark.parametrize("value", [6.4e-05, 1e-07, 0.00019, 0.0024, 0.5, 19.32, 1234.5, -3e-05])
def test_money_is_never_in_scientific_notation(value: float) -> None:
    text = format_usd(value)
    assert "e" not in text.lower(), text
    assert abs(float(text.replace("$", "").replace(",", "")) - value) <= abs(value) * 0.05
