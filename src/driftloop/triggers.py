"""What started a run: the EventBridge events we accept, validated and normalised.

Shapes: S3 ``Object Created`` (AWS spells the ETag ``etag``; moto spells it ``eTag``), CloudWatch
``Alarm State Change``, EventBridge Scheduler/``Scheduled Event``, and our own ``Retrain Requested``.
Every field later used to build an S3 key, an execution name or a job name is checked here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    EventBridgeModel,
    S3EventNotificationEventBridgeModel,
)
from pydantic import BaseModel, Field, ValidationError

from driftloop.errors import InvalidInputError
from driftloop.layout import CONSTRAINT_VIOLATIONS_NAME, validate_object_key

TriggerType = Literal["upload", "monitor_report", "alarm", "schedule", "manual"]

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SEQUENCER_WIDTH = 64
_SEQUENCER = re.compile(rf"^[0-9A-Fa-f]{{1,{SEQUENCER_WIDTH}}}$")


class AlarmState(BaseModel):
    value: str
    reason: str = ""
    timestamp: str = ""


class AlarmDetail(BaseModel):
    alarm_name: str = Field(alias="alarmName")
    state: AlarmState
    previous_state: AlarmState | None = Field(default=None, alias="previousState")


class AlarmEventModel(EventBridgeModel):
    detail: AlarmDetail


class RetrainRequestDetail(BaseModel):
    reason: str = Field(default="manual request", max_length=500)
    requested_by: str = Field(default="unknown", max_length=200)
    uploads: list[str] = Field(default_factory=list, max_length=10_000)
    force: bool = True


class RetrainRequestModel(EventBridgeModel):
    detail: RetrainRequestDetail


@dataclass(frozen=True)
class Trigger:
    type: TriggerType
    source: str
    event_id: str
    time: str
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    size: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def dedup_key(self) -> str:
        """Identical for every delivery of one real-world event, different for distinct events."""
        if self.type in ("upload", "monitor_report"):
            version = self.version_id if self.version_id not in (None, "", "null") else self.etag
            parts = ["object", self.bucket or "", self.key or "", version or ""]
        elif self.type == "alarm":
            parts = ["alarm", self.detail.get("alarm_name", ""), self.detail.get("state_timestamp", "")]
        else:
            parts = [self.type, self.event_id]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def sequence_position(self) -> str | None:
        """The S3 sequencer made comparable as a string: events for one key are ordered by their
        sequencers once the shorter is left-padded with zeros (S3 event notification docs)."""
        if not self.sequencer:
            return None
        return self.sequencer.upper().rjust(SEQUENCER_WIDTH, "0")

    def run_id(self) -> str:
        """A readable id derived from the trigger, so a redelivery maps to the same run."""
        stamp = datetime.fromisoformat(self.time.replace("Z", "+00:00")).astimezone(UTC)
        return f"{stamp:%Y%m%dT%H%M%SZ}-{self.type.replace('_', '-')}-{self.dedup_key()[:10]}"

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value not in (None, {}, "")}


def _normalise_s3_event(event: dict[str, Any]) -> dict[str, Any]:
    detail = dict(event.get("detail") or {})
    obj = dict(detail.get("object") or {})
    if "etag" not in obj and "eTag" in obj:
        obj["etag"] = obj.pop("eTag")
    detail["object"] = obj
    return {**event, "detail": detail}


def parse_trigger(event: dict[str, Any], bucket: str, incoming_prefix: str, report_prefix: str) -> Trigger:
    """Turn an EventBridge event into a Trigger, or raise InvalidInputError naming what is wrong."""
    if not isinstance(event, dict):
        raise InvalidInputError("the execution input is not a JSON object")
    source, detail_type = event.get("source"), event.get("detail-type")
    try:
        if source == "aws.s3" and detail_type == "Object Created":
            return _upload_trigger(event, bucket, incoming_prefix, report_prefix)
        if source == "aws.cloudwatch" and detail_type == "CloudWatch Alarm State Change":
            alarm = parse(event=event, model=AlarmEventModel)
            if alarm.detail.state.value != "ALARM":
                raise InvalidInputError(f"alarm {alarm.detail.alarm_name} is {alarm.detail.state.value}, not ALARM")
            return Trigger(
                type="alarm",
                source=source,
                event_id=alarm.id,
                time=alarm.time.isoformat(),
                detail={
                    "alarm_name": alarm.detail.alarm_name,
                    "state_reason": alarm.detail.state.reason,
                    "state_timestamp": alarm.detail.state.timestamp,
                },
            )
        if source in ("aws.events", "aws.scheduler") and detail_type in ("Scheduled Event", "Scheduled event"):
            scheduled = parse(event=event, model=EventBridgeModel)
            return Trigger(type="schedule", source=source, event_id=scheduled.id, time=scheduled.time.isoformat())
        if source == "driftloop" and detail_type == "Retrain Requested":
            request = parse(event=event, model=RetrainRequestModel)
            for key in request.detail.uploads:
                validate_object_key(key, (incoming_prefix,))
            return Trigger(
                type="manual",
                source=source,
                event_id=request.id,
                time=request.time.isoformat(),
                detail=request.detail.model_dump(),
            )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise InvalidInputError(f"malformed {detail_type or 'event'} from {source}: {problems}") from None
    raise InvalidInputError(
        f"unsupported event: source={source!r} detail-type={detail_type!r} "
        "(expected S3 Object Created, CloudWatch Alarm State Change, Scheduled Event or Retrain Requested)"
    )


def _upload_trigger(event: dict[str, Any], bucket: str, incoming_prefix: str, report_prefix: str) -> Trigger:
    parsed = parse(event=_normalise_s3_event(event), model=S3EventNotificationEventBridgeModel)
    name = parsed.detail.bucket.name
    if name != bucket or not _BUCKET_NAME.match(name):
        raise InvalidInputError(f"event is for bucket {name[:70]!r}, not driftloop's bucket {bucket!r}")
    obj = parsed.detail.object
    key = validate_object_key(obj.key, (incoming_prefix, report_prefix))
    if obj.sequencer is not None and not _SEQUENCER.match(obj.sequencer):
        raise InvalidInputError(f"sequencer {obj.sequencer[:80]!r} is not 1 to {SEQUENCER_WIDTH} hexadecimal digits")
    if key.startswith(report_prefix):
        if not key.endswith(CONSTRAINT_VIOLATIONS_NAME):
            raise InvalidInputError(f"{key!r} under {report_prefix} is not a constraint_violations.json report")
        kind: TriggerType = "monitor_report"
    else:
        kind = "upload"
    return Trigger(
        type=kind,
        source="aws.s3",
        event_id=parsed.id,
        time=parsed.time.isoformat(),
        bucket=name,
        key=key,
        etag=obj.etag.strip('"'),
        version_id=obj.version_id,
        sequencer=obj.sequencer,
        size=obj.size,
    )
