"""A user's own history whose first period holds one user: the backtest grows the initial window."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from driftloop.cli import main
from driftloop.console import ExitCode
from driftloop.simulate import Scenario, Simulator, SimulatorConfig


def _lone_user_month(like: pa.Table, month: str) -> pa.Table:
    """A few events of one user in ``month``, before the shop opened to everyone."""
    first = like.slice(0, 5)
    times = pa.array([f"{month}-1{day}T10:00:00" for day in range(5)]).cast(pa.timestamp("s"))
    rows = first.set_column(first.schema.get_field_index("user_id"), "user_id", pa.array(["pioneer"] * 5))
    return rows.set_column(rows.schema.get_field_index("event_time"), "event_time",
                           pc.cast(times, rows.schema.field("event_time").type))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2024-12: one user; 2025-01..2025-04: a simulated shop."""
    folder = tmp_path_factory.mktemp("own-history")
    simulator = Simulator(SimulatorConfig(seed=5, n_users=200, n_items=40, events_per_month=1500), Scenario.SEASONAL)
    paths = simulator.write_months(str(folder), [0, 1, 2, 3])
    pq.write_table(_lone_user_month(pq.read_table(paths[0]), "2024-12"), folder / "2024-12.parquet")
    return folder


def test_the_initial_window_grows_until_a_model_can_train(history: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "result.json"
    assert main(["backtest", "--data", str(history), "--strategies", "never,every", "--json", str(out)]) == 0
    error = capsys.readouterr().err
    assert "original training data: 2 month period(s) 2024-12..2025-01 (chosen: the fewest holding 2 users)" in error
    result = json.loads(out.read_text())
    assert result["periods"][:2] == ["2024-12", "2025-01"]
    assert len(result["strategies"]["never"]["per_period"]) == 3


def test_a_too_small_explicit_window_names_the_flag_that_fixes_it(history: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    code = main(["backtest", "--data", str(history), "--strategies", "never", "--initial-periods", "1", "--quiet"])
    assert code == ExitCode.USAGE
    error = capsys.readouterr().err
    assert error.startswith("driftloop backtest: --initial-periods 1: ") and error.count("\n") == 1
    assert "1 distinct user" in error and "use --initial-periods 2" in error


def test_an_explicit_window_is_kept(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["backtest", "--data", str(history), "--strategies", "never", "--initial-periods", "3", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["config"]["initial_periods"] == 3


def test_a_history_of_one_user_says_what_would_help(history: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    table = pq.read_table(history / "2025-01.parquet")
    for month in ("2025-01", "2025-02", "2025-03"):
        pq.write_table(_lone_user_month(table, month), lone / f"{month}.parquet")
    assert main(["backtest", "--data", str(lone), "--strategies", "never"]) == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert "hold 1 distinct user(s)" in error and "--period" in error and error.count("\n") == 1
