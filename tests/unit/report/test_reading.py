"""Reading a bucket: feedback reduced to counts, records in order, A/B stages in order, workspaces."""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from report_fixtures import T0, MemoryStore, feedback_table, first_deployment_record

from driftloop.console import ExitCode
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.report import cli
from driftloop.report.reading import WorkspaceStore, combine_counts, load_report_input, time_counts


def test_counts_per_unit_treat_null_conversions_as_misses() -> None:
    table = feedback_table([("a", T0, True), ("a", T0 + timedelta(seconds=20), None),
                            ("b", T0 + timedelta(seconds=59), True), ("a", T0 + timedelta(seconds=61), False)])
    rows = time_counts(table, "ep", "minute").sort_by([("time", "ascending"), ("variant", "ascending")]).to_pylist()
    assert [(r["time"], r["variant"], r["served"], r["conversions"]) for r in rows] == [
        (T0, "a", 2, 1), (T0, "b", 1, 1), (T0 + timedelta(minutes=1), "a", 1, 0)]
    assert {r["endpoint"] for r in rows} == {"ep"}
    assert time_counts(table, "ep", "second").num_rows == 4


def test_counts_reject_what_the_contract_forbids() -> None:
    table = feedback_table([("a", T0, True)])
    with pytest.raises(InvalidInputError, match="converted"):
        time_counts(table.drop_columns(["converted"]), "ep", "minute")
    with pytest.raises(InvalidInputError, match="timezone"):
        time_counts(table.set_column(4, "served_at", table.column("served_at").cast("timestamp[us]")), "ep", "minute")
    with pytest.raises(InvalidInputError, match="unit"):
        time_counts(table, "ep", "fortnight")


def test_counts_of_several_files_add_up() -> None:
    first = time_counts(feedback_table([("a", T0, True)]), "ep", "minute")
    second = time_counts(feedback_table([("a", T0 + timedelta(seconds=5), False)]), "ep", "minute")
    combined = combine_counts([first, second]).to_pylist()
    assert [(r["served"], r["conversions"]) for r in combined] == [(2, 1)]
    assert combine_counts([]).num_rows == 0


def test_load_report_input(three_run_store: MemoryStore) -> None:
    three_run_store.objects["feedback/driftloop-recommender/date=2025-07-01/_SUCCESS"] = b""
    loaded = load_report_input(three_run_store)
    assert [r["run_id"] for r in loaded.records] == ["run-a", "run-b", "run-c"]
    assert set(loaded.drift_reports) == {"run-b", "run-c"}
    assert [(s["stage_index"], s["waits"]) for s in loaded.ab_stages["run-b"]] == [(0, 0), (0, 1), (1, 0)]
    assert loaded.feedback_unit == "second"  # one day of partitions
    assert sum(loaded.feedback.column("served").to_pylist()) == 25 * 2 + 3


def test_records_sort_by_start_time_not_key(tmp_path: Path) -> None:
    store = MemoryStore()
    store.put_record(first_deployment_record("zzz-older", T0))
    store.put_record(first_deployment_record("aaa-newer", T0 + timedelta(hours=1)))
    assert [r["run_id"] for r in load_report_input(store).records] == ["zzz-older", "aaa-newer"]


def write_workspace(root: Path, objects: dict[tuple[str, str], bytes]) -> None:
    """A workspace's S3 snapshot as the local runtime saves it: blobs by sha256 plus index.json."""
    (root / "s3" / "objects").mkdir(parents=True)
    index = {}
    for (bucket, key), body in objects.items():
        digest = hashlib.sha256(body).hexdigest()
        (root / "s3" / "objects" / digest).write_bytes(body)
        index[f"{bucket}/{key}"] = {"bucket": bucket, "key": key, "sha256": digest,
                                    "content_type": "application/json", "last_modified": T0.isoformat()}
    (root / "s3" / "index.json").write_text(json.dumps(index))


def test_workspace_store_finds_the_data_bucket(tmp_path: Path) -> None:
    record = json.dumps(first_deployment_record("run-a")).encode()
    write_workspace(tmp_path, {("logs", "access/1"): b"log", ("data", "runs/run-a/record.json"): record,
                               ("data", "incoming/x.parquet"): b"PAR1"})
    store = WorkspaceStore(tmp_path)
    assert store.bucket == "data"
    assert store.keys("runs/") == ["runs/run-a/record.json"]
    assert store.read("runs/run-a/record.json") == record
    assert WorkspaceStore(tmp_path, bucket="logs").keys("") == ["access/1"]
    with pytest.raises(NotFoundError):
        store.read("runs/other/record.json")


def test_workspace_store_refuses_folders_that_are_not_workspaces(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a driftloop workspace"):
        WorkspaceStore(tmp_path)
    write_workspace(tmp_path, {("logs", "access/1"): b"log"})
    with pytest.raises(NotFoundError, match="no run records or feedback"):
        WorkspaceStore(tmp_path)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["report", *argv])


def test_cli_writes_the_report_into_the_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_workspace(tmp_path, {("data", "runs/run-a/record.json"): json.dumps(first_deployment_record()).encode()})
    args = parse(["--workspace", str(tmp_path)])
    assert args.run(args) == 0
    assert (tmp_path / "report" / "report.html").exists()
    assert "training-costs.png" in capsys.readouterr().out


def test_cli_default_workspace_matches_driftloop() -> None:
    from driftloop.layout import DEFAULT_WORKSPACE

    assert parse([]).workspace == DEFAULT_WORKSPACE


def test_cli_reports_a_missing_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--workspace", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert args.run(args) == ExitCode.BAD_INPUT
    assert "not a driftloop workspace" in capsys.readouterr().err
