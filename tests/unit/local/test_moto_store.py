"""What the local runtime writes into moto's S3 store directly is what a PutObject leaves there, events included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftloop.local.moto_store import put_object, queue_holds_messages, schedules_exist, stored_objects

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


def test_a_queue_holds_messages_exactly_while_a_receive_would_return_one() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="rule", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        assert not queue_holds_messages(ACCOUNT, "us-east-1", queue)
        assert not queue_holds_messages(ACCOUNT, "us-east-1", queue.replace("/rule", "/no-such-queue"))
        sqs.send_message(QueueUrl=queue, MessageBody="event")
        assert queue_holds_messages(ACCOUNT, "us-east-1", queue)
        [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
        assert not queue_holds_messages(ACCOUNT, "us-east-1", queue), "a received message is invisible"
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        assert queue_holds_messages(ACCOUNT, "us-east-1", queue)
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        assert not queue_holds_messages(ACCOUNT, "us-east-1", queue)


def test_schedules_exist_in_any_group() -> None:
    with mock_aws():
        scheduler = boto3.client("scheduler", region_name="us-east-1")
        assert not schedules_exist(ACCOUNT, "us-east-1")
        scheduler.create_schedule_group(Name="runs")
        assert not schedules_exist(ACCOUNT, "us-east-1"), "an empty group holds no schedule"
        scheduler.create_schedule(Name="later", GroupName="runs", ScheduleExpression="at(2030-01-01T00:00:00)",
                                  FlexibleTimeWindow={"Mode": "OFF"},
                                  Target={"Arn": "arn:aws:events:us-east-1:123456789012:event-bus/default",
                                          "RoleArn": "arn:aws:iam::123456789012:role/scheduler"})
        assert schedules_exist(ACCOUNT, "us-east-1")
        scheduler.delete_schedule(Name="later", GroupName="runs")
        assert not schedules_exist(ACCOUNT, "us-east-1")
