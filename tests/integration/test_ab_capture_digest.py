"""AnalyseAB's looks, through the real step: each look writes its capture digest, the next look starts
from the previous one's and fetches only the capture files that are new, a retried look reads the same,
and the feedback evidence is the one a read without any digest gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_step_idempotency import RUN_ID, Stack, open_stack

from driftloop.capture import capture_record
from driftloop.layout import ab_capture_digest_key, capture_key, s3_uri
from driftloop.pipeline import ab_analysis, rollout
from driftloop.pipeline.feedback import read_feedback


@pytest.fixture
def stack(workspace: Path) -> Iterator[Stack]:
    yield from open_stack(workspace, {})


def serve(stack: Stack, at: datetime, name: str) -> None:
    """One captured request of each variant, in the folder of ``at``'s hour."""
    settings = stack.services.settings
    for variant in (settings.champion_variant, settings.challenger_variant):
        key = capture_key(settings.endpoint_name, variant, at, f"{name}-{variant}")
        line = capture_record(f"{name}-{variant}", at, {"user_id": f"u-{name}"}, {"items": ["i1", "i2"]})
        stack.services.s3.put_object(Bucket=settings.data_bucket, Key=key, Body=(line + "\n").encode())


def capture_evidence(decision: dict[str, Any]) -> dict[str, Any]:
    return decision["evidence"]["feedback"]["capture"]


def test_each_look_starts_from_the_digest_of_the_look_before(stack: Stack) -> None:
    services, bucket = stack.services, stack.services.settings.data_bucket
    deployed = rollout.update_weights(stack.invocation("UpdateWeights"), services)
    started = datetime.fromisoformat(deployed["ab_started_at"])
    serve(stack, started + timedelta(minutes=5), "a")
    first = ab_analysis.analyse(stack.invocation("AnalyseAB", traffic=deployed), services)
    assert capture_evidence(first)["digest"] == {"previous": None, "reused_files": 0, "read_files": 2,
                                                 "saved": s3_uri(bucket, ab_capture_digest_key(RUN_ID, 0, 0))}

    serve(stack, started + timedelta(hours=2), "b")
    serve(stack, started + timedelta(minutes=10), "late")  # lands in the first hour's folder after the look
    look = stack.invocation("AnalyseAB", traffic=deployed, ab=first)
    second = ab_analysis.analyse(look, services)
    retried = ab_analysis.analyse(look, services)
    for decision in (second, retried):
        assert capture_evidence(decision)["digest"] == {
            "previous": s3_uri(bucket, ab_capture_digest_key(RUN_ID, 0, 0)), "reused_files": 2, "read_files": 4,
            "saved": s3_uri(bucket, ab_capture_digest_key(RUN_ID, 0, 1))}
    assert (second["look"], retried["look"]) == (1, 1)
    scratch = read_feedback(services, started, run_id=RUN_ID).evidence
    without = {name: value for name, value in capture_evidence(second).items() if name != "digest"}
    assert json.loads(json.dumps(without)) == json.loads(json.dumps(scratch["capture"]))
    assert capture_evidence(second)["served_by_variant"] == {"challenger": 3, "champion": 3}
