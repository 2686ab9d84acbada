"""Issue 13 through the local runtime: poison uploads, lock leaks, lost or starved triggers, overwritten
objects, true concurrency, and a lease that lapses.

For every case: no input object is lost, every valid row reaches the next dataset, at most one run holds
the lock at a time (except where a lapsed lease is the point), the ledger's champion is the one the
endpoint serves, the lock is free afterwards, and the error says what went wrong.
"""

from __future__ import annotations

import copy
import io
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import history, load_event, running, runs_of
from moto.core.exceptions import JsonRESTError
from moto.events.models import EventsBackend
from test_faults import (
    STOP_AFTER_MERGE,
    assert_one_run_at_a_time,
    assert_settled,
    by_execution,
    champion_model,
    inputs_of,
    merged_rows,
    month_slices,
    object_versions,
    parquet_bytes,
    put,
    row_keys,
    s3_json,
)

from driftloop.adapters.ledger import Ledger
from driftloop.local import clock as local_clock
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS
from driftloop.local.shop import data_bucket, ledger, model_name
from driftloop.pipeline import finalize


def corrupt_pages(table: pa.Table) -> bytes:
    """Valid Parquet whose footer reads fine but whose first column's data pages do not decode."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    data = bytearray(buffer.getvalue())
    start = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(0).column(0).data_page_offset
    for index in range(start + 8, min(start + 2000, len(data) - 2000), 3):
        data[index] ^= 0xFF
    return bytes(data)


def manual_request(reason: str = "hostile user test", force: bool = True) -> dict[str, Any]:
    event = copy.deepcopy(load_event("manual_retrain_request.json"))
    event["id"] = str(uuid.uuid4())
    event["time"] = local_clock.utcnow().isoformat()  # the running local runtime's (simulated) time
    event["detail"].update(reason=reason, force=force)
    return event


def admitted_runs(world: LocalAWS, runner: Runner) -> list[dict[str, Any]]:
    """The runs of this test that were admitted, in the order they finished."""
    return sorted((run for run in runs_of(world) if run["execution"] in runner.finished
                   and run["evidence"]["admission"].get("admitted")), key=lambda run: run["finished_at"])


def last_dataset_rows(world: LocalAWS, runner: Runner) -> set[tuple[Any, ...]]:
    merged = [run for run in admitted_runs(world, runner) if "merge" in run["evidence"]]
    return merged_rows(world, merged[-1])


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.1)


def entered(world: LocalAWS, execution_arn: str, state: str) -> bool:
    return any(event["type"] == "TaskStateEntered" and event["stateEnteredEventDetails"]["name"] == state
               for event in history(world, execution_arn))


# -- 1. poison uploads -------------------------------------------------------------------------------
def test_poison_uploads_are_quarantined_by_the_first_run_reading_them_and_block_nothing(workspace: Path) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE))) as (world, runner):
        champion = champion_model(world)
        tables = month_slices(workspace, 7, 6)
        first = tables[0]
        price = first.schema.get_field_index("price")
        poison = {
            "incoming/poison/duplicate-columns.parquet": (
                pa.Table.from_arrays([*first.columns, first.column("price")], names=[*first.column_names, "price"]),
                "duplicate column names"),
            "incoming/poison/price-as-text.parquet": (
                first.set_column(price, "price", pc.cast(first.column("price"), pa.string())),
                "unsafe schema change"),
            "incoming/poison/corrupt-pages.parquet": (tables[1], "corrupt Parquet data"),
        }
        for key, (table, _) in poison.items():
            put(world, key, corrupt_pages(table) if "corrupt" in key else parquet_bytes(table))
        valid = {f"incoming/poison/valid-{index}.parquet": table for index, table in enumerate(tables[2:])}
        for key, table in valid.items():
            put(world, key, parquet_bytes(table))
        before = object_versions(world)
        runner.wait(timeout=600)
        forced = runner.replay(manual_request())
        runner.wait(timeout=300)

        first_reader = admitted_runs(world, runner)[0]
        quarantined = {entry["key"]: entry for entry in inputs_of(world, first_reader)["unreadable"]}
        for key, (_, reason) in poison.items():
            assert reason in quarantined[key]["reason"], key
            assert reason in s3_json(world, quarantined[key]["copy"] + ".reason.json")["reason"]
        forced_run = by_execution(world)[forced.executions[0]]
        assert forced_run["evidence"]["admission"]["admitted"]
        assert forced_run["error"]["step"] == "StartTraining", "a later manual retrain gets past ComputeDrift"
        assert set(poison) <= {entry["key"] for entry in inputs_of(world, forced_run)["quarantined"]}, \
            "no later run reads a quarantined upload again"
        assert all(run["error"]["step"] != "MergeDatasets" for run in runs_of(world) if run["outcome"] == "failed")
        rows = merged_rows(world, forced_run)
        assert all(row_keys(table) <= rows for table in valid.values()), "every valid row reaches the dataset"
        assert not row_keys(tables[1]) & rows and not row_keys(first) & rows, "no poisoned row does"
        assert object_versions(world) == before, "quarantine copies, never moves or deletes"
        assert_one_run_at_a_time(world, runner)
        assert_settled(world, workspace, champion)


# -- 3. lock leaks -----------------------------------------------------------------------------------
def test_the_lock_is_released_when_admit_fails_after_taking_it_or_the_record_is_too_large(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = Ledger.acquire_lock
    failures = {"admit": 1}

    def acquire_then_fail(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        result = taken(self, *args, **kwargs)
        if result.acquired and failures["admit"]:
            failures["admit"] -= 1
            raise RuntimeError("Admit died right after taking the lock")
        return result

    monkeypatch.setattr(Ledger, "acquire_lock", acquire_then_fail)
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE))) as (world, runner):
        champion = champion_model(world)
        died = runner.replay(manual_request("admit dies"))
        runner.wait(timeout=300)
        run = by_execution(world)[died.executions[0]]
        assert run["run_id"].startswith("unadmitted-") and run["error"]["step"] == "Admit"
        assert "died right after taking the lock" in run["error"]["cause"]
        assert ledger(world).lock(model_name(world)) is None, "FinalizeFailedRun released the lock Admit took"

        build = finalize.build_record

        def oversized(*args: Any, **kwargs: Any) -> dict[str, Any]:
            record = build(*args, **kwargs)
            record["evidence"]["padding"] = "x" * 500_000  # past DynamoDB's 400 KB item limit
            return record

        monkeypatch.setattr(finalize, "build_record", oversized)
        large = runner.replay(manual_request("a record over 400 KB"))
        runner.wait(timeout=300)
        summary = next(run for run in runs_of(world) if run["execution"] == large.executions[0])
        assert summary["record_truncated"] and summary["outcome"] == "failed"
        full = s3_json(world, summary["record_uri"])
        assert len(full["evidence"]["padding"]) == 500_000 and full["error"]["step"] == "StartTraining"
        assert_settled(world, workspace, champion)


@pytest.mark.parametrize("parameters, expected", [
    # the lease must outlast the longest stretch without a renewal, and the message names that path
    ({"LockLeaseMinutes": "30"}, ["LockLeaseMinutes=30 is shorter than", " -> "]),
    # 36,000 s of one-second training polls alone is 324,000 history events, past the 25,000 limit
    ({"MaxTrainingSeconds": "36000", "PollSeconds": "1"}, ["25,000-event limit", "WaitForTraining 36001 x 9"]),
], ids=["lease", "history"])
def test_a_run_whose_settings_cannot_finish_safely_is_refused_when_it_starts(
        workspace: Path, parameters: dict[str, str], expected: list[str]) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE)), **parameters) as (world, runner):
        champion = champion_model(world)
        refused = runner.replay(manual_request())
        runner.wait(timeout=300)
        run = by_execution(world)[refused.executions[0]]
        assert run["error"]["error"] == "ConfigurationError" and run["error"]["step"] == "Admit"
        for fragment in expected:
            assert fragment in run["error"]["cause"]
        assert_settled(world, workspace, champion)


# -- 4. deferred triggers are sent before they are deleted --------------------------------------------
def test_deferred_triggers_survive_throttled_and_refused_put_events(workspace: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    original = EventsBackend.put_events
    plan = {"refuse": 0, "throttle": 0, "calls": 0}

    def flaky(self: EventsBackend, events: list[dict[str, Any]]) -> Any:
        handing_on = any(event.get("DetailType") == "Retrain Requested" for event in events)
        if handing_on:
            plan["calls"] += 1
            if plan["throttle"]:
                plan["throttle"] -= 1
                raise JsonRESTError("ThrottlingException", "Rate exceeded")
            if plan["refuse"]:
                plan["refuse"] -= 1
                return [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} for _ in events]
        return original(self, events)

    monkeypatch.setattr(EventsBackend, "put_events", flaky)
    merging = threading.Event()  # merges wait until it is set: their run holds the lock meanwhile
    faults = FaultPlan(copy.deepcopy(STOP_AFTER_MERGE), holds={"MergeFunction": merging})
    with running(workspace, faults) as (world, runner):
        champion = champion_model(world)
        first, second, third = month_slices(workspace, 7, 3)
        put(world, "incoming/handover/first.parquet", parquet_bytes(first))
        holder = runner.route()
        wait_for(lambda: entered(world, holder[0], "MergeDatasets"))
        plan.update(throttle=2, refuse=1)
        put(world, "incoming/handover/second.parquet", parquet_bytes(second))
        deferred = runner.route()
        wait_for(lambda: deferred[0] in by_execution(world))
        merging.set()
        runner.wait(timeout=300)
        assert plan["calls"] == 4, "two throttled calls and a refused entry, then delivered"
        handed_on = [run for run in runs_of(world) if run["trigger"]["type"] == "manual"]
        assert len(handed_on) == 1 and handed_on[0]["evidence"]["admission"]["admitted"]
        assert row_keys(second) <= merged_rows(world, handed_on[0]), "the deferred upload's rows reach a dataset"

        # EventBridge refusing for longer than Finalize's retries: the trigger stays pending, not lost.
        plan.update(refuse=10_000)
        merging.clear()
        put(world, "incoming/handover/third.parquet", parquet_bytes(first.slice(0, 10)))
        holder = runner.route()
        wait_for(lambda: entered(world, holder[0], "MergeDatasets"))
        put(world, "incoming/handover/fourth.parquet", parquet_bytes(third))
        deferred = runner.route()
        wait_for(lambda: deferred[0] in by_execution(world))
        merging.set()
        runner.wait(timeout=600)
        pending = ledger(world).pending(model_name(world))
        assert [trigger["key"] for trigger in pending.values()] == ["incoming/handover/fourth.parquet"]
        stuck = next(run for run in runs_of(world) if run["trigger"].get("key") == "incoming/handover/third.parquet")
        execution = runner.finished[stuck["execution"]]
        assert execution.status == "FAILED" and execution.error == "RecordingFailed"
        finalize_errors = [event["lambdaFunctionFailedEventDetails"]["cause"]
                           for event in history(world, stuck["execution"])
                           if event["type"] == "LambdaFunctionFailed"]
        assert any("PutEvents refused 1 of 1 entries after 5 attempts" in cause for cause in finalize_errors)
        assert ledger(world).lock(model_name(world)) is None
        plan.update(refuse=0)
        runner.replay(manual_request("after the outage"))
        runner.wait(timeout=300)
        assert ledger(world).pending(model_name(world)) == {}
        assert row_keys(third) <= last_dataset_rows(world, runner)
        assert_settled(world, workspace, champion)


# -- 6. the cool-down: deferred work runs when it ends, and handed-on triggers wait for it too ------------
def test_a_trigger_deferred_by_the_cooldown_runs_when_it_ends(workspace: Path) -> None:
    with running(workspace, FaultPlan(copy.deepcopy(STOP_AFTER_MERGE)), CooldownHours="24") as (world, runner):
        champion = champion_model(world)
        store, model = ledger(world), model_name(world)
        store.put_champion(model, {**store.champion(model), "promoted_at": world.clock.datetime().isoformat()})
        table = month_slices(workspace, 7, 2)[0]
        put(world, "incoming/cooldown/during.parquet", parquet_bytes(table))
        deferred = runner.route()
        handed_on = runner.replay(manual_request("handed on by a Finalize", force=False))
        wait_for(lambda: {*deferred, *handed_on.executions} <= set(by_execution(world)))
        records = by_execution(world)
        assert [records[arn]["outcome"] for arn in [*deferred, *handed_on.executions]] == ["deferred", "deferred"], \
            "an upload and a handed-on (not forced) request both wait for the cool-down"
        assert "joins the run scheduled for" in records[deferred[0]]["evidence"]["admission"]["reason"]
        assert len(world.one_time_schedules()) == 1, "one schedule per cool-down, however many triggers it defers"
        runner.wait(timeout=120)
        scheduled = [run for run in admitted_runs(world, runner)
                     if "cool-down" in run["trigger"]["detail"].get("reason", "")]
        assert len(scheduled) == 1, "the schedule fired once, when the cool-down ended"
        assert scheduled[0]["evidence"]["admission"]["coalesced_triggers"] == 2
        assert scheduled[0]["started_at"] >= records[deferred[0]]["started_at"]
        assert row_keys(table) <= merged_rows(world, scheduled[0]), "the deferred upload's rows reach a dataset"
        assert world.one_time_schedules() == [], "the one-time schedule deletes itself"
        assert_one_run_at_a_time(world, runner)
        assert_settled(world, workspace, champion)


# -- 7. an object overwritten in the middle of a run --------------------------------------------------------
def test_an_upload_overwritten_mid_run_is_merged_as_the_version_the_run_fixed(workspace: Path) -> None:
    merging = threading.Event()
    faults = FaultPlan(copy.deepcopy(STOP_AFTER_MERGE), holds={"MergeFunction": merging})
    with running(workspace, faults) as (world, runner):
        champion = champion_model(world)
        old, new = month_slices(workspace, 7, 2)
        key = "incoming/overwritten/2025-08.parquet"
        put(world, key, parquet_bytes(old))
        first = runner.route()
        wait_for(lambda: entered(world, first[0], "MergeDatasets"))
        put(world, key, parquet_bytes(new))  # the next version lands while the first run merges
        merging.set()
        runner.wait(timeout=300)
        records = by_execution(world)
        first_run = records[first[0]]
        pinned = next(entry for entry in inputs_of(world, first_run)["readable"] if entry["key"] == key)
        rows = merged_rows(world, first_run)
        assert row_keys(old) <= rows and not row_keys(new) & rows, "the first run merged the version it fixed"
        manifest = s3_json(world, first_run["evidence"]["merge"]["manifest_key"])
        consumed = {entry["source"]: entry["version"] for entry in manifest["consumed_sources"]}
        assert consumed[f"s3://{data_bucket(world)}/{key}"] == pinned["etag"], "and recorded that version"
        assert row_keys(new) <= last_dataset_rows(world, runner), "the newer version is merged by the next run"
        assert sum(1 for k, _ in object_versions(world) if k == key) == 2, "both versions are kept"
        assert_one_run_at_a_time(world, runner)
        assert_settled(world, workspace, champion)


# -- true concurrency ----------------------------------------------------------------------------------------
def overlapping(world: LocalAWS, first: str, second: str) -> int:
    """How many pairs of calls of the two functions ran at the same time."""
    calls = world.dispatcher.invocations
    return sum(1 for a in calls for b in calls if a is not b and a["function"] == first and b["function"] == second
               and a["started"] < b["finished"] and b["started"] < a["finished"])


def test_racing_duplicates_and_admits_interleaving_with_finalize_make_one_run_at_a_time_and_lose_nothing(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = Ledger.release_lock

    def slow_release(self: Ledger, *args: Any, **kwargs: Any) -> bool:
        released = release(self, *args, **kwargs)
        if released:
            time.sleep(0.5)  # widen the window between releasing the lock and handing pending triggers on
        return released

    monkeypatch.setattr(Ledger, "release_lock", slow_release)
    faults = FaultPlan(copy.deepcopy(STOP_AFTER_MERGE), delays={"AdmitFunction": 0.3})
    with running(workspace, faults) as (world, runner):
        champion = champion_model(world)
        event = load_event("s3_object_created_new_data.json")
        duplicates = [runner.replay(event) for _ in range(8)]
        tables = month_slices(workspace, 7, 12)
        keys = [f"incoming/race/part-{index:02d}.parquet" for index in range(len(tables))]
        for key, table in zip(keys, tables, strict=True):
            put(world, key, parquet_bytes(table))
            runner.route()
            time.sleep(0.4)
        before = object_versions(world)
        runner.wait(timeout=600)

        records = by_execution(world)
        outcomes = [records[delivery.executions[0]] for delivery in duplicates]
        assert sum(1 for run in outcomes if run["evidence"]["admission"].get("admitted")) == 1
        assert sum(1 for run in outcomes if run["outcome"] == "duplicate_ignored") == 7
        assert overlapping(world, "AdmitFunction", "AdmitFunction"), "Admits ran concurrently"
        assert overlapping(world, "AdmitFunction", "FinalizeFunction"), "an Admit interleaved with a Finalize"
        assert_one_run_at_a_time(world, runner)
        rows = last_dataset_rows(world, runner)
        assert all(row_keys(table) <= rows for table in tables), "no trigger lost: every upload reaches a dataset"
        assert object_versions(world) == before
        assert_settled(world, workspace, champion)


# -- a lease that lapses ---------------------------------------------------------------------------------------
def test_a_run_whose_lease_lapsed_loses_to_a_new_run_and_never_promotes(workspace: Path) -> None:
    merging = threading.Event()
    faults = FaultPlan(copy.deepcopy(STOP_AFTER_MERGE), holds={"MergeFunction": merging})
    with running(workspace, faults) as (world, runner):
        champion = champion_model(world)
        stale_data, new_data = month_slices(workspace, 7, 2)
        put(world, "incoming/lapse/stale.parquet", parquet_bytes(stale_data))
        stale = runner.route()
        wait_for(lambda: entered(world, stale[0], "MergeDatasets"))
        # Twelve hours pass in a blink: the stale run's lease runs out while it merges.
        world.client("dynamodb").update_item(
            TableName=world.app.environment["LEDGER_TABLE"],
            Key={"pk": {"S": f"MODEL#{model_name(world)}"}, "sk": {"S": "LOCK"}},
            UpdateExpression="SET lease_expires_at = :past", ExpressionAttributeValues={":past": {"N": "0"}})
        put(world, "incoming/lapse/new.parquet", parquet_bytes(new_data))
        taking_over = runner.route()
        wait_for(lambda: entered(world, taking_over[0], "MergeDatasets"))  # admitted: it holds the lock now
        merging.set()
        runner.wait(timeout=300)
        records = by_execution(world)
        stale_run, new_run = records[stale[0]], records[taking_over[0]]
        assert new_run["evidence"]["admission"]["admitted"], "the lapsed lease is taken over"
        assert stale_run["outcome"] == "failed" and stale_run["error"]["error"] == "LockLostError"
        assert stale_run["error"]["step"] == "MergeDatasets"
        assert f"holder now: {new_run['run_id']}" in stale_run["error"]["cause"]
        assert "merge" not in stale_run["evidence"] and "promotion" not in stale_run["evidence"]
        rows = merged_rows(world, new_run)
        assert row_keys(stale_data) <= rows and row_keys(new_data) <= rows, "the winner merges the loser's data too"
        assert ledger(world).champion(model_name(world))["sagemaker_model"] == champion, "nobody promoted"
        assert_settled(world, workspace, champion)
