"""Fault injection through the local runtime (issue 8): nothing lost, nothing duplicated, nobody let in.

Most cases stop each run after the merge (StartTraining fails for good): what they check (admission,
coalescing, the merged dataset, the failure path) is decided by then. For every case: the input objects
are all still there, valid rows reach the next dataset, at most one run per model holds the lock at a
time, the champion serves alone afterwards, and each failed run says in its record what went wrong.
"""

from __future__ import annotations

import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import PROJECT, history, load_event, running, runs_of

from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS, Profile
from driftloop.local.shop import Shop, data_bucket, ledger, model_name
from driftloop.local.template import load_app
from driftloop.storage import s3_filesystem

STOP_AFTER_MERGE = {"StartTrainingFunction": [["InjectedFault", -1]]}
KEY_COLUMNS = ["user_id", "item_id", "event_type", "event_time"]
TASKS_OF_THE_RUN = ("ComputeDrift", "MergeDatasets", "StartTraining", "PollTraining", "EvaluateChallenger",
                    "UpdateWeights", "AnalyseAB", "Promote", "Rollback")


# -- helpers --------------------------------------------------------------------------------------
def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def month_slices(workspace: Path, month: int, parts: int) -> list[pa.Table]:
    table = Shop.load(workspace).simulator().month(month)
    size = -(-table.num_rows // parts)
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]


def put(world: LocalAWS, key: str, body: bytes) -> None:
    world.client("s3").put_object(Bucket=data_bucket(world), Key=key, Body=body)


def object_versions(world: LocalAWS, prefix: str = "incoming/") -> set[tuple[str, str]]:
    pages = world.client("s3").get_paginator("list_object_versions").paginate(Bucket=data_bucket(world),
                                                                              Prefix=prefix)
    return {(version["Key"], version["VersionId"]) for page in pages for version in page.get("Versions", [])}


def row_keys(table: pa.Table) -> set[tuple[Any, ...]]:
    columns = [table.column(name).to_pylist() for name in KEY_COLUMNS]
    return set(zip(*columns, strict=True))


def merged_rows(world: LocalAWS, run: dict[str, Any]) -> set[tuple[Any, ...]]:
    bucket, folder = data_bucket(world), run["evidence"]["merge"]["dataset_dir"]
    filesystem = s3_filesystem(world.client("s3"))
    pages = world.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{folder}/")
    keys = [entry["Key"] for page in pages for entry in page.get("Contents", []) if entry["Key"].endswith(".parquet")]
    rows: set[tuple[Any, ...]] = set()
    for key in keys:
        with filesystem.open_input_file(f"{bucket}/{key}") as handle:
            rows |= row_keys(pq.read_table(handle, columns=KEY_COLUMNS))
    return rows


def champion_alone(world: LocalAWS, workspace: Path) -> list[tuple[str, str, float]]:
    name = world.app.environment["ENDPOINT_NAME"]
    state = SimulatedEndpoint(workspace, name, world.client("s3")).describe()
    return [(variant.name, variant.model_name, variant.weight) for variant in state.variants]


def lock_windows(world: LocalAWS, runner: Runner) -> list[tuple[str, str, str]]:
    """(run id, admitted at, finished at) of every run of this test that held the lock, from the histories."""
    windows = []
    for run in runs_of(world):
        if run["execution"] not in runner.finished or not run["evidence"]["admission"].get("admitted"):
            continue
        events = history(world, run["execution"])
        admitted = next(e["timestamp"] for e in events if e["type"] == "TaskStateExited"
                        and e["stateExitedEventDetails"]["name"] == "Admit")
        finished = next(e["timestamp"] for e in events if e["type"] == "TaskStateEntered"
                        and e["stateEnteredEventDetails"]["name"] in ("Finalize", "FinalizeFailedRun"))
        windows.append((run["run_id"], admitted.isoformat(), finished.isoformat()))
    return sorted(windows, key=lambda window: window[1])


