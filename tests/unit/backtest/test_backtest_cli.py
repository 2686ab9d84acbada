from __future__ import annotations

import argparse
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from backtest_fixtures import monthly_events

from driftloop.backtest import cli
from driftloop.console import ExitCode

PER_PERIOD_FIELDS = {"period", "ndcg_at_10", "hit_rate_at_10", "users", "retrained", "staleness_cost"}
STRATEGY_FIELDS = {
    "mean_ndcg_at_10",
    "mean_hit_rate_at_10",
    "retrains",
    "training_cost",
    "staleness_cost",
    "total_cost",
    "regret",
    "per_period",
}


def _parse(*arguments: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["backtest", *arguments])


@pytest.fixture(scope="module")
def custom_parquet(tmp_path_factory) -> str:
    """The fixture history under a user's own column names, with epoch-second times, split in two files."""
    table = monthly_events(["mobile", "mobile", "desktop", "desktop"])
    seconds = pc.divide(table.column("event_time").cast(pa.int64()), 1_000_000)
    table = pa.table(
        {
            "customer": table.column("user_id"),
            "sku": table.column("item_id"),
            "ts": seconds,
            "action": table.column("event_type"),
            "device": table.column("device"),
        }
    )
    folder = tmp_path_factory.mktemp("user-data")
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "part-0.parquet")
    pq.write_table(table.slice(half), folder / "part-1.parquet")
    return str(folder)


def test_user_parquet_with_custom_columns_writes_the_json(custom_parquet, tmp_path, capsys):
    out = tmp_path / "result.json"
    args = _parse(
        "--data", custom_parquet, "--user-col", "customer", "--item-col", "sku", "--time-col", "ts",
        "--event-type-col", "action", "--strategies", "never,every,D", "--json", str(out),
    )  # fmt: skip
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "NDCG@10" in printed and "HitRate@10" in printed and "retrains" in printed
    result = json.loads(out.read_text())
    assert result["periods"] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    assert list(result["strategies"]) == ["never", "every", "D"]
    for name, strategy in result["strategies"].items():
        assert set(strategy) >= STRATEGY_FIELDS, name
        assert len(strategy["per_period"]) == 3
        assert all(set(row) == PER_PERIOD_FIELDS for row in strategy["per_period"])
    assert result["strategies"]["every"]["retrains"] == 2
    assert [row["retrained"] for row in result["strategies"]["never"]["per_period"]] == [False, False, False]
    assert isinstance(result["strategies"]["every"]["training_cost"], float)


def test_missing_columns_name_the_flags(custom_parquet, capsys):
    args = _parse("--data", custom_parquet, "--strategies", "never")
    assert args.run(args) == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert "missing column(s) ['user_id', 'item_id', 'event_time']" in error
    assert "--user-col" in error and "customer" in error


def test_too_few_periods_from_the_command_line(custom_parquet, capsys):
    args = _parse(
        "--data", custom_parquet, "--user-col", "customer", "--item-col", "sku", "--time-col", "ts",
        "--period", "365-days",
    )  # fmt: skip
    assert args.run(args) == ExitCode.BAD_INPUT
    assert "needs at least 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments, message, code",
    [
        (("--strategies", "A,Z"), "strategies must be some of", ExitCode.USAGE),
        (("--period", "fortnight"), "--period", ExitCode.USAGE),
        (("--data", "/nonexistent/folder"), "no such file", ExitCode.BAD_INPUT),
        (("--value-per-point", "-1"), "value_per_point must be a number > 0", ExitCode.USAGE),
        (("--hourly-price", "0"), "hourly_price must be a number > 0", ExitCode.USAGE),
        (("--ab-exposure-cost", "-5"), "ab_exposure_cost must be a number >= 0", ExitCode.USAGE),
    ],
)
def test_bad_arguments_fail_cleanly(arguments, message, code, capsys):
    args = _parse("--data", "synthetic", *arguments)
    assert args.run(args) == code
    assert message in capsys.readouterr().err


def test_synthetic_data_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "synthetic.json"
    args = _parse(
        "--data", "synthetic", "--users", "150", "--items", "40", "--events-per-month", "1500", "--months", "3",
        "--strategies", "never,C", "--every-k", "1", "--json", str(out),
    )  # fmt: skip
    assert args.run(args) == 0
    result = json.loads(out.read_text())
    assert result["periods"] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    assert result["strategies"]["C"]["retrains"] == 2
    assert result["dataset"].startswith("synthetic (seasonal, seed 0)")


def test_costs_regret_and_frontier_reach_the_json(tmp_path, capsys):
    out = tmp_path / "costs.json"
    args = _parse(
        "--data", "synthetic", "--users", "150", "--items", "40", "--events-per-month", "1500", "--months", "3",
        "--strategies", "never,every,auto,schedule,oracle", "--every-k", "2", "--value-per-point", "2",
        "--json", str(out),
    )  # fmt: skip
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "frontier (hindsight)" in printed and "regret" in printed and "auto decisions" in printed
    assert "missed days" in printed  # each decision's challenger
    assert "held out (mean over 100 random halves" in printed
    result = json.loads(out.read_text())
    strategies = result["strategies"]
    assert strategies["oracle"]["regret"] == 0.0
    for name, strategy in strategies.items():
        assert strategy["total_cost"] == pytest.approx(strategy["training_cost"] + strategy["staleness_cost"], abs=1e-5)
        assert strategy["regret"] >= -1e-6, name
    assert result["frontier"]["0"] == pytest.approx(strategies["never"]["mean_ndcg_at_10"])
    assert result["frontier"]["2"] == pytest.approx(strategies["every"]["mean_ndcg_at_10"])
    assert result["config"]["cost_model"]["value_per_point"] == 2.0
    assert len(strategies["auto"]["decisions"]) == 2
    held_out = result["held_out"]
    assert set(held_out["strategies"]) == {"never", "every", "auto", "schedule"}
    assert held_out["oracle_held_out"] >= held_out["oracle_in_sample"] - 1e-6
    # `every` serves the fresh model in every period: on any half it pays its training cost only.
    assert held_out["strategies"]["every"] == pytest.approx(strategies["every"]["training_cost"], abs=1e-5)


def test_held_out_pricing_without_a_strategy_from_the_matrix_prints_only_the_oracle(capsys):
    args = _parse(
        "--data", "synthetic", "--users", "150", "--items", "40", "--events-per-month", "1500", "--months", "3",
        "--strategies", "A",
    )  # fmt: skip
    assert args.run(args) == 0
    held_out = capsys.readouterr().out.split("held out (")[1]
    assert "priced on the other" in held_out and "on the same halves" not in held_out
    assert "frontier's schedule chosen on a half" not in held_out
