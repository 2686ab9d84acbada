"""Render a report page with headless Chromium and save a screenshot: ``screenshot_report.py REPORT.html OUT.png``.

Chromium runs with no network-facing background services and a fresh profile, so the picture shows what
the page itself contains. Exit codes: 0 written, 2 bad arguments, 3 Chromium missing or failed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEFAULT_WIDTH = 1400
DEFAULT_HEIGHT = 5000


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def chromium_command(chromium: str, page: Path, out: Path, profile: Path, width: int, height: int) -> list[str]:
    return [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
        f"--screenshot={out}", page.resolve().as_uri(),
    ]


def screenshot(page: Path, out: Path, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
               timeout: float = 120.0) -> Path:
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}); "
                                "on Debian: apt-get install -y chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    with tempfile.TemporaryDirectory(prefix="driftloop-chromium-") as profile:
        result = subprocess.run(chromium_command(chromium, page, out.resolve(), Path(profile), width, height),
                                capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium exited {result.returncode} without a screenshot: {result.stderr[-2000:]}")
    return out


_WIDTH_PROBE = ("<script>document.body.setAttribute('data-widths', document.documentElement.scrollWidth + ' ' + "
                "document.documentElement.clientWidth);</script>")


def page_widths(page: Path, width: int, timeout: float = 120.0) -> tuple[int, int]:
    """(width the page's content needs, width the window shows) of ``page`` rendered ``width`` pixels wide:
    the first exceeding the second means the reader must scroll sideways."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)})")
    with tempfile.TemporaryDirectory(prefix="driftloop-chromium-") as folder:
        probe = Path(folder) / page.name
        probe.write_text(page.read_text(encoding="utf-8") + _WIDTH_PROBE, encoding="utf-8")
        command = chromium_command(chromium, probe, Path(folder) / "unused.png", Path(folder) / "profile", width, 800)
        command[command.index(f"--screenshot={Path(folder) / 'unused.png'}")] = "--dump-dom"
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    found = re.search(r'data-widths="(\d+) (\d+)"', result.stdout)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"chromium exited {result.returncode} without the page's widths: {result.stderr[-2000:]}")
    return int(found.group(1)), int(found.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report.html to render")
    parser.add_argument("out", type=Path, help="where to write the PNG screenshot")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="window width in pixels")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT, help="window height in pixels (page length "
                        "captured)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"{args.report}: no such file", file=sys.stderr)
        return 2
    try:
        path = screenshot(args.report, args.out, args.width, args.height)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"screenshot failed: {error}", file=sys.stderr)
        return 3
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