def assert_one_run_at_a_time(world: LocalAWS, runner: Runner) -> list[tuple[str, str, str]]:
    windows = lock_windows(world, runner)
    for earlier, later in zip(windows, windows[1:], strict=False):
        assert earlier[2] <= later[1], f"runs {earlier[0]} and {later[0]} held the lock at the same time"
    return windows


def assert_settled(world: LocalAWS, workspace: Path, champion_model: str) -> None:
    """After any failure: champion alone at 100 %, lock free, no deferred trigger left behind."""
    assert champion_alone(world, workspace) == [("champion", champion_model, 1.0)]
    assert ledger(world).lock(model_name(world)) is None
    assert ledger(world).pending(model_name(world)) == {}


def champion_model(world: LocalAWS) -> str:
    return ledger(world).champion(model_name(world))["sagemaker_model"]


def s3_json(world: LocalAWS, uri_or_key: str) -> Any:
    key = uri_or_key.removeprefix(f"s3://{data_bucket(world)}/")
    return json.loads(world.client("s3").get_object(Bucket=data_bucket(world), Key=key)["Body"].read())


def inputs_of(world: LocalAWS, run: dict[str, Any]) -> dict[str, Any]:
    """The run's fixed inputs (``runs/<run_id>/inputs.json``)."""
    return s3_json(world, f"runs/{run['run_id']}/inputs.json")


def by_execution(world: LocalAWS) -> dict[str, dict[str, Any]]:
    return {run["execution"]: run for run in runs_of(world)}


