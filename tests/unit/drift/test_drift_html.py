"""drift.html: every feature's bars stand on a labelled axis of shares, both distributions drawn to scale."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from driftloop.drift.html import _share_ticks, render_report

_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "screenshot_report.py"
_SPEC = importlib.util.spec_from_file_location("screenshot_report_for_drift", _SCRIPT)
assert _SPEC is not None and _SPEC.loader is not None
screenshot_report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(screenshot_report)
LAPTOP_WIDTH = 1366


def drift_page_report(labels: list[str], reference: list[float], current: list[float]) -> dict[str, Any]:
    feature = {"kind": "categorical", "status": "drifted", "drifted": True, "reason": "shifted",
               "adjusted_pvalue": 0.001, "statistics": {"psi": 0.3, "js_distance": 0.2, "linf": 0.15},
               "distribution": {"labels": labels, "reference": reference, "current": current}}
    return {"decision": "retrain", "rows": {"reference": 1000, "current": 900}, "reasons": ["region drifted"],
            "features": {"region": feature}, "quality": []}


@pytest.mark.parametrize(("top", "expected"), [
    (0.37, [0.0, 0.1, 0.2, 0.3, 0.4]),
    (0.5, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    (0.9, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.012, [0.0, 0.005, 0.01, 0.015]),
])
def test_axis_ticks_are_round_shares_covering_the_tallest_bar(top: float, expected: list[float]) -> None:
    assert _share_ticks(top) == pytest.approx(expected)


def test_the_bars_have_an_axis_with_labelled_shares_and_are_drawn_to_its_scale() -> None:
    page = render_report(drift_page_report(["north", "south", "east"], [0.5, 0.3, 0.2], [0.25, 0.25, 0.5]),
                         "drift")
    assert "share of rows" in page
    tick_labels = re.findall(r'text-anchor="end">([0-9.]+%)</text>', page)
    assert tick_labels == ["0%", "10%", "20%", "30%", "40%", "50%"]
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', page)]
    assert heights == pytest.approx([220.0, 110.0, 132.0, 110.0, 88.0, 220.0]), "shares 50/25/30/25/20/50 % of 50 %"
    assert re.findall(r"<title>([^<]+)</title>", page)[1:3] == ["north: 50.00%", "north: 25.00%"]


def test_a_feature_without_values_says_so() -> None:
    page = render_report(drift_page_report([], [], []), "drift")
    assert "No values to draw." in page


@pytest.mark.skipif(screenshot_report.find_chromium() is None, reason="headless Chromium is not installed")
def test_a_drift_page_with_many_categories_reads_on_a_laptop_screen(tmp_path: Path) -> None:
    labels = [f"category-{index:02d}" for index in range(80)]
    shares = [1 / len(labels)] * len(labels)
    page = tmp_path / "drift.html"
    page.write_text(render_report(drift_page_report(labels, shares, shares[::-1]), "drift"), encoding="utf-8")
    needed, shown = screenshot_report.page_widths(page, LAPTOP_WIDTH)
    assert needed <= shown, f"drift.html needs {needed} px on a {shown} px wide window"
