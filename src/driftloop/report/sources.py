"""Where the report reads from: a bucket's objects, in a local workspace or in S3.

Only three prefixes matter: ``runs/<run_id>/record.json`` (run records), ``reports/<run_id>/...``
(drift reports and A/B stage decisions) and ``feedback/<endpoint>/date=YYYY-MM-DD/*.parquet``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from driftloop.errors import NotFoundError

RUNS_PREFIX = "runs/"
REPORTS_PREFIX = "reports/"
FEEDBACK_PREFIX = "feedback/"
WORKSPACE_INDEX = Path("s3") / "index.json"
WORKSPACE_OBJECTS = Path("s3") / "objects"


class ObjectStore(Protocol):
    """Read-only access to one bucket's objects by key."""

    @property
    def location(self) -> str:
        """How the bucket is named to readers of the report."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...

    def read(self, key: str) -> bytes: ...


def read_json(store: ObjectStore, key: str) -> Any:
    return json.loads(store.read(key))


class WorkspaceStore:
    """The data bucket of a local workspace (``driftloop --workspace DIR``), read from its S3 snapshot.

    The snapshot is written when a local command ends, so a command still running is not yet seen.
    Without ``bucket``, the bucket holding run records (else feedback) is the data bucket.
    """

    def __init__(self, workspace: Path, bucket: str | None = None) -> None:
        index_file = workspace / WORKSPACE_INDEX
        if not index_file.exists():
            raise NotFoundError(f"{workspace} is not a driftloop workspace with S3 objects (no {WORKSPACE_INDEX})")
        entries = json.loads(index_file.read_text()).values()
        self.bucket = bucket or _data_bucket(entries, workspace)
        self.workspace = workspace
        self._blobs = {entry["key"]: entry["sha256"] for entry in entries if entry["bucket"] == self.bucket}

    @property
    def location(self) -> str:
        return f"s3://{self.bucket} in workspace {self.workspace}"

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self._blobs if key.startswith(prefix))

    def read(self, key: str) -> bytes:
        if key not in self._blobs:
            raise NotFoundError(f"s3://{self.bucket}/{key} is not in workspace {self.workspace}")
        return (self.workspace / WORKSPACE_OBJECTS / self._blobs[key]).read_bytes()


def _data_bucket(entries: Any, workspace: Path) -> str:
    buckets: dict[str, set[str]] = {}
    for entry in entries:
        buckets.setdefault(entry["bucket"], set()).add(entry["key"].split("/", 1)[0] + "/")
    for prefix in (RUNS_PREFIX, FEEDBACK_PREFIX):
        holding = sorted(name for name, prefixes in buckets.items() if prefix in prefixes)
        if holding:
            return holding[0]
    raise NotFoundError(f"workspace {workspace} holds no run records or feedback yet")


class S3Store:
    """A data bucket in AWS, through a boto3 S3 client (passed in; this module does not import boto3)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}"

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(entry["Key"] for entry in page.get("Contents", []))
        return sorted(found)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
