"""Admit a trigger: de-duplicate redeliveries, take the per-model lock, respect the cool-down.

A trigger that is not admitted is recorded as PENDING *before* the lock is tried: the holder's Finalize
releases the lock and then hands the pending triggers on, so a trigger is either seen by that Finalize or
finds the lock free, and never falls between the two. A trigger deferred by the cool-down is pending
too, and a one-time EventBridge Scheduler schedule starts a run when the cool-down ends. A run that is
admitted takes over every pending trigger: its inputs are fixed after this point, so they include the
data of every trigger recorded before.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import error_code, raise_for_client_error
from driftloop.errors import ConfigurationError
from driftloop.pipeline.history import check_history
from driftloop.pipeline.inputs import upload_already_merged
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.lease import check_lease
from driftloop.pipeline.services import Services
from driftloop.triggers import Trigger, parse_trigger


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds")


def respects_cooldown(trigger: Trigger) -> bool:
    """Every trigger waits for the cool-down but a person's forced retrain; triggers that driftloop hands
    on (deferred ones, the cool-down's own schedule) are not forced and wait too."""
    return not (trigger.type == "manual" and trigger.detail.get("force", True))


def schedule_after_cooldown(services: Services, execution_arn: str, cooldown_ends: float) -> str:
    """A one-time schedule that sends ``Retrain Requested`` to the default event bus when the cool-down
    ends (named after the model and the time, so every trigger deferred by one cool-down shares it).
    Returns when it fires."""
    settings = services.settings
    if not settings.cooldown_schedule_role_arn:
        raise ConfigurationError("COOLDOWN_SCHEDULE_ROLE_ARN is not set: a trigger deferred by the cool-down "
                                 "could not be scheduled to run when it ends")
    due = datetime.fromtimestamp(max(math.ceil(cooldown_ends), math.ceil(services.clock())) + 1, UTC)
    _, partition, _, region, account, *_ = execution_arn.split(":")
    detail = {"reason": f"cool-down after the last promotion ended at {iso(cooldown_ends)}; "
              "triggers deferred by it run now", "requested_by": "driftloop", "force": False}
    try:
        services.scheduler.create_schedule(
            Name=f"{settings.model_name}-cooldown-{due:%Y%m%dT%H%M%S}",
            ScheduleExpression=f"at({due:%Y-%m-%dT%H:%M:%S})",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={"Arn": f"arn:{partition}:events:{region}:{account}:event-bus/default",
                    "RoleArn": settings.cooldown_schedule_role_arn,
                    "EventBridgeParameters": {"Source": "driftloop", "DetailType": "Retrain Requested"},
                    "Input": json.dumps(detail)},
        )
    except ClientError as error:
        if error_code(error) != "ConflictException":  # already scheduled by an earlier deferred trigger
            raise_for_client_error(error, "EventBridge Scheduler CreateSchedule")
    return due.isoformat()


def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings, ledger = services.settings, services.ledger
    now = services.clock()
    execution = invocation.context.execution
    trigger = parse_trigger(
        execution.input, settings.data_bucket, settings.incoming_prefix, settings.monitor_report_prefix
    )
    run_id = trigger.run_id()
    dedup_key = trigger.dedup_key()
    record = {
        "run_id": run_id,
        "model": settings.model_name,
        "trigger": trigger.to_dict(),
        "started_at": execution.start_time,
        "execution": execution.id,
    }
    first_execution = ledger.claim_trigger(dedup_key, execution.id, now)
    if first_execution is not None:
        duplicate_id = f"{run_id}-dup-{hashlib.sha256(execution.id.encode()).hexdigest()[:6]}"
        return {
            "admitted": False,
            "outcome": "duplicate_ignored",
            "reason": f"this trigger was already admitted by execution {first_execution}",
            "run": {**record, "run_id": duplicate_id, "duplicate_of": run_id},
        }
    position = trigger.sequence_position()
    if trigger.type == "upload" and trigger.bucket and trigger.key and position:
        later = ledger.note_object_event(trigger.bucket, trigger.key, position)
        if later:
            return {"admitted": False, "outcome": "duplicate_ignored", "run": record,
                    "reason": f"out-of-order event: an event for a newer version of {trigger.key} (sequencer "
                    f"{later.lstrip('0')}) came first; this one ({trigger.sequencer}) announces an older version, "
                    "which the newer one replaces"}
    champion = ledger.champion(settings.model_name)
    if trigger.type == "upload" and trigger.key:
        merged = upload_already_merged(services, trigger.key, champion)
        if merged:
            return {"admitted": False, "outcome": "duplicate_ignored", "reason": merged, "run": record}
    if champion and respects_cooldown(trigger):
        promoted_at = datetime.fromisoformat(champion["promoted_at"]).timestamp()
        cooldown_ends = promoted_at + settings.cooldown_hours * 3600
        if now < cooldown_ends:
            ledger.add_pending(settings.model_name, dedup_key, trigger.to_dict())
            due = schedule_after_cooldown(services, execution.id, cooldown_ends)
            return {
                "admitted": False,
                "outcome": "deferred",
                "reason": f"cool-down after the last promotion until {iso(cooldown_ends)}; "
                f"its data joins the run scheduled for {due}",
                "run": record,
            }
    definition = services.states.describe_state_machine_for_execution(executionArn=execution.id)["definition"]
    check_lease(definition, settings.lock_lease_minutes)
    check_history(definition, settings.max_training_seconds, len(settings.traffic_stages), settings.max_bake_waits)
    ledger.add_pending(settings.model_name, dedup_key, trigger.to_dict())
    lock = ledger.acquire_lock(settings.model_name, run_id, now, settings.lock_lease_minutes * 60, execution.id)
    if not lock.acquired:
        return {
            "admitted": False,
            "outcome": "deferred",
            "reason": f"run {lock.holder} holds the lock until {iso(lock.expires_at)}; "
            "this trigger is coalesced into the next run",
            "run": record,
        }
    coalesced = ledger.pending(settings.model_name)
    for key in coalesced:
        ledger.remove_pending(settings.model_name, key)
    return {
        "admitted": True,
        "reason": f"{trigger.type} trigger admitted; lock held until {iso(lock.expires_at)}",
        "coalesced_triggers": sum(1 for key in coalesced if key != dedup_key),
        "run": {**record, "lock_expires_at": iso(lock.expires_at), "first_deployment": champion is None},
    }
