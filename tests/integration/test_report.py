"""The report of a real seeded workspace, read from its S3 snapshot and through S3 (boto3 against moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from conftest import PROJECT

from driftloop.local.customers import serve_batch
from driftloop.local.runtime import LocalAWS, Profile
from driftloop.local.shop import data_bucket
from driftloop.report import S3Store, WorkspaceStore, build_report
from driftloop.report.build import DATA_FILE

GENERATED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_report_reads_the_same_from_the_workspace_and_from_s3(workspace: Path, tmp_path: Path) -> None:
    quiet = Profile(Profile.load(PROJECT).parameters, requests_per_hour=0)  # no live traffic while reading
    with LocalAWS(PROJECT, workspace, quiet) as world:
        # The champion serves a batch of customers: Data Capture files and tagged purchase events.
        now = world.clock.now()
        served_requests = serve_batch(workspace, world.app.environment["ENDPOINT_NAME"], data_bucket(world),
                                      world.client("s3"), 300, np.random.default_rng(7), (now - 3600, now))
        from_s3 = build_report(S3Store(world.client("s3"), data_bucket(world)), tmp_path / "s3", GENERATED_AT)
    from_snapshot = build_report(WorkspaceStore(workspace), tmp_path / "snapshot", GENERATED_AT)
    snapshot, s3 = (json.loads((page.parent / DATA_FILE).read_text()) for page in (from_snapshot, from_s3))
    assert snapshot.pop("location").startswith(s3.pop("location"))
    assert snapshot == s3
    runs = snapshot["runs"]
    assert [run["outcome"] for run in runs] == ["promoted"]  # the seeded first deployment
    # in simulated time: month 0 (2025-01) was uploaded when it ended, and its run started then
    assert runs[0]["started_at"].startswith("2025-02-01T00:0"), runs[0]["started_at"]
    page = from_s3.read_text()
    assert f"id='run-{runs[0]['run_id']}'" in page
    assert "first deployment" in page
    assert snapshot["lineage"]["models"][0]["status"] == "champion"
    # The local shop writes no feedback log: conversion comes from Data Capture joined with its purchases.
    assert snapshot["conversion_source"]["source"] == "data_capture"
    variants = snapshot["conversion"]["variants"]
    assert served_requests > 0 and sum(sum(variant["served"]) for variant in variants) == served_requests
    assert sum(sum(variant["conversions"]) for variant in variants) > 0
    assert snapshot["conversion_source"]["capture"]["skipped_total"] == 0
    assert "Counted from SageMaker Data Capture" in page and "data:image/png" in page
