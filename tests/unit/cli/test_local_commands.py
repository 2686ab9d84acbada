"""The local commands on a real (small) workspace: exit codes of failed runs and unmatched events, JSON
on stdout, state lines with timings, clear words for a workspace that has no endpoint or shop yet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from driftloop.cli import main
from driftloop.console import ExitCode
from driftloop.local.runtime import LocalAWS, Profile

PROJECT = Path(__file__).resolve().parents[3]
EVENTS = PROJECT / "events"
SMALL_SHOP = ["--users", "600", "--items", "150", "--events-per-month", "8000"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``--workspace W --project P`` of a workspace with its first champion."""
    workspace = tmp_path_factory.mktemp("cli") / "ws"
    options = ["--workspace", str(workspace), "--project", str(PROJECT)]
    assert main(["seed", *options, "--quiet", *SMALL_SHOP]) == ExitCode.OK
    return options


@pytest.fixture(scope="module")
def unseeded(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A provisioned workspace in which nothing has run."""
    workspace = tmp_path_factory.mktemp("cli") / "empty"
    with LocalAWS(PROJECT, workspace, Profile.load(PROJECT)):
        pass
    return ["--workspace", str(workspace), "--project", str(PROJECT)]


def test_endpoint_prints_its_variants_and_json_on_request(seeded: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["endpoint", *seeded]) == ExitCode.OK
    text = capsys.readouterr().out
    assert text.startswith("endpoint driftloop-recommender: InService")
    assert re.search(r"^  champion +100\.0 %  model \S+", text, re.MULTILINE)
    assert main(["endpoint", *seeded, "--json"]) == ExitCode.OK
    state = json.loads(capsys.readouterr().out)
    assert state["weights_percent"] == {"champion": 100.0}


def test_runs_json_on_stdout(seeded: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["runs", *seeded, "--json", "-"]) == ExitCode.OK
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["outcome"] == "promoted"


def test_an_event_that_matches_no_rule_exits_3(seeded: list[str], capsys: pytest.CaptureFixture) -> None:
    event = str(EVENTS / "s3_object_created_outside_prefix.json")
    assert main(["replay", event, *seeded]) == ExitCode.NO_RULE
    assert "matched no rule" in capsys.readouterr().out
    assert main(["replay", event, *seeded, "--allow-unmatched", "--quiet"]) == ExitCode.OK


def test_a_run_that_fails_makes_upload_exit_1_with_timed_state_lines(seeded: list[str], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not a Parquet file PAR1")
    assert main(["upload", "--file", str(corrupt), *seeded]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert re.search(r"^run \S+: outcome failed", out, re.MULTILINE)
    assert re.search(r"^  \[\S+ +\d+\.\d s\] ▶ Admit$", out, re.MULTILINE)


def test_an_unseeded_workspace_has_no_endpoint_nor_shop(unseeded: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["endpoint", *unseeded]) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == "" and "has no endpoint yet: `driftloop seed`" in captured.err
    assert main(["upload", "--month", "1", *unseeded]) == ExitCode.BAD_INPUT
    assert "has no simulated shop" in capsys.readouterr().err
    assert main(["runs", *unseeded, "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == []
