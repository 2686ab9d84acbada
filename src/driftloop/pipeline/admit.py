"""Admit a trigger: de-duplicate redeliveries, take the per-model lock, respect the cool-down.

A trigger that is not admitted is recorded as PENDING *before* the lock is tried: the holder's Finalize
releases the lock and then hands the pending triggers on, so a trigger is either seen by that Finalize or
finds the lock free, and never falls between the two. A trigger deferred by the cool-down is pending
too, and a one-time EventBridge Scheduler schedule starts a run when the cool-down ends. A run that is
admitted takes over every pending trigger: its inputs are fixed after this point, so they include the
data of every trigger recorded before.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import error_code, raise_for_client_error
from driftloop.admission import AdmissionRules, iso, respects_cooldown
from driftloop.errors import ConfigurationError
from driftloop.pipeline.contracts import Admission, returns
from driftloop.pipeline.history import check_history
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.lease import check_lease
from driftloop.pipeline.lineage import upload_already_merged
from driftloop.pipeline.services import Services
from driftloop.triggers import parse_trigger


def schedule_after_cooldown(services: Services, execution_arn: str, cooldown_ends: float) -> str:
    """A one-time schedule that sends ``Retrain Requested`` to the default event bus when the cool-down
    ends (named after the model and the time, so every trigger deferred by one cool-down shares it).
    Returns when it fires."""
    settings = services.settings
    if not settings.cooldown_schedule_role_arn:
        raise ConfigurationError("COOLDOWN_SCHEDULE_ROLE_ARN is not set: a trigger deferred by the cool-down "
                                 "could not be scheduled to run when it ends")
    due = AdmissionRules.schedule_time(cooldown_ends, services.clock())
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


@returns(Admission)
def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings, ledger = services.settings, services.ledger
    rules = AdmissionRules(settings.cooldown_hours)
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
        return rules.duplicate(record, first_execution, execution.id).to_dict()
    position = trigger.sequence_position()
    if trigger.type == "upload" and trigger.bucket and trigger.key and position:
        later = ledger.note_object_event(trigger.bucket, trigger.key, position)
        if later:
            return rules.out_of_order(record, trigger.key, trigger.sequencer, later).to_dict()
    champion = ledger.champion(settings.model_name)
    if trigger.type == "upload" and trigger.key:
        merged = upload_already_merged(services, trigger.key, champion)
        if merged:
            return rules.already_merged(record, merged).to_dict()
    cooldown_ends = rules.cooldown_ends(champion, now) if respects_cooldown(trigger) else None
    if cooldown_ends is not None:
        ledger.add_pending(settings.model_name, dedup_key, trigger.to_dict())
        due = schedule_after_cooldown(services, execution.id, cooldown_ends)
        return rules.deferred_by_cooldown(record, cooldown_ends, due).to_dict()
    definition = services.states.describe_state_machine_for_execution(executionArn=execution.id)["definition"]
    check_lease(definition, settings.lock_lease_minutes)
    check_history(definition, settings.max_training_seconds, len(settings.traffic_stages), settings.max_bake_waits)
    ledger.add_pending(settings.model_name, dedup_key, trigger.to_dict())
    lock = ledger.acquire_lock(settings.model_name, run_id, now, settings.lock_lease_minutes * 60, execution.id)
    if not lock.acquired:
        return rules.deferred_by_lock(record, lock.holder, lock.expires_at).to_dict()
    coalesced = ledger.pending(settings.model_name)
    for key in coalesced:
        ledger.remove_pending(settings.model_name, key)
    return rules.admitted(record, trigger.type, lock.expires_at, champion is None, coalesced, dedup_key).to_dict()
