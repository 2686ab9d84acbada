"""The page: self-contained, every run in it, charts written as PNGs and embedded."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from report_fixtures import MemoryStore

from driftloop.report import build_report
from driftloop.report.build import CHART_FILES, DATA_FILE
from driftloop.report.html import collapse_steps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*['"]?\s*(?:https?:)?//""", re.IGNORECASE)


def test_page_is_self_contained_and_shows_every_run(three_run_store: MemoryStore, tmp_path: Path) -> None:
    page = build_report(three_run_store, tmp_path, datetime(2025, 7, 2, tzinfo=UTC)).read_text()
    assert not EXTERNAL.search(page), "the page must not load anything from the network"
    assert "@import" not in page and "url(" not in page
    for run_id in ("run-a", "run-b", "run-c"):
        assert f"id='run-{run_id}'" in page
        assert f"href='#run-{run_id}'" in page
    embedded = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(embedded) == 3
    for name in CHART_FILES.values():
        png = (tmp_path / name).read_bytes()
        assert png.startswith(PNG_MAGIC)
        assert base64.b64encode(png).decode() in embedded


def test_page_explains_decisions(three_run_store: MemoryStore, tmp_path: Path) -> None:
    page = build_report(three_run_store, tmp_path).read_text()
    assert "price drifted" in page  # the drift reasons of run-b
    assert "challenger rollback" in page  # run-c's A/B reason
    assert "champion weight 100%, challenger 0%" in page  # run-c's rollback actions
    assert "$0.36" in page  # three jobs at $0.12
    assert "$0.54" in page  # spot saved 3 x $0.18
    stages = re.findall(r"<tr><td class=num>(\d)</td><td class=num>(\d)</td>", page)
    assert stages == [("0", "0"), ("0", "1"), ("1", "0")]  # A/B stages in order, not by key sort


def test_numbers_behind_the_page_are_saved(three_run_store: MemoryStore, tmp_path: Path) -> None:
    build_report(three_run_store, tmp_path)
    data = json.loads((tmp_path / DATA_FILE).read_text())
    assert [run["run_id"] for run in data["runs"]] == ["run-a", "run-b", "run-c"]
    assert data["costs"]["total_usd"] == 0.36


def test_empty_bucket_gives_a_page_without_charts(tmp_path: Path) -> None:
    (tmp_path / "drift.png").write_bytes(PNG_MAGIC)  # left over from an earlier report
    page = build_report(MemoryStore(), tmp_path).read_text()
    assert "No run records under runs/ yet." in page
    assert "No feedback yet. Neither a feedback log under feedback/ nor Data Capture under datacapture/" in page
    assert "data:image/png" not in page
    assert not list(tmp_path.glob("*.png"))


def test_polling_loops_collapse_into_one_row() -> None:
    steps = [{"name": "StartTraining", "status": "succeeded", "attempts": 1, "duration_seconds": 1.0, "errors": []},
             *[{"name": "PollTraining", "status": "succeeded", "attempts": 1, "duration_seconds": 0.5, "errors": []}
               for _ in range(3)],
             {"name": "PollTraining", "status": "failed", "attempts": 2, "duration_seconds": 0.5,
              "errors": [{"error": "TransientError", "cause": "x"}]},
             {"name": "StartTraining", "status": "succeeded", "attempts": 1, "duration_seconds": 1.0, "errors": []}]
    rows = collapse_steps(steps)
    assert [(r["name"], r["visits"], r["attempts"], r["status"]) for r in rows] == [
        ("StartTraining", 1, 1, "succeeded"), ("PollTraining", 4, 5, "failed"), ("StartTraining", 1, 1, "succeeded")]
    assert rows[1]["seconds"] == 2.0 and rows[1]["errors"] == [{"error": "TransientError", "cause": "x"}]
