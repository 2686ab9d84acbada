"""JSON documents in S3: indented for people, compact for what only a step reads back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftloop.adapters.s3 import get_json, put_json

BUCKET = "driftloop-json"
DOCUMENT = {"b": [1.5, 2, None], "a": {"nested": "value"}}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def body(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_reports_are_indented_and_baselines_compact_with_the_same_content(s3: Any) -> None:
    put_json(s3, BUCKET, "reports/r1/decision.json", DOCUMENT)
    put_json(s3, BUCKET, "baselines/m/r1.json", DOCUMENT, compact=True)
    assert body(s3, "reports/r1/decision.json").startswith(b'{\n  "a": {')
    assert body(s3, "baselines/m/r1.json") == b'{"a":{"nested":"value"},"b":[1.5,2,null]}'
    assert get_json(s3, BUCKET, "reports/r1/decision.json") == get_json(s3, BUCKET, "baselines/m/r1.json") == DOCUMENT
    assert json.loads(body(s3, "baselines/m/r1.json")) == DOCUMENT
