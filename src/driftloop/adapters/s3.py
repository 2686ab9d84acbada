"""Small S3 helpers over a boto3 client: JSON documents and listings. Nothing here deletes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.layout import s3_uri


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: str
    version_id: str | None = None

    def uri(self, bucket: str) -> str:
        return s3_uri(bucket, self.key)


def get_json(s3: Any, bucket: str, key: str) -> Any:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        raise_for_client_error(error, s3_uri(bucket, key))
    return json.loads(body)


def put_json(s3: Any, bucket: str, key: str, document: Any, *, compact: bool = False) -> str:
    """``document`` as JSON, indented for people, or ``compact`` for what only a step reads back (a drift
    baseline: Python encodes indented JSON without its C encoder, twice as slowly, and it is 60% larger)."""
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=None if compact else 2, separators=(",", ":") if compact else None,
                        sort_keys=True, default=str).encode(),
        ContentType="application/json",
    )
    return s3_uri(bucket, key)


def put_bytes(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return s3_uri(bucket, key)


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise_for_client_error(error, s3_uri(bucket, key))


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            yield ObjectInfo(
                key=entry["Key"],
                etag=entry["ETag"].strip('"'),
                size=int(entry["Size"]),
                last_modified=entry["LastModified"].isoformat(),
            )


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
