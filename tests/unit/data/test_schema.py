"""Schema evolution matrix: which type changes widen, which are rejected, and how rows are converted."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import make_events, write

from driftloop.data.merge import dataset_source, merge_datasets
from driftloop.data.schema import TIMESTAMP, conform_batch, unify_schemas
from driftloop.errors import UnsafeSchemaChangeError
from driftloop.storage import local_source

WIDENING = [
    (pa.int32(), pa.int64(), pa.int64()),
    (pa.int64(), pa.int8(), pa.int64()),
    (pa.uint16(), pa.int64(), pa.int64()),
    (pa.int32(), pa.float64(), pa.float64()),
    (pa.float64(), pa.int64(), pa.float64()),
    (pa.float32(), pa.float64(), pa.float64()),
    (pa.string(), pa.dictionary(pa.int32(), pa.string()), pa.string()),
    (pa.dictionary(pa.int8(), pa.string()), pa.string(), pa.string()),
    (pa.large_string(), pa.string(), pa.string()),
    (pa.timestamp("ns"), pa.timestamp("us", tz="UTC"), TIMESTAMP),
    (pa.timestamp("ms", tz="Asia/Tokyo"), pa.timestamp("s"), TIMESTAMP),
    (pa.null(), pa.float64(), pa.float64()),
    (pa.bool_(), pa.null(), pa.bool_()),
]
UNSAFE = [
    (pa.float64(), pa.string()),
    (pa.string(), pa.int64()),
    (pa.int64(), pa.uint64()),
    (pa.bool_(), pa.int64()),
    (pa.timestamp("us", tz="UTC"), pa.string()),
    (pa.timestamp("us", tz="UTC"), pa.date32()),
    (pa.list_(pa.string()), pa.string()),
]


@pytest.mark.parametrize(("before", "after", "unified"), WIDENING, ids=str)
def test_safe_changes_widen(before: pa.DataType, after: pa.DataType, unified: pa.DataType) -> None:
    schema = unify_schemas([("old.parquet", pa.schema([("x", before)])), ("new.parquet", pa.schema([("x", after)]))])
    assert schema == pa.schema([("x", unified)])


@pytest.mark.parametrize(("before", "after"), UNSAFE, ids=str)
def test_unsafe_changes_name_the_file_and_the_column(before: pa.DataType, after: pa.DataType) -> None:
    with pytest.raises(UnsafeSchemaChangeError, match=r"^s3://b/new\.parquet: column 'price'"):
        unify_schemas(
            [
                ("s3://b/old.parquet", pa.schema([("price", before)])),
                ("s3://b/new.parquet", pa.schema([("price", after)])),
            ]
        )


def test_added_and_missing_columns_keep_first_seen_order_and_fill_nulls() -> None:
    first = pa.schema([("a", pa.int32()), ("b", pa.string())])
    second = pa.schema([("b", pa.string()), ("c", pa.float32())])
    target = unify_schemas([("1", first), ("2", second)])
    assert target.names == ["a", "b", "c"]
    batch = pa.record_batch({"b": ["x", "y"], "c": pa.array([1.5, None], pa.float32())})
    conformed = conform_batch(batch, target, "2")
    assert conformed.to_pydict() == {"a": [None, None], "b": ["x", "y"], "c": [1.5, None]}
    assert conformed.schema == target


def test_timestamps_are_normalised_to_utc_instants() -> None:
    tokyo = pa.array([0], pa.timestamp("ms", tz="Asia/Tokyo"))  # the epoch, shown in Tokyo time
    naive = pa.array([1_000_000_000], pa.timestamp("ns"))  # naive values are read as UTC
    target = pa.schema([("t", TIMESTAMP)])
    assert conform_batch(pa.record_batch({"t": tokyo}), target, "f").column(0).cast(pa.int64()).to_pylist() == [0]
    assert conform_batch(pa.record_batch({"t": naive}), target, "f").column(0).cast(pa.int64()).to_pylist() == [
        1_000_000
    ]


def test_a_lossy_value_conversion_is_rejected_naming_file_and_column() -> None:
    nanos = pa.record_batch({"event_time": pa.array([1_000_000_001], pa.timestamp("ns", tz="UTC"))})
    with pytest.raises(UnsafeSchemaChangeError, match=r"^up\.parquet: column 'event_time'.*without loss"):
        conform_batch(nanos, pa.schema([("event_time", TIMESTAMP)]), "up.parquet")


def test_merge_across_evolving_files(tmp_path: Path) -> None:
    original = make_events(400, seed=1)
    evolved = make_events(200, seed=2)
    evolved = evolved.set_column(
        evolved.schema.get_field_index("user_tenure_days"),
        "user_tenure_days",
        evolved["user_tenure_days"].cast(pa.int32()),  # int -> float widening back to the contract type
    )
    evolved = evolved.set_column(
        evolved.schema.get_field_index("region"), "region", evolved["region"].dictionary_encode()
    )
    evolved = evolved.set_column(
        evolved.schema.get_field_index("event_time"), "event_time", evolved["event_time"].cast(pa.timestamp("ns"))
    )
    evolved = evolved.drop_columns(["discount"]).append_column("coupon", pa.array(["c1"] * 200))
    write(original, tmp_path / "original/a.parquet")
    write(evolved, tmp_path / "new/b.parquet")

    manifest = merge_datasets(
        local_source(str(tmp_path / "original")),
        [local_source(str(tmp_path / "new"))],
        pafs.LocalFileSystem(),
        str(tmp_path / "v"),
    )
    types = {column["name"]: column["type"] for column in manifest.schema}
    assert types["user_tenure_days"] == "double" and types["region"] == "string" and types["coupon"] == "string"
    assert types["event_time"] == "timestamp[us, tz=UTC]"
    assert list(types)[-1] == "coupon"
    output = pa.concat_tables(
        pq.read_table(path) for path in dataset_source(pafs.LocalFileSystem(), str(tmp_path / "v")).paths
    )
    assert output.num_rows == 600
    assert output.filter(pa.compute.is_null(output["discount"])).num_rows == 200
    assert output.filter(pa.compute.equal(output["coupon"], "c1")).num_rows == 200


def test_merge_rejects_an_unsafe_change_before_writing_anything(tmp_path: Path) -> None:
    write(make_events(100, seed=1), tmp_path / "original/a.parquet")
    broken = make_events(100, seed=2)
    broken = broken.set_column(broken.schema.get_field_index("price"), "price", broken["price"].cast(pa.string()))
    write(broken, tmp_path / "new/b.parquet")
    with pytest.raises(UnsafeSchemaChangeError, match=r"b\.parquet: column 'price' has type string"):
        merge_datasets(
            local_source(str(tmp_path / "original")),
            [local_source(str(tmp_path / "new"))],
            pafs.LocalFileSystem(),
            str(tmp_path / "v"),
        )
    assert not (tmp_path / "v").exists()
