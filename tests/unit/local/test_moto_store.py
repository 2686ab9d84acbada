"""What the local runtime writes into moto's S3 store directly is what a PutObject leaves there, events included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftloop.local.moto_store import put_object, stored_objects

ACCOUNT = "123456789012"  # moto's default account
BUCKET = "captures"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    """A versioned bucket sending its events to EventBridge, and a queue receiving every S3 event."""
    with mock_aws():
        s3, sqs, events = (boto3.client(name, region_name="us-east-1") for name in ("s3", "sqs", "events"))
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_notification_configuration(Bucket=BUCKET,
                                                 NotificationConfiguration={"EventBridgeConfiguration": {}})
        queue = sqs.create_queue(QueueName="s3-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="s3", EventPattern=json.dumps({"source": ["aws.s3"]}), State="ENABLED")
        events.put_targets(Rule="s3", Targets=[{"Id": "queue", "Arn": arn}])
        yield s3, lambda: [json.loads(message["Body"]) for message in
                           sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]


def test_a_direct_write_is_a_new_version_with_the_event_a_put_object_sends(aws: tuple[Any, Any]) -> None:
    s3, received = aws
    s3.put_object(Bucket=BUCKET, Key="by-api", Body=b"one")
    put_object(ACCOUNT, BUCKET, "direct", b"two")
    put_object(ACCOUNT, BUCKET, "direct", b"three")
    assert s3.get_object(Bucket=BUCKET, Key="direct")["Body"].read() == b"three"
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="direct")["Versions"]
    assert len(versions) == 2, "both writes are kept as versions"
    created = [event for event in received() if event["detail-type"] == "Object Created"]
    assert [(event["detail"]["object"]["key"], event["detail"]["object"]["size"]) for event in created] == [
        ("by-api", 3), ("direct", 3), ("direct", 5)]
    assert {(event["source"], event["detail"]["bucket"]["name"]) for event in created} == {("aws.s3", BUCKET)}

def test_stored_objects_are_the_current_versions_with_their_bodies(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    put_object(ACCOUNT, BUCKET, "kept", b"old")
    put_object(ACCOUNT, BUCKET, "kept", b"new")
    s3.put_object(Bucket=BUCKET, Key="removed", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="removed")
    (kept,) = stored_objects(ACCOUNT, [BUCKET])
    listed = s3.list_objects_v2(Bucket=BUCKET)["Contents"][0]
    assert (kept.key, kept.etag, kept.size, kept.read()) == ("kept", listed["ETag"].strip('"'), 3, b"new")
