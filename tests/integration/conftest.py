"""Integration tests run the real template.yaml and state machine in the local runtime (moto).

One small shop is seeded once per session (month 0 through the first-deployment branch, plus the
sample objects); each test works on its own copy of that workspace.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from driftloop.cli import main
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS, Profile
from driftloop.local.samples import sample_events
from driftloop.local.shop import Shop, ledger, model_name

PROJECT = Path(__file__).resolve().parents[2]
SMALL_SHOP = ["--users", "600", "--items", "150", "--events-per-month", "8000"]


@pytest.fixture(scope="session")
def seeded_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("seeded") / "workspace"
    code = main(["seed", "--workspace", str(workspace), "--project", str(PROJECT), "--quiet", *SMALL_SHOP])
    assert code == 0, "seeding the first champion failed"
    return workspace


@pytest.fixture
def workspace(seeded_workspace: Path, tmp_path: Path) -> Path:
    target = tmp_path / "workspace"
    shutil.copytree(seeded_workspace, target)
    return target


@contextmanager
def running(workspace: Path, faults: FaultPlan | None = None, **parameters: str) -> Iterator[tuple[LocalAWS, Runner]]:
    profile = Profile.load(PROJECT, parameters)
    with LocalAWS(PROJECT, workspace, profile, faults) as world:
        yield world, Runner(world, printer=None)


def runs_of(world: LocalAWS) -> list[dict[str, Any]]:
    return sorted(ledger(world).runs(model_name(world)), key=lambda run: run["started_at"])


def history(world: LocalAWS, execution_arn: str, *, with_data: bool = False) -> list[dict[str, Any]]:
    """The execution's history events; ``with_data`` brings each event's input and output too."""
    return world.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000,
                                                               includeExecutionData=with_data)["events"]


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    return [event["stateEnteredEventDetails"]["name"] for event in events if event["type"].endswith("StateEntered")]


def load_event(name: str, workspace: Path | None = None) -> dict[str, Any]:
    """A committed sample event, or (given a workspace) the same event generated for that workspace's shop,
    so its ETag and size describe the object the workspace staged."""
    if workspace is None:
        return json.loads((PROJECT / "events" / name).read_text())
    return sample_events(PROJECT, Shop.load(workspace).simulator())[name]


def object_keys(world: LocalAWS, prefix: str = "") -> list[str]:
    bucket = world.app.environment["DATA_BUCKET"]
    pages = world.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]
