"""moto's stores read and written directly, where AWS itself does the work rather than a caller's request.

- The workspace snapshot reads every object when a command ends, and the simulated endpoint writes what it
  captures as SageMaker Data Capture does (AWS writes those files; no API call of the account makes them).
- The runner, which delivers what EventBridge and its Scheduler would, looks whether a rule's queue holds a
  message or any schedule exists before it asks for them: it looks five times a second, and nearly always
  finds nothing.

Through the API, each of these would cost a signed request, serialised and parsed on both sides: thousands
of them in the demo's year.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

from moto.s3.models import FakeDeleteMarker, s3_backends
from moto.scheduler.models import scheduler_backends
from moto.sqs.models import sqs_backends

from driftloop.local.moto_patches import AWS_CALL_LOCK
from driftloop.local.workspace import StoredObject


def stored_objects(account_id: str, buckets: Iterable[str]) -> list[StoredObject]:
    """The current version of every object in ``buckets`` (delete markers left out)."""
    stored = []
    with AWS_CALL_LOCK:  # no call changes the buckets while they are listed
        backend = s3_backends[account_id]["aws"]
        for name in buckets:
            for key in list(backend.get_bucket(name).keys.values()):
                if isinstance(key, FakeDeleteMarker):
                    continue
                modified = key.last_modified.replace(tzinfo=UTC).isoformat()
                stored.append(StoredObject(name, key.name, key.etag.strip('"'), key.size, modified,
                                           key.metadata.get("Content-Type", "binary/octet-stream"),
                                           lambda key=key: key.value))
    return stored


def put_object(account_id: str, bucket: str, key: str, body: bytes) -> None:
    """Store ``body`` as the newest version of ``key``, as an AWS service writing into the bucket does: S3
    keeps the version and sends its Object Created event."""
    with AWS_CALL_LOCK:
        s3_backends[account_id]["aws"].put_object(bucket, key, body)


def queue_holds_messages(account_id: str, region: str, queue_url: str) -> bool:
    """Whether a receive from the queue would return a message now (a missing queue holds none)."""
    with AWS_CALL_LOCK:
        queue = sqs_backends[account_id][region].queues.get(queue_url.rstrip("/").rsplit("/", 1)[-1])
        return queue is not None and queue.approximate_number_of_messages > 0


def schedules_exist(account_id: str, region: str) -> bool:
    """Whether any group of EventBridge Scheduler holds a schedule."""
    with AWS_CALL_LOCK:
        return any(group.schedules for group in scheduler_backends[account_id][region].schedule_groups.values())
