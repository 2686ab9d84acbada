"""The capture digest (driftloop/pipeline/capture_digest.py): looks that reuse the previous look's parsed
capture give exactly the feedback of a read from scratch, fetch only what is new, and fall back to a full
read when the digest cannot be used."""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import test_feedback_reader
from botocore.exceptions import ClientError
from test_feedback_reader import AT, TIME, parquet, put

from driftloop.capture import CaptureFile, ServedRecommendation, capture_record
from driftloop.layout import ab_capture_digest_key, capture_key, purchase_events_key
from driftloop.pipeline.ab_analysis import capture_digest_keys
from driftloop.pipeline.capture_digest import CaptureDigest, DigestedFile, DigestKeys
from driftloop.pipeline.feedback import Feedback, read_feedback
from driftloop.pipeline.services import Services

environment, services = test_feedback_reader.environment, test_feedback_reader.services  # the moto fixtures
STARTED = AT - timedelta(hours=3)
RUN = "run-1"


class GetLog:
    """Counts the capture GETs and fails those of ``failing`` keys (listed, then not fetchable)."""

    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fetched: list[str] = []
        self.failing: set[str] = set()
        original = services.s3.get_object

        def get_object(**arguments: Any) -> dict:
            key = arguments["Key"]
            if key.startswith("datacapture/"):
                self.fetched.append(key)
                if key in self.failing:
                    raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
            return original(**arguments)

        monkeypatch.setattr(services.s3, "get_object", get_object)


def look_keys(look: int) -> DigestKeys:
    return DigestKeys(ab_capture_digest_key(RUN, 0, look - 1) if look else None, ab_capture_digest_key(RUN, 0, look))


def without_digest(feedback: Feedback) -> dict[str, Any]:
    evidence = json.loads(json.dumps(feedback.evidence))
    del evidence["capture"]["digest"]
    return evidence


def assert_same_feedback(incremental: Feedback, scratch: Feedback) -> None:
    assert incremental.table.equals(scratch.table)
    assert without_digest(incremental) == json.loads(json.dumps(scratch.evidence))
    assert "digest" not in scratch.evidence["capture"]


def listed_capture(services: Services) -> dict[str, str]:
    """Key -> ETag of every capture file in the window (what a look lists)."""
    pages = services.s3.get_paginator("list_objects_v2").paginate(
        Bucket=services.settings.data_bucket, Prefix=f"datacapture/{services.settings.endpoint_name}/")
    return {entry["Key"]: entry["ETag"] for page in pages for entry in page.get("Contents", [])
            if entry["Key"].endswith(".jsonl")}


def random_file(rng: random.Random, name: str, now: datetime) -> bytes:
    """A capture file of valid requests (some tagged, some batched, some base64) and a few bad lines."""
    lines = []
    for record in range(rng.randint(1, 6)):
        served = STARTED - timedelta(minutes=30) + timedelta(seconds=rng.uniform(0, (now - STARTED).seconds + 1800))
        user = f"u{rng.randint(0, 30)}"
        items = [f"i{rng.randint(0, 15)}" for _ in range(3)]
        tag = f"r-{name}-{record}" if rng.random() < 0.3 else None
        line = capture_record(f"e-{name}-{record}", served, {"user_id": user}, {"items": items}, inference_id=tag)
        if rng.random() < 0.15:
            document = json.loads(line)
            document["captureData"]["endpointOutput"] |= {
                "encoding": "BASE64", "data": base64.b64encode(json.dumps({"items": items}).encode()).decode()}
            line = json.dumps(document)
        lines.append(line)
    for _ in range(rng.choice([0, 0, 1, 2])):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(['{"captureData": 3}', "not json", '{"x": 1}']))
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.15:
        text += lines[0][:30]  # a truncated last line
    return b"\xff\xfe broken" if rng.random() < 0.05 else text.encode()


