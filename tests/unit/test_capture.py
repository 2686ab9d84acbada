"""The Data Capture parser on AWS's documented record format, and every way a captured line can be bad."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftloop.capture import (
    CaptureReader,
    capture_record,
    parse_inference_time,
)
from driftloop.layout import capture_destination, capture_hour, capture_key

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datacapture"
AT = datetime(2026, 3, 14, 18, 36, 26, 123456, tzinfo=UTC)


def line(request: object, response: object, **metadata: str) -> str:
    record = json.loads(capture_record("e-1", AT, {}, {}, None))
    record["captureData"]["endpointInput"]["data"] = json.dumps(request)
    record["captureData"]["endpointOutput"]["data"] = json.dumps(response)
    record["eventMetadata"].update(metadata)
    return json.dumps(record)


def test_documented_records_json_is_read_and_csv_is_counted_as_unsupported() -> None:
    reader = CaptureReader(known_variants={"champion"})
    rows = reader.read((FIXTURES / "documented_records.jsonl").read_bytes(), "champion", "documented")
    (row,) = rows
    assert (row.variant, row.event_id, row.inference_id) == (
        "champion", "6f1a2b7c-0d3e-4f55-9a21-7b8c9d0e1f23", "order-page-3c91d2")
    assert row.served_at == datetime(2026, 3, 14, 18, 36, 26, tzinfo=UTC)
    assert (row.user_id, row.recent_items) == ("u-1842", ("i-77", "i-301"))
    assert row.items == ("i-12", "i-5", "i-930", "i-44", "i-8", "i-610", "i-71", "i-2", "i-399", "i-15")
    evidence = reader.evidence()
    assert (evidence["lines"], evidence["records"], evidence["skipped"]) == (2, 1, {"unsupported_encoding": 1})
    assert "CSV" in evidence["examples"]["unsupported_encoding"][0]


def test_the_aws_csv_example_is_unsupported_not_a_crash() -> None:
    reader = CaptureReader()
    assert reader.read((FIXTURES / "aws_example_csv.jsonl").read_text(), "AllTraffic", "aws") == []
    assert reader.evidence()["skipped"] == {"unsupported_encoding": 1}


def test_base64_payloads_are_decoded() -> None:
    record = json.loads(line({}, {}))
    for side, document in (("endpointInput", {"user_id": 7, "recent_items": ["a"]}),
                           ("endpointOutput", {"user_id": 7, "items": ["x", 3]})):
        record["captureData"][side].update(encoding="BASE64",
                                           data=base64.b64encode(json.dumps(document).encode()).decode())
    (row,) = CaptureReader().read(json.dumps(record) + "\n", "v", "f")
    assert (row.user_id, row.recent_items, row.items) == ("7", ("a",), ("x", "3"))


def test_a_batch_request_gives_one_row_per_instance() -> None:
    text = line({"instances": [{"user_id": "u1"}, "u2"]},
                {"predictions": [{"items": ["a"]}, {"items": ["b", "c"]}]}) + "\n"
    rows = CaptureReader().read(text, "v", "f")
    assert [(row.event_id, row.user_id, row.items) for row in rows] == [
        ("e-1#0", "u1", ("a",)), ("e-1#1", "u2", ("b", "c"))]
    mismatched = line({"instances": ["u1", "u2"]}, {"predictions": [{"items": ["a"]}]}) + "\n"
    reader = CaptureReader()
    assert reader.read(mismatched, "v", "f") == []
    assert reader.evidence()["skipped"] == {"malformed": 1}


@pytest.mark.parametrize(("text", "reason"), [
    ('{"captureData": {"endpointIn', "malformed"),
    ('{"eventMetadata": {"eventId": "e", "inferenceTime": "2026-03-14T18:36:26Z"}}', "missing_field"),
    ('["not", "an", "object"]', "missing_field"),
    (line({"user_id": "u"}, {"user_id": "u"}), "missing_field"),
    (line({"k": 3}, {"items": ["a"]}), "missing_field"),
    (line({"user_id": "u", "recent_items": "i-1"}, {"items": ["a"]}), "malformed"),
    (line({"user_id": "u"}, {"items": [{"id": 1}]}), "malformed"),
    (line({"user_id": "u"}, {"items": ["a"]}, inferenceTime="yesterday"), "bad_inference_time"),
    (line({"user_id": "u"}, {"items": ["a"]}, inferenceTime="2026-03-14T18:36:26"), "bad_inference_time"),
])
def test_every_bad_line_is_counted_under_its_reason(text: str, reason: str) -> None:
    reader = CaptureReader()
    good = line({"user_id": "u"}, {"items": ["a"]})
    rows = reader.read(f"{good}\n{text}\n{good}\n", "v", "f.jsonl")
    assert len(rows) == 2
    evidence = reader.evidence()
    assert evidence["skipped"] == {reason: 1} and evidence["lines"] == 3
    assert evidence["examples"][reason][0].startswith("f.jsonl:2: ")


def test_undecodable_payloads_and_truncated_files() -> None:
    record = json.loads(line({}, {}))
    record["captureData"]["endpointInput"].update(encoding="BASE64", data="@@not base64@@")
    good = line({"user_id": "u"}, {"items": ["a"]})
    reader = CaptureReader()
    rows = reader.read(f"{json.dumps(record)}\n{good}\n{good[:60]}", "v", "f")
    assert len(rows) == 1
    assert reader.evidence()["skipped"] == {"undecodable_payload": 1, "truncated": 1}


def test_unknown_variants_and_non_utf8_files_are_counted() -> None:
    reader = CaptureReader(known_variants={"champion", "challenger"})
    good = line({"user_id": "u"}, {"items": ["a"]})
    assert reader.read(f"{good}\n{good}\n", "shadow", "f") == []
    assert reader.read(b"\xff\xfe garbage\n", "champion", "g") == []
    assert reader.evidence()["skipped"] == {"unknown_variant": 2, "malformed": 1}
    assert reader.evidence()["files"] == 2


def test_written_records_round_trip_with_microseconds_and_inference_id() -> None:
    text = capture_record("e-9", AT, {"user_id": "u", "k": 2, "recent_items": ["r"]},
                          {"user_id": "u", "items": ["a", "b"]}, inference_id="req-1")
    document = json.loads(text)
    assert set(document) == {"captureData", "eventMetadata", "eventVersion"}
    assert document["captureData"]["endpointInput"]["mode"] == "INPUT"
    assert document["captureData"]["endpointOutput"]["encoding"] == "JSON"
    (row,) = CaptureReader().read(text + "\n", "champion", "f")
    assert (row.served_at, row.inference_id, row.recent_items) == (AT, "req-1", ("r",))


def test_keys_follow_the_capture_layout() -> None:
    key = capture_key("shop-endpoint", "champion", AT, "part-1")
    assert key == "datacapture/shop-endpoint/champion/2026/03/14/18/part-1.jsonl"
    assert capture_hour(key, "shop-endpoint") == ("champion", datetime(2026, 3, 14, 18, tzinfo=UTC))
    assert capture_hour("datacapture/shop-endpoint/champion/2026/13/14/18/x.jsonl", "shop-endpoint") is None
    assert capture_hour("datacapture/other/champion/2026/03/14/18/x.jsonl", "shop-endpoint") is None
    assert capture_hour("datacapture/shop-endpoint/champion/x.jsonl", "shop-endpoint") is None
    assert capture_destination("bucket") == "s3://bucket/datacapture"


def test_inference_times_in_other_zones_are_converted_to_utc() -> None:
    assert parse_inference_time("2026-03-14T20:36:26+02:00") == datetime(2026, 3, 14, 18, 36, 26, tzinfo=UTC)
