"""Issue 13, defect 5: the state stays under Step Functions' 256 KiB, and a state that outgrows it still
ends in a recorded run with the lock released.

moto fails a state whose result or output is larger than 262,144 bytes with ``States.DataLimitExceeded``,
and the local runtime makes ``States.ALL`` not catch it, as in AWS.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import history, running, runs_of, states_entered

from driftloop.adapters.s3 import get_json, put_json
from driftloop.drift import build_baseline
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS
from driftloop.local.shop import data_bucket, ledger, model_name, upload_bytes
from driftloop.pipeline import drift
from driftloop.storage import s3_source

STOP_AT_MERGE = {"MergeFunction": [["InjectedFault", -1]]}
FEATURES = 1_500
VIOLATIONS = 3_000
STATE_PAYLOAD_LIMIT = 256 * 1024


def only_run(world: LocalAWS, runner: Runner) -> dict[str, Any]:
    finished = runner.wait(timeout=600)
    runs = [run for run in runs_of(world) if run["execution"] in finished]
    assert len(runs) == 1, {arn: result.status for arn, result in finished.items()}
    run = runs[0]
    run["visited"] = states_entered(history(world, run["execution"]))
    return run


def state_sizes(world: LocalAWS, execution: str) -> list[int]:
    """Bytes of every state's output in the execution history."""
    events = history(world, execution, with_data=True)
    return [len(event["stateExitedEventDetails"]["output"].encode()) for event in events
            if event["type"].endswith("StateExited") and "output" in event.get("stateExitedEventDetails", {})]


def assert_recorded_and_unlocked(world: LocalAWS, run: dict[str, Any]) -> None:
    assert {"Finalize", "FinalizeFailedRun"} & set(run["visited"]), run["visited"]
    assert ledger(world).lock(model_name(world)) is None
    assert max(state_sizes(world, run["execution"])) < STATE_PAYLOAD_LIMIT


def clear_incoming(world: LocalAWS) -> None:
    """Only this test's upload is new (the seeded shop stages sample objects under incoming/)."""
    s3, bucket = world.client("s3"), data_bucket(world)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="incoming/"):
        for entry in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"])


def wide_table(rows: int, shift: float, seed: int) -> pa.Table:
    generator = np.random.default_rng(seed)
    return pa.table({f"signal_{index:04d}": generator.normal(shift, 1.0, rows) for index in range(FEATURES)})


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.mark.slow
def test_a_drift_check_over_1500_features_keeps_the_state_small(workspace: Path) -> None:
    # The drift policy: these synthetic columns carry no purchases to weigh, the data drift decides.
    with running(workspace, FaultPlan(dict(STOP_AT_MERGE)), RetrainPolicy="drift") as (world, runner):
        s3, bucket, model = world.client("s3"), data_bucket(world), model_name(world)
        clear_incoming(world)
        s3.put_object(Bucket=bucket, Key="reference/wide.parquet", Body=parquet(wide_table(800, 0.0, 1)))
        baseline = build_baseline(s3_source(s3, bucket, ["reference/wide.parquet"]))
        put_json(s3, bucket, f"baselines/{model}/wide.json", baseline.to_dict(), compact=True)  # as Promote writes it
        champion = ledger(world).champion(model)
        ledger(world).put_champion(model, {**champion, "baseline_key": f"baselines/{model}/wide.json"})
        world.drain_rule_queues()
        upload_bytes(world, "incoming/wide/drifted.parquet", parquet(wide_table(800, 1.0, 2)))
        run = only_run(world, runner)

        evidence = run["evidence"]["drift"]
        assert evidence["decision"] == "retrain" and evidence["features_count"] == FEATURES
        assert evidence["drifted_count"] == FEATURES and len(evidence["drifted_features"]) == 25
        assert len(evidence["features"]) == 25
        full = get_json(s3, bucket, evidence["evidence_key"])
        assert len(full["features"]) == FEATURES and len(full["drifted_features"]) == FEATURES
        assert len(json.dumps(full)) > STATE_PAYLOAD_LIMIT, "the evidence alone would have outgrown the state"
        assert run["outcome"] == "failed" and run["error"]["step"] == "MergeDatasets"
        assert_recorded_and_unlocked(world, run)


@pytest.mark.slow
def test_a_model_monitor_report_with_3000_violations_keeps_the_state_small(workspace: Path) -> None:
    violations = [{"feature_name": f"feature_{index:04d}", "constraint_check_type": "baseline_drift_check",
                   "description": f"Baseline drift distance: 0.{index % 80 + 15} exceeds threshold: 0.1 for the "
                                  f"distribution of feature_{index:04d} compared with the baseline constraints"}
                  for index in range(VIOLATIONS)]
    with running(workspace, FaultPlan(dict(STOP_AT_MERGE))) as (world, runner):
        world.drain_rule_queues()
        key = "monitoring/driftloop-recommender/schedule/2025/08/01/00/constraint_violations.json"
        upload_bytes(world, key, json.dumps({"violations": violations}).encode())
        run = only_run(world, runner)

        evidence = run["evidence"]["drift"]
        assert evidence["violations_count"] == VIOLATIONS and len(evidence["violations"]) == 25
        full = get_json(world.client("s3"), data_bucket(world), evidence["evidence_key"])
        assert len(full["violations"]) == VIOLATIONS
        assert f"Model Monitor reported {VIOLATIONS} drift" in evidence["reasons"][0]
        assert_recorded_and_unlocked(world, run)


def test_a_result_beyond_256_kib_fails_its_step_and_the_run_is_still_recorded(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """States.ALL does not catch States.DataLimitExceeded: every Task names it, so Finalize still runs."""
    monkeypatch.setattr(drift, "run", lambda invocation, services: {"decision": "none",
                                                                    "reasons": ["x" * STATE_PAYLOAD_LIMIT]})
    with running(workspace) as (world, runner):
        world.drain_rule_queues()
        upload_bytes(world, "incoming/oversized/evidence.parquet", parquet(wide_table(10, 0.0, 3).select([0])))
        run = only_run(world, runner)
        assert run["outcome"] == "failed" and run["error"]["error"] == "States.DataLimitExceeded"
        assert run["error"]["step"] == "ComputeDrift"
        assert "exceeding the maximum number of bytes" in run["error"]["cause"]
        assert run["visited"][-3:] == ["RestoreSettled", "FinalizeFailedRun", "RunFailed"]
        assert_recorded_and_unlocked(world, run)
