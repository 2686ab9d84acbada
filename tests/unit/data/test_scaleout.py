"""Per-object partial merges reduced by combine_partials give the same version as one merge."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from conftest import make_events, write
from test_merge import read_version, row_digest

from driftloop.data.merge import MergeConfig, dataset_source, merge_datasets
from driftloop.data.scaleout import combine_partials, merge_partial
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.storage import local_source

LOCAL = pafs.LocalFileSystem()


def uploads(tmp_path: Path) -> list[str]:
    first = make_events(400, seed=2)
    return [
        write(first, tmp_path / "incoming/u1.parquet"),
        write(pa.concat_tables([first.slice(0, 50), make_events(300, seed=3)]), tmp_path / "incoming/u2.parquet"),
        write(pa.concat_tables([make_events(100, seed=4)] * 2), tmp_path / "incoming/u3.parquet"),
    ]


def test_partials_then_combine_equal_a_single_merge(tmp_path: Path) -> None:
    write(make_events(2_000, seed=1), tmp_path / "original/a.parquet")
    paths = uploads(tmp_path)
    (tmp_path / "incoming/u4.parquet").write_bytes(b"")
    paths.append(str(tmp_path / "incoming/u4.parquet"))
    versions = {path: f"etag-{number}" for number, path in enumerate(paths)}
    run = tmp_path / "datasets/v=run1"
    partial_dirs = [
        merge_partial(local_source(path), LOCAL, f"{run}/_partials/{number}", source_versions=versions).version_dir
        for number, path in enumerate(paths)
    ]
    original = local_source(str(tmp_path / "original"))
    combined = combine_partials(original, partial_dirs, LOCAL, str(run))
    single = merge_datasets(original, [local_source(path) for path in paths], LOCAL, str(tmp_path / "single"))

    assert row_digest(read_version(combined.version_dir)) == row_digest(read_version(single.version_dir))
    assert combined.rows_out == single.rows_out == 2_000 + 400 + 300 + 100
    assert combined.rows_in == single.rows_in
    assert combined.duplicates_dropped == single.duplicates_dropped == 150
    assert [entry["reason"] for entry in combined.quarantined] == ["empty file (0 bytes)"]
    upload_records = {record.source: record for record in combined.sources if record.role == "new"}
    assert set(upload_records) == set(paths) and upload_records[paths[1]].version == "etag-1"
    assert {entry["source"] for entry in combined.consumed_sources} >= set(paths)
    assert combined.dedup["partials"] == partial_dirs


def test_combine_skips_partials_of_uploads_already_in_the_lineage(tmp_path: Path) -> None:
    write(make_events(500, seed=1), tmp_path / "original/a.parquet")
    paths = uploads(tmp_path)
    versions = {path: "etag" for path in paths}
    first_dirs = [
        merge_partial(local_source(path), LOCAL, f"{tmp_path}/v=1/_partials/{n}", source_versions=versions).version_dir
        for n, path in enumerate(paths)
    ]
    first = combine_partials(local_source(str(tmp_path / "original")), first_dirs, LOCAL, f"{tmp_path}/v=1")
    replay_dir = merge_partial(local_source(paths[0]), LOCAL, f"{tmp_path}/v=2/_partials/0", source_versions=versions)
    second = combine_partials(
        dataset_source(LOCAL, first.version_dir), [replay_dir.version_dir], LOCAL, f"{tmp_path}/v=2"
    )
    assert second.rows_out == first.rows_out and second.duplicates_dropped == 0
    assert [record.status for record in second.sources if record.role == "new"] == ["already_consumed"]
    assert second.previous_version == first.version_dir


def test_combine_fails_when_too_many_uploads_are_bad(tmp_path: Path) -> None:
    good = write(make_events(100, seed=1), tmp_path / "incoming/good.parquet")
    (tmp_path / "incoming/bad.parquet").write_bytes(b"nope")
    dirs = [
        merge_partial(local_source(path), LOCAL, f"{tmp_path}/p/{n}").version_dir
        for n, path in enumerate([good, str(tmp_path / "incoming/bad.parquet")])
    ]
    with pytest.raises(InvalidInputError, match="1 of 2 new files are bad"):
        combine_partials(None, dirs, LOCAL, f"{tmp_path}/v", MergeConfig(max_bad_share=0.4))
    assert not Path(f"{tmp_path}/v/_manifest.json").exists()


def test_combine_refuses_an_unfinished_partial(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        combine_partials(None, [str(tmp_path / "never-written")], LOCAL, str(tmp_path / "v"))


def test_combine_counts_the_null_key_rows_of_every_partial(tmp_path: Path) -> None:
    write(make_events(300, seed=1), tmp_path / "original/a.parquet")
    paths = uploads(tmp_path)
    events = make_events(200, seed=9)
    no_user = events.set_column(0, "user_id", pa.array([None] * 50 + events["user_id"].to_pylist()[50:]))
    paths.append(write(no_user, tmp_path / "incoming/u5.parquet"))
    run = tmp_path / "datasets/v=run1"
    partial_dirs = [
        merge_partial(local_source(path), LOCAL, f"{run}/_partials/{number}").version_dir
        for number, path in enumerate(paths)
    ]
    original = local_source(str(tmp_path / "original"))
    combined = combine_partials(original, partial_dirs, LOCAL, str(run))
    single = merge_datasets(original, [local_source(path) for path in paths], LOCAL, str(tmp_path / "single"))

    assert combined.null_key_rows == single.null_key_rows == 50
    assert [entry["source"] for entry in combined.quarantined_rows] == [paths[-1]]
    assert combined.rows_in == single.rows_in == combined.rows_out + combined.duplicates_dropped + 50
