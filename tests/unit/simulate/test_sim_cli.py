from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from driftloop.errors import InvalidInputError
from driftloop.simulate import INTERACTIONS_SCHEMA, Scenario, Simulator, SimulatorConfig
from driftloop.simulate.cli import add_parser, parse_months

SMALL_FLAGS = ["--users", "200", "--items", "40", "--events-per-month", "1500", "--seed", "5"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="driftloop")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_writes_months_and_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "incoming", tmp_path / "truth"
    args = parse(
        ["simulate", "--out", str(out), "--ground-truth", str(truth), "--months", "0,2-3", "--scenario", "no_drift"]
        + SMALL_FLAGS
    )
    assert args.run(args) == 0
    assert sorted(path.name for path in out.iterdir()) == ["2025-01.parquet", "2025-03.parquet", "2025-04.parquet"]
    assert len(list(truth.iterdir())) == 3
    assert len(capsys.readouterr().out.splitlines()) == 6
    expected = Simulator(SimulatorConfig(seed=5, n_users=200, n_items=40, events_per_month=1500), Scenario.NO_DRIFT)
    table = pq.read_table(out / "2025-03.parquet")
    assert table.schema == INTERACTIONS_SCHEMA
    assert table.equals(expected.month(2))


@pytest.mark.parametrize(
    "flags",
    [["--months", "13"], ["--months", "a-b"], ["--users", "0"], ["--start-month", "2025-1"]],
)
def test_bad_arguments_exit_with_2(tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["simulate", "--out", str(tmp_path / "out"), *SMALL_FLAGS, *flags])
    assert args.run(args) == 2
    assert "driftloop simulate:" in capsys.readouterr().err


def test_parse_months() -> None:
    assert parse_months("0-3") == [0, 1, 2, 3]
    assert parse_months("6, 1-2,6") == [1, 2, 6]
    with pytest.raises(InvalidInputError):
        parse_months("x")