@pytest.mark.parametrize("seed", range(4))
def test_looks_with_digests_read_what_a_read_from_scratch_reads_and_fetch_only_new_files(
        services: Services, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    endpoint, settings = services.settings.endpoint_name, services.settings
    variants = [settings.champion_variant, settings.challenger_variant, "shadow"]
    gets = GetLog(services, monkeypatch)
    consumed: dict[str, str] = {}  # key -> ETag the previous look read successfully
    written: list[str] = []
    for look in range(6):
        now = STARTED + timedelta(hours=look + 1)
        for index in range(rng.randint(3, 10)):
            # New files land in any hour folder since an hour before the start, earlier ones too (late files).
            hour = STARTED + timedelta(hours=rng.randint(-1, look + 1))
            name = f"l{look}-f{index}"
            key = capture_key(endpoint, rng.choice(variants), hour, name)
            put(services, key, random_file(rng, name, now))
            written.append(key)
        if look and rng.random() < 0.7:  # a file read before is overwritten with other content
            put(services, rng.choice(written), random_file(rng, f"again-{look}", now))
        if look >= 2:  # a file read before is gone (lifecycle, a person): neither read counts it any more
            present = listed_capture(services)
            gone = rng.choice([key for key in written if key in present])
            services.s3.delete_object(Bucket=settings.data_bucket, Key=gone)
        purchases = [(f"u{rng.randint(0, 30)}", f"i{rng.randint(0, 15)}", None) for _ in range(rng.randint(0, 12))]
        put(services, purchase_events_key(now, f"p-{look}"), parquet(pa.table({
            "user_id": [user for user, _, _ in purchases], "item_id": [item for _, item, _ in purchases],
            "event_type": ["purchase"] * len(purchases),
            "event_time": pa.array([now - timedelta(minutes=rng.randint(0, 200)) for _ in purchases], TIME)})))
        listed = listed_capture(services)
        expected_gets = sorted(key for key, etag in listed.items() if consumed.get(key) != etag)
        # New files that cannot be fetched this look (deleted after the listing, throttled): counted as
        # unreadable, and fetched again at the next look.
        gets.failing = set(rng.sample(expected_gets, k=min(2, len(expected_gets)))) if rng.random() < 0.5 else set()

        gets.fetched.clear()
        incremental = read_feedback(services, STARTED, run_id=RUN, digest=look_keys(look))
        assert sorted(gets.fetched) == expected_gets
        scratch = read_feedback(services, STARTED, run_id=RUN)
        assert_same_feedback(incremental, scratch)
        digest = incremental.evidence["capture"]["digest"]
        assert (digest["reused_files"], digest["read_files"]) == (len(listed) - len(expected_gets), len(expected_gets))
        assert "rebuilt" not in digest
        consumed = {key: etag for key, etag in listed.items() if key not in gets.failing}
    assert incremental.evidence["capture"]["skipped_total"] > 0 and incremental.table.num_rows > 0


def test_a_retried_look_writes_the_same_digest_and_feedback(services: Services) -> None:
    endpoint, champion = services.settings.endpoint_name, services.settings.champion_variant
    for index in range(3):
        put(services, capture_key(endpoint, champion, AT, f"p{index}"),
            (capture_record(f"e{index}", AT, {"user_id": f"u{index}"}, {"items": ["a"]}) + "\n").encode())
    read_feedback(services, STARTED, run_id=RUN, digest=look_keys(0))
    put(services, capture_key(endpoint, champion, AT, "late"),
        (capture_record("e9", AT, {"user_id": "u9"}, {"items": ["b"]}) + "\n").encode())
    bucket, key = services.settings.data_bucket, look_keys(1).current
    first = read_feedback(services, STARTED, run_id=RUN, digest=look_keys(1))
    body = services.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    again = read_feedback(services, STARTED, run_id=RUN, digest=look_keys(1))
    assert services.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert again.table.equals(first.table) and again.evidence == first.evidence
    assert first.evidence["capture"]["digest"] | {"previous": None, "saved": None} == {
        "previous": None, "saved": None, "reused_files": 3, "read_files": 1}
    assert first.evidence["capture"]["digest"]["saved"] == f"s3://{bucket}/{key}"


def other_schema() -> bytes:
    return parquet(pa.table({"variant": ["champion"]}))


def with_metadata(change: dict[str, Any]) -> bytes:
    row = ServedRecommendation("champion", "e", AT, "u1", ("a",))
    digest = CaptureDigest(("challenger", "champion"), {"k": DigestedFile('"e"', CaptureFile((row,), 1, {}, {}))})
    table = pq.read_table(pa.BufferReader(digest.to_parquet()))
    described = json.loads(table.schema.metadata[b"driftloop.capture_digest"]) | change
    return parquet(table.replace_schema_metadata({b"driftloop.capture_digest": json.dumps(described)}))


@pytest.mark.parametrize(("body", "reason"), [
    (None, "NoSuchKey"),
    (b"PAR1 not a digest", "Arrow"),
    (b"", "Arrow"),
    (other_schema(), "KeyError"),
    (with_metadata({"format": 99}), "format 99"),
    (with_metadata({"known_variants": ["champion", "shadow"]}), "variants"),
    (with_metadata({"files": [{"key": "k", "etag": 3, "rows": 1, "lines": 1, "skipped": {}, "examples": {}}]}),
     "TypeError"),
    (with_metadata({"files": [{"key": "k", "etag": "e", "rows": 1, "lines": 1, "skipped": {"x": "1"},
                               "examples": {}}]}), "TypeError"),
    (with_metadata({"files": "k"}), "TypeError"),
    (with_metadata({"files": []}), "rows"),
    (with_metadata({"files": [{"key": "k", "etag": "e", "rows": -1, "lines": 1, "skipped": {}, "examples": {}}]}),
     "rows"),
], ids=["missing", "not-parquet", "empty", "other-columns", "other-format", "other-variants", "etag-type",
        "count-type", "files-type", "rows-of-no-file", "negative-rows"])
def test_a_missing_or_corrupt_digest_is_rebuilt_and_says_why(services: Services, body: bytes | None,
                                                             reason: str) -> None:
    put(services, capture_key(services.settings.endpoint_name, services.settings.champion_variant, AT, "p"),
        (capture_record("e", AT, {"user_id": "u1"}, {"items": ["a"]}) + "\n").encode())
    keys = look_keys(1)
    if body is not None:
        put(services, keys.previous, body)
    incremental = read_feedback(services, STARTED, run_id=RUN, digest=keys)
    assert_same_feedback(incremental, read_feedback(services, STARTED, run_id=RUN))
    digest = incremental.evidence["capture"]["digest"]
    assert (digest["reused_files"], digest["read_files"]) == (0, 1)
    assert reason in digest["rebuilt"]
    # The rebuilt digest is whole again: the next look reuses the file.
    following = read_feedback(services, STARTED, run_id=RUN, digest=look_keys(2))
    assert following.evidence["capture"]["digest"] | {"previous": None, "saved": None} == {
        "previous": None, "saved": None, "reused_files": 1, "read_files": 0}


def test_an_unreadable_digest_is_rebuilt(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    put(services, capture_key(services.settings.endpoint_name, services.settings.champion_variant, AT, "p"),
        (capture_record("e", AT, {"user_id": "u1"}, {"items": ["a"]}) + "\n").encode())
    read_feedback(services, STARTED, run_id=RUN, digest=look_keys(0))

    get = services.s3.get_object

    def get_object(**arguments: Any) -> dict:
        if arguments["Key"] == look_keys(1).previous:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")
        return get(**arguments)

    monkeypatch.setattr(services.s3, "get_object", get_object)
    digest = read_feedback(services, STARTED, run_id=RUN, digest=look_keys(1)).evidence["capture"]["digest"]
    assert "AccessDenied" in digest["rebuilt"] and digest["read_files"] == 1


def test_the_digest_keeps_every_field_of_a_served_recommendation() -> None:
    served = ServedRecommendation("champion", "e#1", AT + timedelta(microseconds=7), "u1", ("a", "b"), ("z",), "r-1")
    parsed = CaptureFile((served, ServedRecommendation("challenger", "e2", AT, "u2", ())), 4, {"malformed": 2},
                         {"malformed": ("f:1: x", "f:3: y")})
    empty = CaptureFile((), 0, {}, {})
    digest = CaptureDigest(None, {"a": DigestedFile('"1"', parsed), "b": DigestedFile('"2"', empty)})
    restored = CaptureDigest.from_parquet(digest.to_parquet())
    assert restored == digest and restored.files["a"].parsed.rows[0].served_at.tzinfo == AT.tzinfo
    assert digest.to_parquet() == restored.to_parquet()


def test_each_look_finds_the_digest_of_the_look_before_it() -> None:
    def looks(*stages: int) -> list[dict[str, Any]]:
        return [{"stage_index": stage, "at": AT.isoformat()} for stage in stages]

    assert ab_capture_digest_key("r1", 2, 5) == "cache/r1/ab-stage-2-5-capture.parquet"
    assert capture_digest_keys("r1", looks(0)) == DigestKeys(None, ab_capture_digest_key("r1", 0, 0))
    assert capture_digest_keys("r1", looks(0, 0)) == DigestKeys(ab_capture_digest_key("r1", 0, 0),
                                                                ab_capture_digest_key("r1", 0, 1))
    assert capture_digest_keys("r1", looks(0, 0, 1)) == DigestKeys(ab_capture_digest_key("r1", 0, 1),
                                                                   ab_capture_digest_key("r1", 1, 0))
    assert capture_digest_keys("r1", looks(0, 0, 1, 1, 1)) == DigestKeys(ab_capture_digest_key("r1", 1, 1),
                                                                         ab_capture_digest_key("r1", 1, 2))