# -- the state machine's own guarantees (no runtime needed) ----------------------------------------
def test_every_task_retries_only_what_can_succeed_and_has_a_timeout() -> None:
    app = load_app(PROJECT / "template.yaml", Profile.load(PROJECT).parameters)
    definition, functions = app.definition, app.functions
    tasks = {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}
    assert set(TASKS_OF_THE_RUN) <= set(tasks)
    for name, task in tasks.items():
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert {"TransientError", "Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, name
        assert not retried & {"States.ALL", "States.TaskFailed", "States.Timeout", "InvalidInputError"}, name
        assert all(rule.get("JitterStrategy") == "FULL" and rule["BackoffRate"] > 1 for rule in task["Retry"]), name
        # States.ALL does not match States.DataLimitExceeded (a state outgrowing 256 KiB): it is named first.
        *named, catch_all = task["Catch"]
        assert catch_all["ErrorEquals"] == ["States.ALL"], name
        named_errors = [(catch["ErrorEquals"], catch["Next"]) for catch in named]
        assert named_errors == [(["States.DataLimitExceeded"], catch_all["Next"])], name
        assert task["TimeoutSeconds"] <= 960, f"{name}: Lambda stops at 900 s; the Task must not wait longer"
        function = next(f for f in functions.values() if f.arn == task["Resource"])
        # A Task giving up first would leave its function running unseen (an Admit taking the lock after
        # its execution moved on): the function's own Timeout must stop it before.
        assert task["TimeoutSeconds"] > function.timeout, f"{name}: Task timeout within {function.logical_id}'s"



def deliver_directly(world: LocalAWS, event: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Start an execution with ``event`` as input, bypassing the rules (a misrouted or forged event)."""


    states = world.client("stepfunctions")
    arn = world.start_execution(event)
    deadline = time.time() + timeout
    while states.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.time() < deadline, "execution still running"
        time.sleep(0.2)
    return by_execution(world)[arn]


def s3_event_for(world: LocalAWS, key: str, sequencer: str, etag: str = "0" * 32) -> dict[str, Any]:
    event = copy.deepcopy(load_event("s3_object_created_new_data.json"))
    event["id"] = f"forged-{sequencer}"
    event["detail"]["bucket"]["name"] = data_bucket(world)
    event["detail"]["object"].update(key=key, sequencer=sequencer, etag=etag)
    event["detail"]["object"]["version-id"] = f"v-{sequencer}"
    return event


# -- admission: redeliveries, out-of-order and already-merged events --------------------------------
def test_redelivered_out_of_order_and_already_merged_events_start_no_extra_run(workspace: Path) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE))) as (world, runner):
        champion = champion_model(world)
        event = load_event("s3_object_created_new_data.json")
        deliveries = [runner.replay(event) for _ in range(10)]
        runner.wait(timeout=300)
        records = by_execution(world)
        outcomes = [records[d.executions[0]] for d in deliveries]
        admitted = [run for run in outcomes if run["evidence"]["admission"].get("admitted")]
        assert len(admitted) == 1, "ten deliveries of one upload, one run"
        duplicates = [run for run in outcomes if run["outcome"] == "duplicate_ignored"]
        assert len(duplicates) == 9
        assert all(run["duplicate_of"] == admitted[0]["run_id"] for run in duplicates)
        assert all(admitted[0]["execution"] in run["evidence"]["admission"]["reason"] for run in duplicates)
        assert admitted[0]["outcome"] == "failed" and admitted[0]["error"]["step"] == "StartTraining"

        # Two versions of one key; S3 announces them with increasing sequencers, delivered newest first.
        older, newer = month_slices(workspace, 7, 2)
        key = "incoming/late/2025-08.parquet"
        put(world, key, parquet_bytes(older))
        put(world, key, parquet_bytes(newer))
        emitted = [event for _, event in world.drain_rule_queues()]
        assert len(emitted) == 2
        first, second = (s3_event_for(world, key, sequencer, e["detail"]["object"]["eTag"])
                         for e, sequencer in zip(emitted, ("0066A8D0E77DE42C01", "0066A8D0E77DE42C02"), strict=True))
        newest_first = runner.replay(second)
        runner.wait(timeout=300)
        late = runner.replay(first)
        runner.wait(timeout=300)
        records = by_execution(world)
        newest_run, late_run = records[newest_first.executions[0]], records[late.executions[0]]
        assert newest_run["evidence"]["admission"].get("admitted") is True
        rows = merged_rows(world, newest_run)
        assert row_keys(newer) <= rows, "the current version's rows are merged"
        assert late_run["outcome"] == "duplicate_ignored"
        assert "out-of-order" in late_run["evidence"]["admission"]["reason"]

        # An event for an upload the champion was trained on (month 0 of the seeded shop).
        merged_key = ledger(world).champion(model_name(world))["dataset_manifest_key"]
        assert merged_key
        original = next(key for key in (k for k, _ in object_versions(world)) if key.endswith("2025-01.parquet"))
        already = runner.replay(s3_event_for(world, original, "0066A8D0E77DE42D01"))
        runner.wait(timeout=300)
        already_run = by_execution(world)[already.executions[0]]
        assert already_run["outcome"] == "duplicate_ignored"
        assert "already merged" in already_run["evidence"]["admission"]["reason"]

        assert_one_run_at_a_time(world, runner)
        assert_settled(world, workspace, champion)
        assert {key for key, _ in object_versions(world)} >= {key, original}
        assert sum(1 for k, _ in object_versions(world) if k == key) == 2, "both versions are kept"


# -- a burst of uploads is coalesced ----------------------------------------------------------------
def test_a_burst_of_100_uploads_makes_one_run_at_a_time_and_loses_no_row(workspace: Path) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE))) as (world, _):
        runner = Runner(world, printer=None, poll_seconds=2.0)  # following 100 executions is itself costly
        champion = champion_model(world)
        slices = month_slices(workspace, 7, 100)
        keys = [f"incoming/burst/part-{index:03d}.parquet" for index in range(len(slices))]
        for key, table in zip(keys, slices, strict=True):
            put(world, key, parquet_bytes(table))
        before = object_versions(world)
        runner.wait(timeout=900)
        records = [run for run in runs_of(world) if run["execution"] in runner.finished]
        uploads = [run for run in records if run["trigger"].get("key") in keys]
        assert sorted(run["trigger"]["key"] for run in uploads) == keys, "every upload has its run record"
        assert {run["outcome"] for run in uploads} <= {"failed", "deferred"}
        deferred = [run for run in uploads if run["outcome"] == "deferred"]
        assert all("coalesced into the next run" in run["evidence"]["admission"]["reason"] for run in deferred)
        windows = assert_one_run_at_a_time(world, runner)
        assert 1 <= len(windows) < 10, "the burst is coalesced into a few runs, not one per upload"
        first = next(run for run in records if run["run_id"] == windows[0][0])
        rows = merged_rows(world, first)
        assert all(row_keys(table) <= rows for table in slices), "every valid row reaches the next dataset"
        handed_on = [run for run in records if run["trigger"]["type"] == "manual"]
        assert handed_on and "deferred during run" in handed_on[0]["trigger"]["detail"]["reason"]
        assert object_versions(world) == before, "no input object is removed or rewritten"
        assert_settled(world, workspace, champion)


# -- retries, exhausted retries and timeouts ---------------------------------------------------------
def test_transient_failures_are_retried_in_place_and_exhausted_retries_fail_cleanly(workspace: Path) -> None:
    faults = FaultPlan({"AdmitFunction": [["TransientError", 2]], "DriftFunction": [["TransientError", 1]],
                        "MergeFunction": [["TransientError", -1]]})
    with running(workspace, faults) as (world, runner):
        champion = champion_model(world)
        delivery = runner.replay(load_event("s3_object_created_new_data.json"))
        runner.wait(timeout=300)
        run = by_execution(world)[delivery.executions[0]]
        attempts = {step["name"]: (step["attempts"], step["status"]) for step in run["steps"]}
        assert attempts["Admit"] == (3, "succeeded") and attempts["ComputeDrift"] == (2, "succeeded")
        assert attempts["MergeDatasets"] == (5, "failed"), "1 try + 4 retries, then Catch"
        assert run["outcome"] == "failed"
        assert run["error"]["error"] == "TransientError" and run["error"]["step"] == "MergeDatasets"
        assert "MergeFunction" in run["error"]["cause"]
        assert_settled(world, workspace, champion)


def test_a_step_that_times_out_fails_its_run_with_the_timeout(workspace: Path) -> None:
    faults = FaultPlan(delays={"AdmitFunction": 10_000})
    with running(workspace, faults) as (world, runner):
        champion = champion_model(world)
        event = load_event("s3_object_created_new_data.json")
        stuck_admit = runner.replay(event)
        runner.wait(timeout=300)
        faults.delays = {"MergeFunction": 10_000}
        stuck_merge = runner.replay(event)
        runner.wait(timeout=300)
        records = by_execution(world)
        admit_run, merge_run = records[stuck_admit.executions[0]], records[stuck_merge.executions[0]]
        assert admit_run["outcome"] == "failed" and admit_run["run_id"].startswith("unadmitted-")
        assert admit_run["error"]["error"] == "Sandbox.Timedout" and admit_run["error"]["step"] == "Admit"
        assert "timed out after 120" in admit_run["error"]["cause"]
        assert ledger(world).lock(model_name(world)) is None, "a timed-out Admit took no lock"
        # Merge's function stops at its 900 s Timeout, before the Task's 960 s.
        assert merge_run["outcome"] == "failed"
        assert merge_run["error"]["error"] == "Sandbox.Timedout" and merge_run["error"]["step"] == "MergeDatasets"
        assert "timed out after 900" in merge_run["error"]["cause"]
        assert_settled(world, workspace, champion)


# -- broken files -----------------------------------------------------------------------------------
def test_corrupt_and_empty_uploads_fail_their_run_and_valid_rows_still_flow(workspace: Path) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE))) as (world, runner):
        champion = champion_model(world)
        # Three valid files beside the broken ones (and notes.txt, already staged).
        valid_files = {f"incoming/broken/valid-{index}.parquet": table
                       for index, table in enumerate(month_slices(workspace, 7, 4)[:3])}
        cases = {"incoming/broken/corrupt.parquet": (b"PAR1" + b"\x00garbage" * 100 + b"PAR1", "unreadable Parquet"),
                 "incoming/broken/empty.parquet": (b"", "empty object (0 bytes)")}
        failed = {}
        for key, (body, _) in cases.items():
            put(world, key, body)
            runner.wait(timeout=300)
            failed[key] = next(run for run in runs_of(world) if run["trigger"].get("key") == key)
        for key, table in valid_files.items():
            put(world, key, parquet_bytes(table))
        runner.wait(timeout=300)
        for key, (_, reason) in cases.items():
            run = failed[key]
            assert run["outcome"] == "failed" and run["error"]["error"] == "InvalidInputError"
            assert run["error"]["step"] == "ComputeDrift" and key in run["error"]["cause"]
            assert reason in run["error"]["cause"]
        good = next(run for run in runs_of(world) if run["evidence"]["admission"].get("admitted")
                    and run["trigger"].get("key") in valid_files)
        rows = merged_rows(world, good)
        assert all(row_keys(table) <= rows for table in valid_files.values()), "valid rows still flow"
        for key, (_, reason) in cases.items():
            kept = next(entry["copy"] for entry in inputs_of(world, failed[key])["unreadable"] if entry["key"] == key)
            assert reason in s3_json(world, kept + ".reason.json")["reason"], "quarantined by the first run reading it"
        good_inputs = inputs_of(world, good)
        assert {entry["key"] for entry in good_inputs["quarantined"]} >= set(cases), "and retried by no later run"
        assert {key for key, _ in object_versions(world)} >= {*cases, *valid_files}
        assert_settled(world, workspace, champion)


# -- events that are not ours, hostile keys ---------------------------------------------------------
def test_foreign_events_and_hostile_keys_are_refused_and_safe_odd_keys_flow(workspace: Path) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE))) as (world, runner):
        champion = champion_model(world)
        outside = runner.replay(load_event("s3_object_created_outside_prefix.json"))
        assert outside.executions == [] and "matched no rule" in outside.note
        foreign = s3_event_for(world, "incoming/2025-07.parquet", "0066A8D0E77DE42E01")
        foreign["detail"]["bucket"]["name"] = "someone-elses-bucket"
        refused = deliver_directly(world, foreign)
        assert refused["outcome"] == "failed" and "not driftloop's bucket" in refused["error"]["cause"]
        too_long = deliver_directly(world, s3_event_for(world, "incoming/" + "a" * 1020 + ".parquet",
                                                        "0066A8D0E77DE42E02"))
        assert too_long["outcome"] == "failed" and "longer than 1024 bytes" in too_long["error"]["cause"]

        tables = month_slices(workspace, 8, 5)
        hostile = {"incoming/../escape.parquet": "relative path segment",
                   "incoming/cafe\u0301.parquet": "normal form C"}
        odd = ["incoming/" + "l" * (1024 - len("incoming/") - len(".parquet")) + ".parquet",
               "incoming/café-日本-ü.parquet", 'incoming/a b<c>{d}[e]?*"#%^|~`$&,;:.parquet']
        for key, table in zip([*hostile, *odd], tables, strict=True):
            put(world, key, parquet_bytes(table))
        before = object_versions(world)
        runner.wait(timeout=600)
        records = [run for run in runs_of(world) if run["execution"] in runner.finished]
        refused_keys = [run["error"]["cause"] for run in records
                        if run["outcome"] == "failed" and run["error"]["step"] == "Admit"]
        for problem in hostile.values():
            assert any(problem in cause for cause in refused_keys), problem
        admitted = [run for run in records if run["evidence"]["admission"].get("admitted")]
        first = sorted(admitted, key=lambda run: run["finished_at"])[0]
        rows = merged_rows(world, first)
        for key, table in zip([*hostile, *odd], tables, strict=True):
            if key in odd:
                assert row_keys(table) <= rows, f"rows of {key[:40]!r} reach the dataset"
            else:
                assert not row_keys(table) & rows, f"{key!r} is never opened"
        assert_one_run_at_a_time(world, runner)
        assert object_versions(world) == before, "refused objects are left where they are"
        assert_settled(world, workspace, champion)
