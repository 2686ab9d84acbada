"""The page renders in headless Chromium (skipped where Chromium is not installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image
from report_fixtures import MemoryStore

from driftloop.report import build_report

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "screenshot_report.py"
spec = importlib.util.spec_from_file_location("screenshot_report", SCRIPT)
assert spec is not None and spec.loader is not None
screenshot_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(screenshot_report)

needs_chromium = pytest.mark.skipif(
    screenshot_report.find_chromium() is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")


def test_command_is_headless_isolated_and_offline(tmp_path: Path) -> None:
    command = screenshot_report.chromium_command("chromium", tmp_path / "r.html", tmp_path / "o.png",
                                                 tmp_path / "profile", 800, 600)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=800,600",
                 f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={tmp_path / 'o.png'}"):
        assert flag in command
    assert command[-1].startswith("file://")


def test_missing_report_is_an_argument_error(tmp_path: Path) -> None:
    assert screenshot_report.main([str(tmp_path / "none.html"), str(tmp_path / "o.png")]) == 2


@needs_chromium
def test_report_renders_in_chromium(three_run_store: MemoryStore, tmp_path: Path) -> None:
    page = build_report(three_run_store, tmp_path / "report")
    out = tmp_path / "shot.png"
    assert screenshot_report.main([str(page), str(out), "--width", "1280", "--height", "2400"]) == 0
    image = Image.open(out).convert("RGB")
    assert image.size == (1280, 2400)
    header = image.getpixel((8, 8))
    assert max(header) < 60, f"the dark page header should be at the top, found {header}"
    charts = image.crop((0, 500, 1280, 2400)).getcolors(maxcolors=1 << 16)
    assert charts is None or len(charts) > 200, "the charts should be drawn (many distinct colours)"



LAPTOP_WIDTH = 1366


@needs_chromium
def test_the_report_reads_on_a_laptop_screen_without_sideways_scrolling(three_run_store: MemoryStore,
                                                                         tmp_path: Path) -> None:
    page = build_report(three_run_store, tmp_path / "report")
    needed, shown = screenshot_report.page_widths(page, LAPTOP_WIDTH)
    assert needed <= shown, f"the report needs {needed} px on a {shown} px wide window"

