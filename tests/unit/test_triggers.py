"""The event parsers: what is accepted, what is refused and why, and that nothing else ever escapes."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.errors import InvalidInputError
from driftloop.layout import MAX_KEY_LENGTH, validate_object_key
from driftloop.triggers import SEQUENCER_WIDTH, Trigger, parse_trigger

BUCKET = "recommender-data-123456789012-eu-west-1"
INCOMING, REPORTS = "incoming/", "monitoring/"
# Step Functions execution and SageMaker job names allow only these; nothing from a key may reach them.
EXECUTION_NAME = re.compile(r"^[0-9A-Za-z_-]{1,80}$")


def s3_event(key: str = "incoming/2025-07.parquet", **object_fields: Any) -> dict[str, Any]:
    obj = {"key": key, "size": 1234, "etag": "d41d8cd98f00b204e9800998ecf8427e", "version-id": "v1",
           "sequencer": "0066A8D0E77DE42B01", **object_fields}
    return {
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "Object Created",
        "source": "aws.s3", "account": "123456789012", "time": "2025-08-01T00:05:12Z", "region": "eu-west-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {"version": "0", "bucket": {"name": BUCKET}, "object": obj, "request-id": "R",
                   "requester": "123456789012", "source-ip-address": "203.0.113.10", "reason": "PutObject"},
    }


def parse(event: Any) -> Trigger:
    return parse_trigger(event, BUCKET, INCOMING, REPORTS)


def test_an_upload_becomes_an_upload_trigger_with_its_identity() -> None:
    trigger = parse(s3_event(etag='"abc"'))
    assert (trigger.type, trigger.bucket, trigger.key, trigger.etag, trigger.version_id) == (
        "upload", BUCKET, "incoming/2025-07.parquet", "abc", "v1")
    assert EXECUTION_NAME.match(trigger.run_id()) and trigger.run_id().startswith("20250801T000512Z-upload-")


def test_moto_spells_the_etag_eTag() -> None:
    event = s3_event()
    event["detail"]["object"]["eTag"] = event["detail"]["object"].pop("etag")
    assert parse(event).etag == "d41d8cd98f00b204e9800998ecf8427e"


def test_redeliveries_share_a_dedup_key_and_new_versions_do_not() -> None:
    first = parse(s3_event())
    redelivered = s3_event()
    redelivered["id"] = "another-delivery-id"
    assert parse(redelivered).dedup_key() == first.dedup_key()
    assert parse(s3_event(**{"version-id": "v2"})).dedup_key() != first.dedup_key()
    unversioned = [parse(s3_event(**{"version-id": None, "etag": etag})) for etag in ("aaa", "bbb")]
    assert unversioned[0].dedup_key() != unversioned[1].dedup_key(), "without versions the ETag tells them apart"


def test_sequencers_are_ordered_after_left_padding() -> None:
    short, longer = parse(s3_event(sequencer="FF")), parse(s3_event(sequencer="0100"))
    assert short.sequence_position() < longer.sequence_position(), "0xFF < 0x100 although 'FF' > '0100'"
    assert len(short.sequence_position()) == SEQUENCER_WIDTH
    assert parse(s3_event(sequencer="00ab")).sequence_position() == parse(s3_event(sequencer="AB")).sequence_position()
    assert parse(s3_event(sequencer=None)).sequence_position() is None


@pytest.mark.parametrize(("key", "problem"), [
    ("incoming/../secrets/model.parquet", "relative path segment"),
    ("incoming/./2025-07.parquet", "relative path segment"),
    ("/incoming/2025-07.parquet", "relative path segment"),
    ("incoming/a\x00b.parquet", "control characters"),
    ("incoming/a\nb.parquet", "control characters"),
    ("incoming/a\\..\\b.parquet", "backslash"),
    ("incoming/cafe\u0301.parquet", "normal form C"),
    ("incoming/" + "a" * (MAX_KEY_LENGTH - len("incoming/") - len(".parquet") + 1) + ".parquet", "longer than"),
    ("incoming/" + "é" * 508 + ".parquet", "longer than"),  # 1,033 bytes in fewer than 1,024 characters
    ("uploads/2025-07.parquet", "outside the watched prefixes"),
    ("", "empty"),
])
def test_hostile_keys_are_refused_with_the_reason(key: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(problem)):
        parse(s3_event(key=key))


@pytest.mark.parametrize("key", [
    "incoming/" + "a" * (MAX_KEY_LENGTH - len("incoming/") - len(".parquet")) + ".parquet",
    "incoming/café-日本-ü.parquet",
    'incoming/a b<c>{d}[e]?*"#%^|~`$&,;:.parquet',
    "incoming/..data/2025..07.parquet",
])
def test_unusual_but_safe_keys_are_accepted_and_never_reach_names(key: str) -> None:
    trigger = parse(s3_event(key=key))
    assert trigger.key == key
    assert EXECUTION_NAME.match(trigger.run_id())


def test_events_for_other_buckets_and_malformed_fields_are_refused() -> None:
    foreign = s3_event()
    foreign["detail"]["bucket"]["name"] = "someone-elses-bucket"
    with pytest.raises(InvalidInputError, match="not driftloop's bucket"):
        parse(foreign)
    with pytest.raises(InvalidInputError, match="hexadecimal"):
        parse(s3_event(sequencer="0066A8D0E77DE42B01; DROP"))
    with pytest.raises(InvalidInputError, match="hexadecimal"):
        parse(s3_event(sequencer="1" * (SEQUENCER_WIDTH + 1)))
    with pytest.raises(InvalidInputError, match="malformed Object Created"):
        parse(s3_event(size="large"))
    with pytest.raises(InvalidInputError, match="constraint_violations.json"):
        parse(s3_event(key="monitoring/schedule/2025/report.json"))


def test_only_alarms_in_alarm_state_and_known_events_start_runs() -> None:
    alarm = {"version": "0", "id": "a", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
             "account": "1", "time": "2025-08-01T00:05:12Z", "region": "eu-west-1", "resources": [],
             "detail": {"alarmName": "conversion-drop", "state": {"value": "ALARM", "timestamp": "t1"}}}
    assert parse(alarm).type == "alarm"
    recovered = copy.deepcopy(alarm)
    recovered["detail"]["state"]["value"] = "OK"
    with pytest.raises(InvalidInputError, match="not ALARM"):
        parse(recovered)
    with pytest.raises(InvalidInputError, match="unsupported event"):
        parse({**alarm, "source": "aws.ec2"})
    with pytest.raises(InvalidInputError, match="not a JSON object"):
        parse(["not", "an", "event"])


def test_a_retrain_request_may_only_name_uploads_under_the_incoming_prefix() -> None:
    request = {"version": "0", "id": "m", "detail-type": "Retrain Requested", "source": "driftloop", "account": "1",
               "time": "2025-08-01T00:05:12Z", "region": "eu-west-1", "resources": [],
               "detail": {"reason": "deferred", "uploads": ["incoming/a.parquet"], "force": False}}
    assert parse(request).detail["force"] is False
    request["detail"]["uploads"] = ["incoming/../datasets/x.parquet"]
    with pytest.raises(InvalidInputError, match="relative path segment"):
        parse(request)


# -- fuzzing ------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
FIELDS = ("key", "size", "etag", "version-id", "sequencer")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=json_values)
def test_any_json_is_a_trigger_or_an_invalid_input_error(event: Any) -> None:
    try:
        trigger = parse(event)
    except InvalidInputError as error:
        assert str(error), "every refusal says why"
        return
    assert EXECUTION_NAME.match(trigger.run_id())


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), value=json_values, detail_type=st.sampled_from(
    ["Object Created", "Retrain Requested", "CloudWatch Alarm State Change", "Scheduled Event"]))
def test_a_mutated_field_never_escapes_as_another_error(field: str, value: Any, detail_type: str) -> None:
    event = s3_event()
    event["detail"]["object"][field] = value
    event["detail-type"] = detail_type
    try:
        trigger = parse(event)
    except InvalidInputError as error:
        assert str(error), "every refusal says why"
        return
    assert EXECUTION_NAME.match(trigger.run_id())
    json.dumps(trigger.to_dict())


@settings(max_examples=300, deadline=None)
@given(suffix=st.text(min_size=1, max_size=1100))
def test_an_accepted_key_is_inside_the_prefix_and_cannot_be_resolved_elsewhere(suffix: str) -> None:
    key = INCOMING + suffix
    try:
        accepted = validate_object_key(key, (INCOMING,))
    except InvalidInputError:
        return
    segments = accepted.split("/")
    assert accepted.startswith(INCOMING) and ".." not in segments and "." not in segments
    assert len(accepted.encode()) <= MAX_KEY_LENGTH
    assert not any(ord(character) < 0x20 or 0x7F <= ord(character) <= 0x9F for character in accepted)
    assert "\\" not in accepted
    assert parse(s3_event(key=accepted)).key == accepted
