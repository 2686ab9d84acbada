"""``driftloop merge`` called the way the main CLI will call it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import make_events, write

from driftloop.data import cli
from driftloop.data.merge import read_manifest


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="driftloop")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["merge", *argv])


def test_merge_writes_a_version_and_prints_its_manifest_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    original = write(make_events(500, seed=1), tmp_path / "original/a.parquet")
    write(make_events(100, seed=2), tmp_path / "new1/b.parquet")
    new2 = write(make_events(100, seed=3), tmp_path / "new2.parquet")
    args = parse(
        "--original",
        original,
        "--new",
        str(tmp_path / "new1"),
        "--new",
        new2,
        "--out",
        str(tmp_path / "ds"),
        "--run-id",
        "r1",
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "ds/v=r1/_manifest.json")
    assert read_manifest(pafs.LocalFileSystem(), str(tmp_path / "ds/v=r1")).rows_out == 700

    chained = parse(
        "--original",
        str(tmp_path / "ds/v=r1"),
        "--new",
        new2,
        "--out",
        str(tmp_path / "ds"),
        "--run-id",
        "r2",
        "--key",
        "user_id,item_id,event_type,event_time",
    )
    assert cli.run(chained) == 0
    second = read_manifest(pafs.LocalFileSystem(), str(tmp_path / "ds/v=r2"))
    assert second.previous_version == str(tmp_path / "ds/v=r1")
    assert second.rows_out == 700 and second.duplicates_dropped == 100


def test_merge_reports_a_bad_key_and_returns_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    original = write(make_events(50, seed=1), tmp_path / "a.parquet")
    args = parse("--original", original, "--new", original, "--out", str(tmp_path / "ds"), "--key", "user_id,nope")
    assert cli.run(args) == 2
    assert "nope" in capsys.readouterr().err
