"""The S3 filesystem and JSON documents (boto3-backed), and the merge through them, against moto's in-process S3."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from conftest import make_events
from moto import mock_aws

from driftloop.adapters.s3 import get_json, put_json
from driftloop.data.manifest import find_manifest
from driftloop.data.merge import dataset_source, merge_datasets, read_manifest
from driftloop.storage import s3_filesystem, s3_source

BUCKET = "driftloop-test"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put_parquet(client: Any, key: str, rows: int, seed: int) -> str:
    buffer = io.BytesIO()
    pq.write_table(make_events(rows, seed=seed), buffer)
    return client.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())["ETag"]


def test_merge_on_s3_quarantines_by_copy_and_commits_a_manifest(s3: Any) -> None:
    put_parquet(s3, "original/part-0.parquet", 500, seed=1)
    etag = put_parquet(s3, "incoming/u1.parquet", 100, seed=2)
    s3.put_object(Bucket=BUCKET, Key="incoming/broken.parquet", Body=b"PAR1 and then nothing")
    filesystem = s3_filesystem(s3)
    new = s3_source(s3, BUCKET, ["incoming/u1.parquet", "incoming/broken.parquet"])
    out_dir = f"{BUCKET}/datasets/recommender/v=run1"

    manifest = merge_datasets(
        s3_source(s3, BUCKET, ["original/part-0.parquet"]),
        [new],
        filesystem,
        out_dir,
        source_versions={f"s3://{BUCKET}/incoming/u1.parquet": etag},
    )

    assert manifest.rows_out == 600
    assert manifest.quarantined == (
        {
            "source": f"s3://{BUCKET}/incoming/broken.parquet",
            "reason": "truncated Parquet file (no PAR1 magic number at the end)",
        },
    )
    quarantine = "datasets/recommender/v=run1/_quarantine/broken.parquet"
    assert s3.get_object(Bucket=BUCKET, Key=quarantine)["Body"].read() == b"PAR1 and then nothing"
    reason = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{quarantine}.reason.json")["Body"].read())
    assert reason["source"] == f"s3://{BUCKET}/incoming/broken.parquet"
    assert s3.head_object(Bucket=BUCKET, Key="incoming/broken.parquet")  # the input is still there
    assert read_manifest(filesystem, out_dir) == manifest
    files = dataset_source(filesystem, out_dir)
    assert sum(pq.ParquetFile(filesystem.open_input_file(path)).metadata.num_rows for path in files.paths) == 600
    assert {"source": f"s3://{BUCKET}/incoming/u1.parquet", "version": etag} in manifest.consumed_sources


class Requests:
    """The S3 operations a client sends, by name."""

    def __init__(self, client: Any) -> None:
        self.sent: list[str] = []
        client.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.sent.append(model.name)


def test_a_small_object_is_opened_and_read_with_one_get(s3: Any) -> None:
    put_parquet(s3, "incoming/small.parquet", 200, seed=3)
    requests = Requests(s3)
    filesystem = s3_filesystem(s3)
    table = pq.read_table(filesystem.open_input_file(f"{BUCKET}/incoming/small.parquet"))
    assert table.num_rows == 200 and requests.sent == ["GetObject"]


def test_a_size_asked_first_is_the_version_then_opened(s3: Any) -> None:
    body = b"version one, longer than the next"
    s3.put_object(Bucket=BUCKET, Key="incoming/changing.bin", Body=body)
    requests = Requests(s3)
    filesystem = s3_filesystem(s3)
    info = filesystem.get_file_info(f"{BUCKET}/incoming/changing.bin")
    assert filesystem.open_input_file(f"{BUCKET}/incoming/changing.bin").read() == body
    assert info.size == len(body) and requests.sent == ["HeadObject", "GetObject"]
    filesystem.get_file_info(f"{BUCKET}/incoming/changing.bin")
    s3.put_object(Bucket=BUCKET, Key="incoming/changing.bin", Body=b"version two")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        filesystem.open_input_file(f"{BUCKET}/incoming/changing.bin").read()
    assert filesystem.open_input_file(f"{BUCKET}/incoming/changing.bin").read() == b"version two"


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 10_000])
def test_objects_of_any_size_read_back_whole_and_in_ranges(s3: Any, monkeypatch: pytest.MonkeyPatch,
                                                           size: int) -> None:
    monkeypatch.setattr("driftloop.storage._WHOLE_OBJECT_LIMIT", 4096)
    body = bytes(index % 251 for index in range(size))
    s3.put_object(Bucket=BUCKET, Key="objects/sized.bin", Body=body)
    filesystem = s3_filesystem(s3)
    path = f"{BUCKET}/objects/sized.bin"
    assert filesystem.open_input_file(path).read() == body
    assert filesystem.open_input_stream(path).read() == body
    handle = filesystem.open_input_file(path)
    for start, length in [(0, 10), (size // 2, 3000), (max(0, size - 5), 5), (max(0, size - 4200), 200)]:
        handle.seek(start)
        assert handle.read(length) == body[start:start + length]
    with pytest.raises(FileNotFoundError, match="no such object"):
        filesystem.open_input_file(f"{BUCKET}/objects/missing.bin")


def test_a_large_parquet_file_reads_its_footer_from_the_first_get(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("driftloop.storage._WHOLE_OBJECT_LIMIT", 64 * 1024)
    buffer = io.BytesIO()
    pq.write_table(make_events(20_000, seed=4), buffer, row_group_size=5_000)
    assert buffer.getbuffer().nbytes > 64 * 1024
    s3.put_object(Bucket=BUCKET, Key="incoming/large.parquet", Body=buffer.getvalue())
    requests = Requests(s3)
    parquet = pq.ParquetFile(s3_filesystem(s3).open_input_file(f"{BUCKET}/incoming/large.parquet"))
    assert parquet.metadata.num_rows == 20_000 and requests.sent == ["GetObject"]
    assert parquet.read().equals(pq.read_table(io.BytesIO(buffer.getvalue())))


def test_a_manifest_is_looked_for_with_one_request(s3: Any) -> None:
    put_parquet(s3, "incoming/u1.parquet", 50, seed=5)
    filesystem = s3_filesystem(s3)
    out_dir = f"{BUCKET}/datasets/recommender/v=run2"
    merge_datasets(s3_source(s3, BUCKET, ["incoming/u1.parquet"]), [], filesystem, out_dir)
    requests = Requests(s3)
    assert find_manifest(filesystem, out_dir) is not None
    assert find_manifest(filesystem, f"{BUCKET}/datasets/recommender/v=none") is None
    assert requests.sent == ["GetObject", "GetObject"]


def test_a_size_asked_before_a_write_is_not_used_after_it(s3: Any) -> None:
    filesystem = s3_filesystem(s3)
    path = f"{BUCKET}/reports/rewritten.json"
    with filesystem.open_output_stream(path) as stream:
        stream.write(b"first body, the longer one")
    filesystem.get_file_info(path)
    with filesystem.open_output_stream(path) as stream:
        stream.write(b"second")
    assert filesystem.open_input_file(path).read() == b"second"


def test_reports_are_indented_json_and_baselines_compact_with_the_same_content(s3: Any) -> None:
    document = {"b": [1.5, 2, None], "a": {"nested": "value"}}
    put_json(s3, BUCKET, "reports/r1/decision.json", document)
    put_json(s3, BUCKET, "baselines/m/r1.json", document, compact=True)
    assert s3.get_object(Bucket=BUCKET, Key="reports/r1/decision.json")["Body"].read().startswith(b'{\n  "a": {')
    assert s3.get_object(Bucket=BUCKET, Key="baselines/m/r1.json")["Body"].read() == \
        b'{"a":{"nested":"value"},"b":[1.5,2,null]}'
    assert get_json(s3, BUCKET, "reports/r1/decision.json") == get_json(s3, BUCKET, "baselines/m/r1.json") == document


def test_an_empty_object_that_s3_refuses_a_range_of_reads_as_empty(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put_object(Bucket=BUCKET, Key="incoming/empty.parquet", Body=b"")
    get_object = s3.get_object

    def as_aws_answers(**kwargs: Any) -> Any:  # S3 answers a range of an empty object with 416 InvalidRange
        if "Range" in kwargs and kwargs["Key"] == "incoming/empty.parquet":
            raise ClientError({"Error": {"Code": "InvalidRange", "Message": "not satisfiable"}}, "GetObject")
        return get_object(**kwargs)

    monkeypatch.setattr(s3, "get_object", as_aws_answers)
    handle = s3_filesystem(s3).open_input_file(f"{BUCKET}/incoming/empty.parquet")
    assert handle.size() == 0 and handle.read() == b""
