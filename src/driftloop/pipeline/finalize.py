"""Record the run with its evidence, release the lock, hand deferred triggers on, notify."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from driftloop.adapters.events import put_events
from driftloop.adapters.s3 import put_json
from driftloop.layout import record_key, s3_uri
from driftloop.observability import publish_run_metrics
from driftloop.pipeline.contracts import FinalizeResult, RunRecord, returns
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services

OUTCOMES = ("no_drift", "challenger_rejected", "promoted", "rolled_back", "failed", "duplicate_ignored", "deferred")
EVIDENCE_STEPS = ("drift", "merge", "training", "evaluation", "traffic", "ab", "promotion", "rollback")
_SKIPPED_STATES = {"Finalize", "FinalizeFailedRun"}
logger = logging.getLogger(__name__)


def _timestamp(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def steps_from_history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per visit of a Task state: status, attempts (1 + retries), timings and errors."""
    steps: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in events:
        kind = event["type"]
        if kind == "TaskStateEntered":
            name = event["stateEnteredEventDetails"]["name"]
            current = None if name in _SKIPPED_STATES else {
                "name": name, "status": "running", "attempts": 0, "started_at": _timestamp(event["timestamp"]),
                "finished_at": None, "errors": []}
            if current is not None:
                steps.append(current)
        elif current is None:
            continue
        elif kind in ("LambdaFunctionScheduled", "TaskScheduled"):
            current["attempts"] += 1
        elif kind in ("LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut"):
            details = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
            cause = str(details.get("cause", ""))[:500]
            current["errors"].append({"error": details.get("error", kind), "cause": cause})
        elif kind == "TaskStateExited":
            current["finished_at"] = _timestamp(event["timestamp"])
            failed_last = current["errors"] and len(current["errors"]) >= current["attempts"]
            current["status"] = "failed" if failed_last else "succeeded"
            started = datetime.fromisoformat(current["started_at"])
            current["duration_seconds"] = round((event["timestamp"] - started).total_seconds(), 3) \
                if isinstance(event["timestamp"], datetime) else None
            current = None
    for step in steps:
        if step["status"] == "running" and step["errors"]:
            step["status"] = "failed"
    return steps


def execution_history(services: Services, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's events without their input and output (a run's state rides on every one of them;
    the record needs only the states, attempts, times and errors)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000, "includeExecutionData": False}
    while True:
        page = services.states.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _failure(state: dict[str, Any]) -> dict[str, Any]:
    error = state.get("error") or {}
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause)
        message = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    except (TypeError, ValueError):
        message = cause
    return {"error": error.get("Error", "Unknown"), "cause": str(message)[:2000]}


def _serving(state: dict[str, Any]) -> str | None:
    """What the endpoint served when the run last looked: RestoreChampion's result on the failure path,
    else the last endpoint poll or endpoint-changing step."""
    for step in ("rollback", "endpoint", "promotion", "traffic"):
        value = state.get(step)
        if isinstance(value, dict) and value.get("serving"):
            return str(value["serving"])
    return None


def decision_summary(drift: dict[str, Any]) -> dict[str, Any]:
    """The record's answer to "why did this trigger retrain, or not?": the step's decision, its reasons,
    and the retrain policy's money (its signals stay in ``evidence.drift.retrain``)."""
    retrain = drift.get("retrain") or {}
    return {
        "decision": drift.get("decision"),
        "reasons": list(drift.get("reasons") or []),
        "policy": retrain.get("policy"),
        "policy_retrain": retrain.get("retrain"),
        "overridden_by": retrain.get("overridden_by", []),
        **{key: retrain.get(key) for key in ("expected_gain", "gain_ci", "staleness_cost", "retraining_cost",
                                              "report_key")},
    }


