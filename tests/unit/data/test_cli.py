"""``driftloop merge`` called the way the main CLI will call it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import make_events, write

from driftloop.console import ExitCode
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
    assert cli.run(args) == ExitCode.BAD_INPUT
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "..", ".hidden", "", "x" * 129, "tab\there", "v=1"])
def test_an_unsafe_run_id_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, run_id: str
) -> None:
    original = write(make_events(50, seed=1), tmp_path / "in/a.parquet")
    before = sorted(tmp_path.rglob("*"))
    args = parse("--original", original, "--new", original, "--out", str(tmp_path / "out/ds"), "--run-id", run_id)
    assert cli.run(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "run id" in error and "Traceback" not in error
    assert sorted(tmp_path.rglob("*")) == before


def test_the_same_run_id_with_other_inputs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    original = write(make_events(300, seed=1), tmp_path / "a.parquet")
    first = write(make_events(50, seed=2), tmp_path / "first.parquet")
    second = write(make_events(50, seed=3), tmp_path / "second.parquet")
    out = str(tmp_path / "ds")
    assert cli.run(parse("--original", original, "--new", first, "--out", out, "--run-id", "r1")) == 0
    assert cli.run(parse("--original", original, "--new", first, "--out", out, "--run-id", "r1")) == 0
    capsys.readouterr()
    assert cli.run(parse("--original", original, "--new", second, "--out", out, "--run-id", "r1")) == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "other inputs" in error and "second.parquet" in error
    assert read_manifest(pafs.LocalFileSystem(), f"{out}/v=r1").rows_out == 350


def test_an_output_folder_that_is_a_file_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    original = write(make_events(50, seed=1), tmp_path / "a.parquet")
    (tmp_path / "ds").write_text("not a folder")
    code = cli.run(parse("--original", original, "--new", original, "--out", str(tmp_path / "ds")))
    assert code == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("driftloop merge: ") and error.count("\n") == 1


def test_the_pipeline_names_versions_with_the_same_rule() -> None:
    import json

    from driftloop.errors import InvalidInputError
    from driftloop.layout import dataset_dir
    from driftloop.triggers import parse_trigger

    project = Path(__file__).resolve().parents[3]
    for sample in sorted((project / "events").glob("*.json")):
        event = json.loads(sample.read_text())
        bucket = event.get("detail", {}).get("bucket", {}).get("name", "bucket")
        try:
            trigger = parse_trigger(event, bucket, "incoming/", "monitoring/")
        except InvalidInputError:
            continue  # a sample the pipeline refuses before any run id exists
        assert dataset_dir("model", trigger.run_id()).endswith(f"/v={trigger.run_id()}")
    with pytest.raises(InvalidInputError, match="run id"):
        dataset_dir("model", "../../x")


def test_the_main_command_turns_an_os_error_into_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from driftloop.cli import main

    missing = str(tmp_path / "missing.parquet")
    assert main(["upload", "--workspace", str(tmp_path / "ws"), "--file", missing, "--quiet"]) == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("driftloop upload: ") and "missing.parquet" in error and error.count("\n") == 1


def test_a_folder_without_parquet_files_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    original = write(make_events(50, seed=1), tmp_path / "a.parquet")
    (tmp_path / "typo").mkdir()
    code = cli.run(parse("--original", original, "--new", str(tmp_path / "typo"), "--out", str(tmp_path / "ds")))
    assert code == ExitCode.BAD_INPUT
    assert "no Parquet files" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_the_main_command_turns_an_arrow_error_into_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from driftloop.cli import main

    (tmp_path / "notes.parquet").write_text("not parquet")
    code = main(["train", "--data", str(tmp_path / "notes.parquet"), "--out", str(tmp_path / "model")])
    assert code == ExitCode.BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("driftloop train: ") and error.count("\n") == 1
