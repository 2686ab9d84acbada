"""The runner tells a running execution from an ended one by moto's record of it, and agrees with
DescribeExecution."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from driftloop.local.runtime import FaultPlan, LocalAWS, Profile

PROJECT = Path(__file__).resolve().parents[3]


def test_an_execution_runs_while_its_first_step_is_held_and_has_ended_after(tmp_path: Path) -> None:
    admitting = threading.Event()
    with LocalAWS(PROJECT, tmp_path / "workspace", Profile.load(PROJECT),
                  FaultPlan(holds={"AdmitFunction": admitting})) as world:
        arn = world.start_execution({"source": "driftloop.manual", "detail-type": "Retrain Requested",
                                     "detail": {"reason": "status test"}})
        states = world.client("stepfunctions")
        assert world.execution_running(arn)
        assert states.describe_execution(executionArn=arn)["status"] == "RUNNING"
        admitting.set()
        deadline = time.monotonic() + 60
        while world.execution_running(arn):
            assert time.monotonic() < deadline, "the execution never ended"
            time.sleep(0.01)
        assert states.describe_execution(executionArn=arn)["status"] != "RUNNING"
