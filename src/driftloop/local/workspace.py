"""The local workspace: what the embedded AWS keeps between commands, under one folder."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftloop.errors import ConfigurationError
from driftloop.layout import WorkspaceLayout


@dataclass(frozen=True)
class StoredObject:
    """The current version of an S3 object, as the snapshot keeps it; ``read()`` returns its body."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: str
    content_type: str
    read: Callable[[], bytes]


class Workspace:
    """S3 objects, DynamoDB items, one-time schedules, counters and the clock kept between commands under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = WorkspaceLayout(root)
        self.objects = self.layout.objects
        self.index_file = self.layout.index_file

    def load_index(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.index_file.read_text()) if self.index_file.exists() else {}

    def save_s3(self, objects: Iterable[StoredObject]) -> None:
        """Snapshot ``objects`` (every object of the buckets); one whose ETag and size the last snapshot already
        holds is not read again."""
        self.objects.mkdir(parents=True, exist_ok=True)
        previous = self.load_index()
        index: dict[str, dict[str, Any]] = {}
        for obj in objects:
            name = f"{obj.bucket}/{obj.key}"
            known = previous.get(name)
            if known and (known.get("etag"), known.get("size")) == (obj.etag, obj.size) \
                    and (self.objects / known["sha256"]).exists():
                index[name] = known | {"last_modified": obj.last_modified}
                continue
            body = obj.read()
            digest = hashlib.sha256(body).hexdigest()
            blob = self.objects / digest
            if not blob.exists():
                blob.write_bytes(body)
            index[name] = {"bucket": obj.bucket, "key": obj.key, "sha256": digest, "etag": obj.etag,
                           "size": obj.size, "content_type": obj.content_type, "last_modified": obj.last_modified}
        self.index_file.parent.mkdir(parents=True, exist_ok=True)
        self.index_file.write_text(json.dumps(index, indent=1, sort_keys=True))

    def restore_s3(self, s3: Any) -> None:
        for entry in sorted(self.load_index().values(), key=lambda item: item["last_modified"]):
            s3.put_object(Bucket=entry["bucket"], Key=entry["key"], ContentType=entry["content_type"],
                          Body=(self.objects / entry["sha256"]).read_bytes())

    def table_file(self, table: str) -> Path:
        return self.layout.table_file(table)

    def save_table(self, dynamodb: Any, table: str) -> None:
        items = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            items.extend(page.get("Items", []))
        path = self.table_file(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items, indent=1, sort_keys=True))

    def restore_table(self, dynamodb: Any, table: str) -> None:
        path = self.table_file(table)
        if path.exists():
            for item in json.loads(path.read_text()):
                dynamodb.put_item(TableName=table, Item=item)

    def save_schedules(self, schedules: list[dict[str, Any]]) -> None:
        fields = ("Name", "GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow",
                  "ActionAfterCompletion", "Target")
        kept = [{name: schedule[name] for name in fields if name in schedule} for schedule in schedules]
        self.layout.schedules_file.write_text(json.dumps(kept, indent=1, sort_keys=True, default=str))

    def restore_schedules(self, scheduler: Any) -> None:
        path = self.layout.schedules_file
        for schedule in json.loads(path.read_text()) if path.exists() else []:
            scheduler.create_schedule(**schedule)

    def load_clock(self) -> float | None:
        """Epoch seconds the local runtime's clock showed when the last command ended (None: a new workspace)."""
        path = self.root / "clock.json"
        if not path.exists():
            return None
        try:
            return float(json.loads(path.read_text())["now"])
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(f"{path} is not the local runtime's clock ({error}); remove it to restart the "
                                     "clock at [world] clock_start of local.toml") from None

    def save_clock(self, now: float) -> None:
        (self.root / "clock.json").write_text(json.dumps({"now": now}))

    def counters(self) -> dict[str, int]:
        path = self.layout.deliveries_file
        return json.loads(path.read_text()) if path.exists() else {}

    def save_counters(self, counters: dict[str, int]) -> None:
        self.layout.deliveries_file.write_text(json.dumps(counters, indent=1, sort_keys=True))
