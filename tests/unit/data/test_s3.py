"""The merge through the boto3-backed S3 filesystem, against moto's in-process S3."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from conftest import make_events
from moto import mock_aws

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
