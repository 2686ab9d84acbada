"""The simulated endpoint writes what it serves as SageMaker Data Capture does, and the parser reads it back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftloop.adapters.endpoint import Variant
from driftloop.capture import CaptureReader
from driftloop.layout import capture_hour
from driftloop.local.adapters import SimulatedEndpoint

AT = datetime(2026, 3, 14, 18, 36, 26, 250000, tzinfo=UTC)
BUCKET = "data"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_served_requests_land_in_the_capture_layout_and_parse_back(s3: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = SimulatedEndpoint(tmp_path, "shop", s3, update_seconds=0, capture_bucket=BUCKET)
    monkeypatch.setattr(endpoint, "recommend_batch", lambda model, users, k, recent: [
        [f"{user}-item-{rank}" for rank in range(k)] for user in users])
    variant = Variant("challenger", "model-b", 0.5)
    ranked = endpoint.serve(variant, ["u1", "u2"], 3, {"u2": ("i-9",)}, [AT, AT], ["r-1", "r-2"])
    assert ranked == [["u1-item-0", "u1-item-1", "u1-item-2"], ["u2-item-0", "u2-item-1", "u2-item-2"]]
    (key,) = [entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert key.startswith("datacapture/shop/challenger/2026/03/14/18/") and key.endswith(".jsonl")
    assert capture_hour(key, "shop") == ("challenger", datetime(2026, 3, 14, 18, tzinfo=UTC))
    reader = CaptureReader(known_variants={"champion", "challenger"})
    rows = reader.read(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), "challenger", key)
    assert [(r.user_id, r.recent_items, r.items, r.inference_id, r.served_at) for r in rows] == [
        ("u1", (), ("u1-item-0", "u1-item-1", "u1-item-2"), "r-1", AT),
        ("u2", ("i-9",), ("u2-item-0", "u2-item-1", "u2-item-2"), "r-2", AT)]
    assert reader.evidence()["skipped_total"] == 0


def test_without_a_capture_bucket_nothing_is_written(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = SimulatedEndpoint(tmp_path, "shop", s3, update_seconds=0)
    monkeypatch.setattr(endpoint, "recommend_batch", lambda model, users, k, recent: [["a"] for _ in users])
    endpoint.serve(Variant("champion", "model-a", 1.0), ["u1"], 1, {}, [AT], ["r-1"])
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_requests_of_different_hours_land_in_their_own_hour_folders(s3: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = SimulatedEndpoint(tmp_path, "shop", s3, update_seconds=0, capture_bucket=BUCKET)
    monkeypatch.setattr(endpoint, "recommend_batch", lambda model, users, k, recent: [["a"] for _ in users])
    later = AT + timedelta(hours=2, minutes=5)
    endpoint.serve(Variant("champion", "model-a", 1.0), ["u1", "u2", "u3"], 1, {}, [AT, later, AT],
                   ["r-1", "r-2", "r-3"])
    reader = CaptureReader(known_variants={"champion"})
    found = {}
    for entry in s3.list_objects_v2(Bucket=BUCKET)["Contents"]:
        _, hour = capture_hour(entry["Key"], "shop")
        rows = reader.read(s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read(), "champion", entry["Key"])
        found[hour.hour] = sorted((row.user_id, row.served_at) for row in rows)
    assert found == {18: [("u1", AT), ("u3", AT)], 20: [("u2", later)]}
