"""merge_datasets end to end on local folders: rows, duplicates, bad files, lineage, idempotency."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import make_events, write

from driftloop.data.merge import MergeConfig, SlidingWindow, dataset_source, merge_datasets, read_manifest
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.storage import ParquetSource, local_source

LOCAL = pafs.LocalFileSystem()
KEY = ["user_id", "item_id", "event_type", "event_time"]


def read_version(version_dir: str) -> pa.Table:
    source = dataset_source(LOCAL, version_dir)
    return pa.concat_tables([pq.read_table(path) for path in source.paths])


def canonical(table: pa.Table) -> pa.Table:
    """Rows in key order, so two tables with the same rows compare equal."""
    return table.sort_by([(name, "ascending") for name in KEY]).combine_chunks()


def row_digest(table: pa.Table) -> str:
    """An independent content hash of a set of rows (sorted, serialised as JSON lines)."""
    import hashlib

    rows = canonical(table).to_pylist()
    return hashlib.sha256("\n".join(json.dumps(row, default=str, sort_keys=True) for row in rows).encode()).hexdigest()


def test_every_valid_row_is_in_the_output_once(tmp_path: Path) -> None:
    original = make_events(3_000, seed=1)
    upload_a = make_events(800, seed=2)
    upload_b = pa.concat_tables([upload_a.slice(0, 150), make_events(400, seed=3)])  # 150 cross-file duplicates
    upload_c = pa.concat_tables([make_events(200, seed=4)] * 2)  # every row twice within the file
    write(original, tmp_path / "original/part-0.parquet")
    for name, table in [("a", upload_a), ("b", upload_b), ("c", upload_c)]:
        write(table, tmp_path / f"new/{name}.parquet")

    manifest = merge_datasets(
        local_source(str(tmp_path / "original")), [local_source(str(tmp_path / "new"))], LOCAL, str(tmp_path / "v=1")
    )

    expected = pa.concat_tables([original, upload_a, make_events(400, seed=3), make_events(200, seed=4)])
    output = read_version(str(tmp_path / "v=1"))
    assert manifest.rows_in == 3_000 + 800 + 550 + 400
    assert manifest.duplicates_dropped == 150 + 200
    assert manifest.rows_out == output.num_rows == expected.num_rows
    assert row_digest(output) == row_digest(expected)
    assert manifest.quarantined == ()
    assert manifest.storage_bytes == sum(Path(tmp_path / "v=1" / f.path).stat().st_size for f in manifest.files)


def test_output_is_partitioned_by_utc_event_date(tmp_path: Path) -> None:
    write(make_events(1_000, seed=1, days=3), tmp_path / "original/a.parquet")
    write(make_events(100, seed=2, days=3), tmp_path / "new/b.parquet")
    manifest = merge_datasets(
        local_source(str(tmp_path / "original")), [local_source(str(tmp_path / "new"))], LOCAL, str(tmp_path / "v")
    )
    assert sorted({f.path.split("/")[0] for f in manifest.files}) == [
        "event_date=2026-03-01",
        "event_date=2026-03-02",
        "event_date=2026-03-03",
    ]
    for output in manifest.files:
        table = pq.read_table(tmp_path / "v" / output.path)
        dates = pc.unique(pc.strftime(table["event_time"], "%Y-%m-%d")).to_pylist()
        assert [f"event_date={date}" for date in dates] == [output.path.split("/")[0]]
    assert manifest.time_range["min"].startswith("2026-03-01")
    assert manifest.time_range["max"].startswith("2026-03-03")


def test_manifest_records_sources_versions_schema_and_is_json(tmp_path: Path) -> None:
    write(make_events(100, seed=1), tmp_path / "original/a.parquet")
    new_path = write(make_events(50, seed=2), tmp_path / "new/b.parquet")
    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(new_path)],
        LOCAL,
        str(tmp_path / "v"),
        source_versions={new_path: "etag-123"},
    )
    on_disk = json.loads((tmp_path / "v/_manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest.to_dict()))
    assert read_manifest(LOCAL, str(tmp_path / "v")) == manifest
    by_source = {record["source"]: record for record in on_disk["sources"]}
    assert by_source[new_path]["version"] == "etag-123"
    assert by_source[new_path]["role"] == "new" and by_source[new_path]["rows"] == 50
    assert {"name": "event_time", "type": "timestamp[us, tz=UTC]"} in on_disk["schema"]
    assert on_disk["previous_version"] is None
    assert {"source": new_path, "version": "etag-123"} in on_disk["consumed_sources"]


def test_bad_files_are_copied_to_quarantine_with_a_reason_and_never_deleted(tmp_path: Path) -> None:
    write(make_events(300, seed=1), tmp_path / "original/a.parquet")
    good = write(make_events(100, seed=2), tmp_path / "new/good.parquet")
    (tmp_path / "new/empty.parquet").write_bytes(b"")
    (tmp_path / "new/notes.parquet").write_bytes(b"user_id,item_id\nu1,i1\n")
    whole = (Path(good)).read_bytes()
    (tmp_path / "new/truncated.parquet").write_bytes(whole[: len(whole) // 2])
    before = {path: path.read_bytes() for path in (tmp_path / "new").iterdir()}

    config = MergeConfig(quarantine_dir=str(tmp_path / "quarantine"), max_bad_share=0.8)
    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        LOCAL,
        str(tmp_path / "v"),
        config,
    )

    reasons = {Path(entry["source"]).name: entry["reason"] for entry in manifest.quarantined}
    assert reasons == {
        "empty.parquet": "empty file (0 bytes)",
        "notes.parquet": "not a Parquet file (no PAR1 magic number at the start)",
        "truncated.parquet": "truncated Parquet file (no PAR1 magic number at the end)",
    }
    assert manifest.rows_out == 400
    for name in reasons:
        assert (tmp_path / "quarantine" / name).read_bytes() == before[tmp_path / "new" / name]
        reason = json.loads((tmp_path / "quarantine" / f"{name}.reason.json").read_text())
        assert reason["reason"] == reasons[name] and reason["source"].endswith(name)
    assert {path: path.read_bytes() for path in (tmp_path / "new").iterdir()} == before


def test_too_many_bad_new_files_fail_the_merge_without_a_manifest(tmp_path: Path) -> None:
    write(make_events(100, seed=1), tmp_path / "original/a.parquet")
    write(make_events(100, seed=2), tmp_path / "new/good.parquet")
    (tmp_path / "new/bad1.parquet").write_bytes(b"")
    (tmp_path / "new/bad2.parquet").write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match="2 of 3 new files are bad"):
        merge_datasets(
            local_source(str(tmp_path / "original")),
            [local_source(str(tmp_path / "new"))],
            LOCAL,
            str(tmp_path / "v"),
            MergeConfig(max_bad_share=0.5),
        )
    assert not (tmp_path / "v/_manifest.json").exists()
    assert (tmp_path / "v/_quarantine/bad1.parquet.reason.json").exists()


def test_a_file_corrupt_inside_its_data_is_quarantined_and_its_rows_dropped(tmp_path: Path) -> None:
    write(make_events(300, seed=1), tmp_path / "original/a.parquet")
    write(make_events(100, seed=2), tmp_path / "new/good.parquet")
    corrupt = tmp_path / "new/corrupt.parquet"
    write(make_events(5_000, seed=3), corrupt, compression="snappy", row_group_size=1_000)
    data = bytearray(corrupt.read_bytes())
    chunk = pq.ParquetFile(corrupt).metadata.row_group(2).column(0)
    header = chunk.dictionary_page_offset or chunk.data_page_offset
    data[header : header + 16] = b"\xff" * 16  # a garbled page header in the third row group
    corrupt.write_bytes(bytes(data))

    manifest = merge_datasets(
        local_source(str(tmp_path / "original")), [local_source(str(tmp_path / "new"))], LOCAL, str(tmp_path / "v")
    )
    assert [Path(entry["source"]).name for entry in manifest.quarantined] == ["corrupt.parquet"]
    assert manifest.quarantined[0]["reason"].startswith("unreadable data")
    assert manifest.rows_out == 400 == manifest.rows_in
    assert read_version(str(tmp_path / "v")).num_rows == 400


def test_replaying_an_upload_adds_no_second_copy(tmp_path: Path) -> None:
    write(make_events(1_000, seed=1), tmp_path / "original/a.parquet")
    upload = write(make_events(300, seed=2), tmp_path / "incoming/u1.parquet")
    first = merge_datasets(
        local_source(str(tmp_path / "original")), [local_source(upload)], LOCAL, str(tmp_path / "v=1")
    )
    previous = dataset_source(LOCAL, first.version_dir)

    replayed = merge_datasets(previous, [local_source(upload)], LOCAL, str(tmp_path / "v=2"))
    assert replayed.rows_out == first.rows_out == 1_300
    assert replayed.duplicates_dropped == 300
    assert replayed.previous_version == first.version_dir
    assert row_digest(read_version(replayed.version_dir)) == row_digest(read_version(first.version_dir))

    skipped = merge_datasets(
        dataset_source(LOCAL, str(tmp_path / "v=1")),
        [local_source(upload)],
        LOCAL,
        str(tmp_path / "v=3"),
        source_versions={upload: "etag-1"},
    )
    assert skipped.rows_out == 1_300  # read again: v=1 did not know the upload's ETag
    with_etag = merge_datasets(
        dataset_source(LOCAL, skipped.version_dir),
        [local_source(upload)],
        LOCAL,
        str(tmp_path / "v=4"),
        source_versions={upload: "etag-1"},
    )
    statuses = {record.source: record.status for record in with_etag.sources}
    assert statuses[upload] == "already_consumed"
    assert with_etag.rows_in == 1_300 and with_etag.duplicates_dropped == 0


def test_same_merge_twice_is_idempotent(tmp_path: Path) -> None:
    write(make_events(1_000, seed=1), tmp_path / "original/a.parquet")
    write(make_events(300, seed=2), tmp_path / "new/b.parquet")
    args = (local_source(str(tmp_path / "original")), [local_source(str(tmp_path / "new"))], LOCAL)
    first = merge_datasets(*args, str(tmp_path / "v=1"))
    again = merge_datasets(*args, str(tmp_path / "v=1"))
    elsewhere = merge_datasets(*args, str(tmp_path / "v=2"))
    assert again == first
    assert elsewhere.content_hash == first.content_hash


class Killed(BaseException):
    """Stands for the process dying: nothing in the merge may catch it."""


class DyingFileSystem(pafs.FileSystemHandler):
    """The local filesystem, until the ``opens_left``-th output stream is opened."""

    def __init__(self, opens_left: int) -> None:
        self.local, self.opens_left = LOCAL, opens_left

    def open_output_stream(self, path: str, metadata: object = None) -> pa.NativeFile:
        if self.opens_left == 0:
            raise Killed()
        self.opens_left -= 1
        return self.local.open_output_stream(path)

    def get_type_name(self) -> str:
        return "dying"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.local.open_input_file(path)

    def copy_file(self, src: str, dest: str) -> None:
        self.local.copy_file(src, dest)

    delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = move = None
    open_append_stream = None


def test_a_merge_killed_midway_leaves_no_manifest_and_the_next_run_succeeds(tmp_path: Path) -> None:
    write(make_events(2_000, seed=1, days=6), tmp_path / "original/a.parquet")
    write(make_events(500, seed=2, days=6), tmp_path / "new/b.parquet")
    args = (local_source(str(tmp_path / "original")), [local_source(str(tmp_path / "new"))])
    with pytest.raises(Killed):
        merge_datasets(*args, pafs.PyFileSystem(DyingFileSystem(opens_left=3)), str(tmp_path / "v=1"))
    assert len(list((tmp_path / "v=1").rglob("*.parquet"))) == 3
    with pytest.raises(NotFoundError):
        read_manifest(LOCAL, str(tmp_path / "v=1"))

    resumed = merge_datasets(*args, LOCAL, str(tmp_path / "v=1"))
    fresh = merge_datasets(*args, LOCAL, str(tmp_path / "v=2"))
    assert resumed.rows_out == 2_500 and resumed.content_hash == fresh.content_hash


def test_buckets_larger_than_the_memory_budget_are_split_again(tmp_path: Path) -> None:
    original = make_events(6_000, seed=1, days=2)
    write(original, tmp_path / "original/a.parquet")
    write(pa.concat_tables([original.slice(0, 500), make_events(1_000, seed=2, days=2)]), tmp_path / "new/b.parquet")
    config = MergeConfig(bucket_bytes=64 * 1024, spill_buffer_bytes=32 * 1024, batch_rows=700)
    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        LOCAL,
        str(tmp_path / "v"),
        config,
    )
    assert len(manifest.files) > 4
    assert manifest.duplicates_dropped == 500
    expected = pa.concat_tables([original, make_events(1_000, seed=2, days=2)])
    assert row_digest(read_version(manifest.version_dir)) == row_digest(expected)


def test_sliding_window_keeps_recent_days_and_a_stable_sample_of_older_rows(tmp_path: Path) -> None:
    original = make_events(6_000, seed=1, days=10)
    write(original, tmp_path / "original/a.parquet")
    write(make_events(10, seed=2, days=10), tmp_path / "new/b.parquet")
    config = MergeConfig(retention=SlidingWindow(days=3, sample_fraction=0.25, seed=7))
    first = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        LOCAL,
        str(tmp_path / "v=1"),
        config,
    )
    output = read_version(first.version_dir)
    recent = pc.greater_equal(
        output["event_time"], pa.scalar(pa.scalar("2026-03-08").cast(pa.date32())).cast(pa.timestamp("us", tz="UTC"))
    )
    assert first.retention["window_start"] == "2026-03-08"
    all_rows = pa.concat_tables([original, make_events(10, seed=2, days=10)])
    all_recent = pc.sum(pc.greater_equal(all_rows["event_time"], pc.min(output.filter(recent)["event_time"]))).as_py()
    assert pc.sum(recent).as_py() == all_recent
    old_in, old_kept = all_rows.num_rows - all_recent, output.num_rows - all_recent
    assert 0.18 < old_kept / old_in < 0.32
    assert first.retention["rows_dropped"] == old_in - old_kept
    for event_type in ["view", "cart", "purchase"]:
        share_in = pc.sum(pc.equal(all_rows["event_type"], event_type)).as_py() / all_rows.num_rows
        share_out = pc.sum(pc.equal(output.filter(pc.invert(recent))["event_type"], event_type)).as_py() / old_kept
        assert abs(share_in - share_out) < 0.05

    again = merge_datasets(dataset_source(LOCAL, first.version_dir), [], LOCAL, str(tmp_path / "v=2"), config)
    assert again.rows_out == first.rows_out and again.retention["rows_dropped"] == 0


def test_a_previous_version_with_a_missing_file_is_an_error(tmp_path: Path) -> None:
    write(make_events(100, seed=1), tmp_path / "original/a.parquet")
    first = merge_datasets(local_source(str(tmp_path / "original")), [], LOCAL, str(tmp_path / "v=1"))
    previous = dataset_source(LOCAL, first.version_dir)
    Path(previous.paths[0]).write_bytes(b"")
    with pytest.raises(InvalidInputError, match="committed version file is bad"):
        merge_datasets(previous, [], LOCAL, str(tmp_path / "v=2"))


def test_an_empty_merge_writes_an_empty_version(tmp_path: Path) -> None:
    manifest = merge_datasets(None, [ParquetSource(LOCAL, ())], LOCAL, str(tmp_path / "v"))
    assert manifest.rows_out == 0 and manifest.files == () and (tmp_path / "v/_manifest.json").exists()


def test_sliding_window_never_samples_a_rare_stratum_away(tmp_path: Path) -> None:
    original = make_events(3_000, seed=1, days=6)
    refunds = make_events(12, seed=5, days=6)
    refunds = refunds.set_column(refunds.schema.get_field_index("event_type"), "event_type", pa.array(["refund"] * 12))
    write(pa.concat_tables([original, refunds]), tmp_path / "original/a.parquet")
    config = MergeConfig(retention=SlidingWindow(days=2, sample_fraction=0.0))
    manifest = merge_datasets(local_source(str(tmp_path / "original")), [], LOCAL, str(tmp_path / "v"), config)

    def old_pairs(table: pa.Table) -> list[tuple[str, str]]:
        old = table.filter(pc.less(table["event_time"], pa.scalar(dt.datetime(2026, 3, 5, tzinfo=dt.UTC))))
        return list(
            zip(pc.strftime(old["event_time"], "%Y-%m-%d").to_pylist(), old["event_type"].to_pylist(), strict=True)
        )

    kept = old_pairs(read_version(manifest.version_dir))
    assert manifest.retention["window_start"] == "2026-03-05"
    assert sorted(kept) == sorted(set(old_pairs(original) + old_pairs(refunds)))  # one row per date and type


def test_rows_with_a_null_key_column_are_quarantined_and_counted_never_merged_as_duplicates(tmp_path: Path) -> None:
    write(make_events(500, seed=1), tmp_path / "original/a.parquet")
    upload = make_events(20_000, seed=2)
    null_times = pa.nulls(upload.num_rows, upload.schema.field("event_time").type)
    no_time = upload.set_column(upload.schema.get_field_index("event_time"), "event_time", null_times)
    mixed = pa.concat_tables([no_time.slice(0, 19_000), upload.slice(19_000)])
    item_ids = mixed["item_id"].to_pylist()
    item_ids[-10:] = [None] * 10  # ten rows with a timestamp but no item
    mixed = mixed.set_column(mixed.schema.get_field_index("item_id"), "item_id", pa.array(item_ids))
    write(mixed, tmp_path / "new/upload.parquet")

    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        LOCAL,
        str(tmp_path / "v"),
        MergeConfig(quarantine_dir=str(tmp_path / "quarantine")),
    )

    assert manifest.null_key_rows == 19_010
    assert manifest.duplicates_dropped == 0
    assert manifest.rows_in == 20_500
    assert manifest.rows_out == 500 + 990 == read_version(str(tmp_path / "v")).num_rows
    assert manifest.rows_in == manifest.rows_out + manifest.duplicates_dropped + manifest.null_key_rows
    assert manifest.quarantined == ()  # the file itself was merged: its other rows are in the version
    [entry] = manifest.quarantined_rows
    assert entry["source"].endswith("upload.parquet") and entry["rows"] == 19_010
    assert entry["null_in"] == {"event_time": 19_000, "item_id": 10}
    assert "null key column" in entry["reason"]
    kept = pq.read_table(entry["copy"])
    assert kept.num_rows == 19_010 and row_digest(kept.cast(mixed.schema)) == row_digest(
        pa.concat_tables([mixed.slice(0, 19_000), mixed.slice(19_990)])
    )
    assert json.loads(Path(f"{entry['copy']}.reason.json").read_text())["rows"] == 19_010
    on_disk = json.loads((tmp_path / "v/_manifest.json").read_text())
    assert on_disk["null_key_rows"] == 19_010


def test_a_file_with_a_duplicated_column_name_is_quarantined_with_the_reason(tmp_path: Path) -> None:
    write(make_events(300, seed=1), tmp_path / "original/a.parquet")
    write(make_events(100, seed=2), tmp_path / "new/good.parquet")
    events = make_events(100, seed=3)
    twice = pa.table([*events.columns, events["price"]], names=[*events.column_names, "price"])
    write(twice, tmp_path / "new/twice.parquet")

    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        LOCAL,
        str(tmp_path / "v"),
        MergeConfig(quarantine_dir=str(tmp_path / "quarantine")),
    )

    assert [(Path(entry["source"]).name, entry["reason"]) for entry in manifest.quarantined] == [
        ("twice.parquet", "duplicate column name(s): price")
    ]
    assert manifest.rows_out == 400
    assert (tmp_path / "quarantine/twice.parquet").exists()


def test_a_committed_version_asked_for_again_with_other_inputs_is_refused(tmp_path: Path) -> None:
    original = local_source(write(make_events(300, seed=1), tmp_path / "original/a.parquet"))
    first = local_source(write(make_events(100, seed=2), tmp_path / "new/first.parquet"))
    second = local_source(write(make_events(100, seed=3), tmp_path / "new/second.parquet"))
    committed = merge_datasets(original, [first], LOCAL, str(tmp_path / "v=1"))

    assert merge_datasets(original, [first], LOCAL, str(tmp_path / "v=1")) == committed
    with pytest.raises(InvalidInputError, match=r"v=1 already holds a version merged from other inputs.*second"):
        merge_datasets(original, [second], LOCAL, str(tmp_path / "v=1"))
    write(make_events(120, seed=2), tmp_path / "new/first.parquet")  # same name, other content
    with pytest.raises(InvalidInputError, match="first.parquet"):
        merge_datasets(original, [first], LOCAL, str(tmp_path / "v=1"))
    assert read_manifest(LOCAL, str(tmp_path / "v=1")) == committed


def test_null_key_rows_of_a_file_later_found_corrupt_are_not_counted_and_nothing_is_deleted(tmp_path: Path) -> None:
    write(make_events(300, seed=1), tmp_path / "original/a.parquet")
    events = make_events(5_000, seed=3)
    events = events.set_column(0, "user_id", pa.array([None] * 10 + events["user_id"].to_pylist()[10:]))
    corrupt = tmp_path / "new/corrupt.parquet"
    write(events, corrupt, compression="snappy", row_group_size=1_000)
    data = bytearray(corrupt.read_bytes())
    chunk = pq.ParquetFile(corrupt).metadata.row_group(2).column(0)
    header = chunk.dictionary_page_offset or chunk.data_page_offset
    data[header : header + 16] = b"\xff" * 16
    corrupt.write_bytes(bytes(data))
    write(make_events(100, seed=2), tmp_path / "new/good.parquet")

    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        LOCAL,
        str(tmp_path / "v"),
        MergeConfig(quarantine_dir=str(tmp_path / "quarantine")),
    )
    assert [Path(entry["source"]).name for entry in manifest.quarantined] == ["corrupt.parquet"]
    assert manifest.null_key_rows == 0 and manifest.quarantined_rows == ()
    assert manifest.rows_out == manifest.rows_in == 400
    partial = json.loads((tmp_path / "quarantine/corrupt.parquet.null-key-rows.parquet.reason.json").read_text())
    assert partial["reason"].startswith("partial copy only")
