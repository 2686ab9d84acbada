from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from model_fixtures import clustered_interactions

from driftloop.console import ExitCode
from driftloop.model.cli import add_parser


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="driftloop")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_train_command_on_a_file_with_other_column_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = clustered_interactions(n_users=150, n_items=60, n_events=4000)
    renamed = table.rename_columns(["customer", "sku", "action", "ts", "price"])
    data = tmp_path / "interactions.parquet"
    pq.write_table(renamed, data)
    out = tmp_path / "model"
    args = parse(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--user-col",
            "customer",
            "--item-col",
            "sku",
            "--time-col",
            "ts",
            "--event-type-col",
            "action",
        ]
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "ndcg_at_10" in printed and "popularity" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["users"] == 150 and (out / "recommender.npz").exists()


def test_train_command_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "one-user.parquet"
    pq.write_table(pa.table({"user_id": ["a", "a"], "item_id": ["x", "y"], "event_time": [1, 2]}), data)
    args = parse(["train", "--data", str(data), "--out", str(tmp_path / "out")])
    assert args.run(args) == ExitCode.BAD_INPUT
    assert "at least 2 users" in capsys.readouterr().err
    missing = parse(["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert missing.run(missing) == ExitCode.BAD_INPUT
