"""Admit a trigger: de-duplicate redeliveries, take the per-model lock, respect the cool-down.

A trigger that is not admitted is recorded as PENDING *before* the lock is tried: the holder's Finalize
releases the lock and then takes the pending triggers, so a trigger is either seen by that Finalize or
finds the lock free, and never falls between the two.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from driftloop.pipeline.inputs import upload_already_merged
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services
from driftloop.triggers import parse_trigger


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds")


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
    if champion and trigger.type != "manual":
        promoted_at = datetime.fromisoformat(champion["promoted_at"]).timestamp()
        cooldown_ends = promoted_at + settings.cooldown_hours * 3600
        if now < cooldown_ends:
            ledger.add_pending(settings.model_name, dedup_key, trigger.to_dict())
            return {
                "admitted": False,
                "outcome": "deferred",
                "reason": f"cool-down after the last promotion until {iso(cooldown_ends)}; "
                "its data joins the next run",
                "run": record,
            }
    ledger.add_pending(settings.model_name, dedup_key, trigger.to_dict())
    lock = ledger.acquire_lock(settings.model_name, run_id, now, settings.lock_lease_minutes * 60)
    if not lock.acquired:
        return {
            "admitted": False,
            "outcome": "deferred",
            "reason": f"run {lock.holder} holds the lock until {iso(lock.expires_at)}; "
            "this trigger is coalesced into the next run",
            "run": record,
        }
    ledger.remove_pending(settings.model_name, dedup_key)
    return {
        "admitted": True,
        "reason": f"{trigger.type} trigger admitted; lock held until {iso(lock.expires_at)}",
        "run": {**record, "lock_expires_at": iso(lock.expires_at), "first_deployment": champion is None},
    }
