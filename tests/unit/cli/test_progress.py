"""Progress goes to stderr: bars on a terminal, plain lines elsewhere, nothing with --quiet."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from driftloop.cli import main
from driftloop.console import Progress
from driftloop.simulate import Scenario, Simulator, SimulatorConfig

SMALL = ["--users", "200", "--items", "40", "--events-per-month", "1500", "--seed", "5"]
SOURCE = Path(__file__).resolve().parents[3] / "src"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_count_steps_with_elapsed_and_time_left() -> None:
    stream = io.StringIO()
    with Progress("work", total=3, stream=stream) as progress:
        for step in ("a", "b", "c"):
            progress.advance(step)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["work: 1/3 a", "work: 2/3 b", "work: 3/3 c"]
    assert all("elapsed" in line for line in lines)
    assert "left" in lines[0] and "left" not in lines[-1]


def test_plain_work_of_unknown_length_says_how_long_it_took() -> None:
    stream = io.StringIO()
    with Progress("train", stream=stream):
        pass
    assert re.fullmatch(r"train: done in \d+ s\n", stream.getvalue())


def test_quiet_prints_nothing() -> None:
    for stream in (io.StringIO(), Terminal()):
        with Progress("work", total=2, quiet=True, stream=stream) as progress:
            progress.advance()
            progress.note("busy")
        assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar_with_elapsed_time_and_eta() -> None:
    stream = Terminal()
    with Progress("backtest periods", total=4, stream=stream) as progress:
        progress.advance("2025-02")
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stream.getvalue())
    assert "backtest periods" in text and "1/4" in text
    assert re.search(r"elapsed \d:\d\d:\d\d about \d+ s left 2025-02", text)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(SOURCE)}
    return subprocess.run([sys.executable, "-m", "driftloop.cli", *argv], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300, check=False)


def test_simulate_in_a_pipe_prints_paths_on_stdout_and_plain_progress_on_stderr(tmp_path: Path) -> None:
    done = _run(["simulate", "--out", "out", "--months", "0-2", *SMALL], tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [f"out/2025-0{month}.parquet" for month in (1, 2, 3)]
    assert [line.split(",")[0] for line in done.stderr.splitlines()] == [
        "simulate: 1/3 month 0", "simulate: 2/3 month 1", "simulate: 3/3 month 2"]
    quiet = _run(["simulate", "--out", "again", "--months", "0-2", "--quiet", *SMALL], tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "" and len(quiet.stdout.splitlines()) == 3


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("history")
    Simulator(SimulatorConfig(seed=5, n_users=200, n_items=40, events_per_month=1500),
              Scenario.SEASONAL).write_months(str(folder), [0, 1, 2, 3])
    return str(folder)


def test_backtest_counts_its_periods_on_stderr(history: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["backtest", "--data", history, "--strategies", "never,every", "--json"]) == 0
    captured = capsys.readouterr()
    progress = [line.split(",")[0] for line in captured.err.splitlines() if line.startswith("backtest periods")]
    assert progress == ["backtest periods: 1/3 2025-02", "backtest periods: 2/3 2025-03",
                        "backtest periods: 3/3 2025-04"]
    assert captured.out.lstrip().startswith("{")


@pytest.mark.parametrize("command", ["train", "merge"])
def test_train_and_merge_say_how_long_they_took(command: str, history: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    month = str(Path(history) / "2025-01.parquet")
    argv = (["train", "--data", month, "--out", str(tmp_path / "model")] if command == "train" else
            ["merge", "--original", month, "--new", str(Path(history) / "2025-02.parquet"), "--out", str(tmp_path)])
    assert main(argv) == 0
    assert re.search(rf"^{command}: done in \d+ s$", capsys.readouterr().err, re.MULTILINE)
    assert main([*argv, "--quiet"]) == 0
    assert f"{command}:" not in capsys.readouterr().err
