"""The committed events/ are exactly what the generator writes for the default shop."""

from __future__ import annotations

import json
from pathlib import Path

from driftloop.local.samples import default_simulator, sample_events
from driftloop.triggers import parse_trigger

PROJECT = Path(__file__).resolve().parents[2]


def test_committed_events_match_the_generator() -> None:
    generated = sample_events(PROJECT, default_simulator())
    committed = {path.name: json.loads(path.read_text()) for path in (PROJECT / "events").glob("*.json")}
    assert committed == generated, "run `make events` after changing the simulator or the template's names"


def test_every_s3_sample_event_parses_as_aws_sends_it() -> None:
    for name in ("s3_object_created_new_data.json", "s3_object_created_violation_report.json",
                 "s3_object_created_not_parquet.json"):
        event = json.loads((PROJECT / "events" / name).read_text())
        trigger = parse_trigger(event, event["detail"]["bucket"]["name"], "incoming/", "monitoring/")
        assert trigger.key == event["detail"]["object"]["key"]
        assert trigger.etag == event["detail"]["object"]["etag"]
