"""The workspace's S3 snapshot reads only what changed since the last one (from moto's store), and restores
everything."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftloop.local.moto_store import stored_objects
from driftloop.local.workspace import Workspace

BUCKET = "data"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture
def s3() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class _CountingReads:
    """The bucket's stored objects, remembering which bodies the snapshot read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def objects(self) -> list[Any]:
        return [dataclasses.replace(obj, read=self._counted(obj)) for obj in stored_objects(ACCOUNT, [BUCKET])]

    def _counted(self, obj: Any) -> Any:
        def read() -> bytes:
            self.read.append(obj.key)
            return obj.read()
        return read


def test_a_second_snapshot_reads_only_new_and_changed_objects(s3: Any, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    first = _CountingReads()
    workspace.save_s3(first.objects())
    assert sorted(first.read) == ["a", "b", "c"]

    s3.put_object(Bucket=BUCKET, Key="b", Body=b"b, changed")
    s3.put_object(Bucket=BUCKET, Key="d", Body=b"d")
    s3.delete_object(Bucket=BUCKET, Key="c")
    second = _CountingReads()
    workspace.save_s3(second.objects())
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
    workspace.save_s3(stored_objects(ACCOUNT, [BUCKET]))
    for blob in workspace.objects.iterdir():
        blob.unlink()
    again = _CountingReads()
    workspace.save_s3(again.objects())
    assert again.read == ["a"] and len(list(workspace.objects.iterdir())) == 1


def test_the_snapshot_keeps_what_get_object_returns(s3: Any, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="report.html", Body=b"<html/>", ContentType="text/html")
    s3.put_object(Bucket=BUCKET, Key="gone", Body=b"old")
    s3.delete_object(Bucket=BUCKET, Key="gone")  # its latest version is a delete marker
    s3.put_object(Bucket=BUCKET, Key="twice", Body=b"first")
    s3.put_object(Bucket=BUCKET, Key="twice", Body=b"second")
    workspace.save_s3(stored_objects(ACCOUNT, [BUCKET]))
    index = {entry["key"]: entry for entry in workspace.load_index().values()}
    assert sorted(index) == ["report.html", "twice"]
    for key, entry in index.items():
        response = s3.head_object(Bucket=BUCKET, Key=key)
        assert (entry["etag"], entry["size"], entry["content_type"]) == (
            response["ETag"].strip('"'), response["ContentLength"], response["ContentType"])
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert (workspace.objects / entry["sha256"]).read_bytes() == body