def build_record(invocation: StepInvocation, steps: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """The run record (``RunRecord``): the run's description, outcome, steps and every step's evidence."""
    state, execution = invocation.state, invocation.context.execution
    admission = state.get("admission") or {}
    run = admission.get("run") or {
        "run_id": f"unadmitted-{execution.name}",
        "trigger": {"type": "unknown", "source": str((execution.input or {}).get("source", "unknown"))[:100]},
        "started_at": execution.start_time,
        "execution": execution.id,
    }
    outcome = "failed" if "error" in state else state.get("outcome") or admission.get("outcome")
    record = {
        **run,
        "outcome": outcome,
        "finished_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "steps": steps,
        "evidence": {"admission": {k: v for k, v in admission.items() if k != "run"}}
        | {step: state[step] for step in EVIDENCE_STEPS if step in state},
    }
    if isinstance(state.get("drift"), dict):
        record["decision"] = decision_summary(state["drift"])
    if outcome == "failed":
        failed_steps = [step["name"] for step in steps if step["status"] == "failed"]
        record["error"] = {**_failure(state), "step": failed_steps[-1] if failed_steps else None}
        if "restore_error" in state:
            record["restore_error"] = _failure({"error": state["restore_error"]})
    if _serving(state):
        record["serving"] = _serving(state)
    return RunRecord.model_validate(record).dump()


def release_and_hand_on(services: Services, invocation: StepInvocation, run_id: str) -> int:
    """Release the lock this execution holds, then hand the deferred triggers on as one event; returns how
    many were handed on. An execution whose Admit failed after taking the lock never learnt its run id:
    the lock is found by its execution. Triggers are deleted only once EventBridge has accepted the event
    (at-least-once: a retry after a lost delete sends them again, and the run they start finds the data
    merged). A retried Finalize whose first attempt released the lock hands on what is still pending."""
    settings, ledger = services.settings, services.ledger
    admitted = bool((invocation.state.get("admission") or {}).get("admitted"))
    if invocation.state.get("admission"):
        released = ledger.release_lock(settings.model_name, run_id)
    else:
        released = ledger.release_lock_of_execution(settings.model_name, invocation.context.execution.id) is not None
    if not (released or (admitted and ledger.lock(settings.model_name) is None)):
        return 0
    pending = ledger.pending(settings.model_name)
    if not pending:
        return 0
    uploads = [trigger["key"] for trigger in pending.values() if trigger.get("type") == "upload"]
    put_events(services.events, sleep=services.sleep, entries=[{
        "Source": "driftloop",
        "DetailType": "Retrain Requested",
        "Detail": json.dumps({"reason": f"{len(pending)} triggers deferred during run {run_id}",
                              "requested_by": "driftloop", "uploads": uploads[:1000], "force": False}),
    }])
    for dedup_key in pending:
        ledger.remove_pending(settings.model_name, dedup_key)
    return len(pending)


@returns(FinalizeResult)
def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    steps = steps_from_history(execution_history(services, invocation.context.execution.id))
    record = build_record(invocation, steps, services.clock())
    key = record_key(record["run_id"])
    record["record_uri"] = s3_uri(settings.data_bucket, key)
    try:
        put_json(services.s3, settings.data_bucket, key, record)
        services.ledger.put_run(settings.model_name, record)
    finally:  # a record that cannot be written must not keep the model locked for the whole lease
        handed_on = release_and_hand_on(services, invocation, record["run_id"])
    publish_run_metrics(settings.model_name, record)
    notification_error = None
    if record["outcome"] != "duplicate_ignored":
        notification_error = _notify(services, record)
    result = {"run_id": record["run_id"], "outcome": record["outcome"], "record_uri": record["record_uri"],
              "deferred_triggers_handed_on": handed_on}
    return result | ({"notification_error": notification_error} if notification_error else {})


def _notify(services: Services, record: dict[str, Any]) -> str | None:
    """Publish the run's summary. The run is recorded and the lock released before: a notification that
    cannot be sent is logged and added to the record (S3 and ledger), never a reason to fail the run."""
    settings = services.settings
    try:
        services.sns.publish(
            TopicArn=settings.notification_topic_arn,
            Subject=f"driftloop {settings.model_name}: {record['outcome']}"[:100],
            Message=json.dumps({key: record.get(key) for key in
                                ("run_id", "outcome", "trigger", "started_at", "finished_at", "error",
                                 "restore_error", "serving", "record_uri")}, indent=2, default=str),
        )
        return None
    except (ClientError, BotoCoreError) as error:
        record["notification_error"] = f"SNS publish to {settings.notification_topic_arn} failed: {error}"[:1000]
        logger.error("run notification not sent", extra={"run_id": record["run_id"],
                                                          "error": record["notification_error"]})
        put_json(services.s3, settings.data_bucket, record_key(record["run_id"]), record)
        services.ledger.put_run(settings.model_name, record)
        return record["notification_error"]
