"""The workspace's S3 snapshot reads only what changed since the last one, and restores everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftloop.local.workspace import Workspace

BUCKET = "data"


@pytest.fixture
def s3() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class _CountingReads:
    def __init__(self, client: Any) -> None:
        self.client, self.read = client, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_object(self, **request: Any) -> Any:
        self.read.append(request["Key"])
        return self.client.get_object(**request)


def test_a_second_snapshot_reads_only_new_and_changed_objects(s3: Any, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    first = _CountingReads(s3)
    workspace.save_s3(first, [BUCKET])
    assert sorted(first.read) == ["a", "b", "c"]

    s3.put_object(Bucket=BUCKET, Key="b", Body=b"b, changed")
    s3.put_object(Bucket=BUCKET, Key="d", Body=b"d")
    s3.delete_object(Bucket=BUCKET, Key="c")
    second = _CountingReads(s3)
    workspace.save_s3(second, [BUCKET])
    assert sorted(second.read) == ["b", "d"]
    assert sorted(entry["key"] for entry in workspace.load_index().values()) == ["a", "b", "d"]

    with mock_aws():
        fresh = boto3.client("s3", region_name="us-east-1")
        fresh.create_bucket(Bucket=BUCKET)
        workspace.restore_s3(fresh)
        bodies = {key: fresh.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in ("a", "b", "d")}
    assert bodies == {"a": b"a", "b": b"b, changed", "d": b"d"}


def test_a_missing_blob_is_read_again(s3: Any, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"a")
    workspace.save_s3(s3, [BUCKET])
    for blob in workspace.objects.iterdir():
        blob.unlink()
    again = _CountingReads(s3)
    workspace.save_s3(again, [BUCKET])
    assert again.read == ["a"] and len(list(workspace.objects.iterdir())) == 1
