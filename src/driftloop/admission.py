"""Whether a trigger starts a run: the admission rules, as pure decisions.

``pipeline.admit`` asks the ledger the facts (was this trigger claimed before, is a newer version of the
object known, is the upload already merged, when was the champion promoted, who holds the lock) and
writes what these rules decide; the rules themselves touch nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftloop.triggers import Trigger

DUPLICATE = "duplicate_ignored"
DEFERRED = "deferred"


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds")


def respects_cooldown(trigger: Trigger) -> bool:
    """Every trigger waits for the cool-down but a person's forced retrain; triggers that driftloop hands
    on (deferred ones, the cool-down's own schedule) are not forced and wait too."""
    return not (trigger.type == "manual" and trigger.detail.get("force", True))


@dataclass(frozen=True)
class Admission:
    """A rule's answer: ``run`` is the run description (``$.admission.run``); ``outcome`` says why a
    trigger that is not admitted ends (``duplicate_ignored`` or ``deferred``)."""

    admitted: bool
    reason: str
    run: dict[str, Any]
    outcome: str | None = None
    coalesced_triggers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        fields = {"admitted": self.admitted, "outcome": self.outcome, "reason": self.reason,
                  "coalesced_triggers": self.coalesced_triggers, "run": self.run}
        return {key: value for key, value in fields.items() if value is not None}


class AdmissionRules:
    """The rules in the order ``pipeline.admit`` applies them: a redelivered trigger, an out-of-order S3
    event and an upload already merged are duplicates; a trigger inside the cool-down after a promotion,
    or while another run holds the model's lock, is deferred (and coalesced into a later run); else the
    run is admitted and takes over every pending trigger.

    Parameters
    ----------
    cooldown_hours
        Hours after a promotion during which triggers wait (>= 0); a person's forced retrain does not.

    Example
    -------
    >>> from driftloop.admission import AdmissionRules
    >>> rules = AdmissionRules(cooldown_hours=24)
    >>> run = {"run_id": "r1"}
    >>> rules.duplicate(run, first_execution="arn:exec-1", execution="arn:exec-2").run["duplicate_of"]
    'r1'
    >>> rules.cooldown_ends({"promoted_at": "2026-01-01T00:00:00+00:00"}, now=1767229200.0)  # 1 h later
    1767312000.0
    >>> rules.cooldown_ends({"promoted_at": "2026-01-01T00:00:00+00:00"}, now=1767312000.0) is None
    True
    >>> AdmissionRules(cooldown_hours=-1)
    Traceback (most recent call last):
    ...
    ValueError: cooldown_hours must be a number >= 0, not -1
    """

    def __init__(self, cooldown_hours: float) -> None:
        valid = isinstance(cooldown_hours, int | float) and not isinstance(cooldown_hours, bool)
        if not valid or not math.isfinite(cooldown_hours) or cooldown_hours < 0:
            raise ValueError(f"cooldown_hours must be a number >= 0, not {cooldown_hours!r}")
        self.cooldown_hours = cooldown_hours

    @staticmethod
    def duplicate(run: Mapping[str, Any], first_execution: str, execution: str) -> Admission:
        """The trigger was claimed before: this execution's record gets its own id, derived from it."""
        suffix = hashlib.sha256(execution.encode()).hexdigest()[:6]
        return Admission(False, f"this trigger was already admitted by execution {first_execution}",
                         {**run, "run_id": f"{run['run_id']}-dup-{suffix}", "duplicate_of": run["run_id"]},
                         DUPLICATE)

    @staticmethod
    def out_of_order(run: Mapping[str, Any], key: str, sequencer: str | None, later: str) -> Admission:
        """An event for a newer version of ``key`` (position ``later``) came before this older one."""
        return Admission(False, f"out-of-order event: an event for a newer version of {key} (sequencer "
                         f"{later.lstrip('0')}) came first; this one ({sequencer}) announces an older version, "
                         "which the newer one replaces", dict(run), DUPLICATE)

    @staticmethod
    def already_merged(run: Mapping[str, Any], why: str) -> Admission:
        return Admission(False, why, dict(run), DUPLICATE)

    def cooldown_ends(self, champion: Mapping[str, Any] | None, now: float) -> float | None:
        """When the cool-down after the champion's promotion ends, or None when none holds at ``now``."""
        if champion is None:
            return None
        ends = datetime.fromisoformat(champion["promoted_at"]).timestamp() + self.cooldown_hours * 3600
        return ends if now < ends else None

    @staticmethod
    def schedule_time(cooldown_ends: float, now: float) -> datetime:
        """When the one-time schedule for the deferred triggers fires: the first whole second after the
        cool-down (or after now, when it is already over), so every trigger it defers shares it."""
        return datetime.fromtimestamp(max(math.ceil(cooldown_ends), math.ceil(now)) + 1, UTC)

    @staticmethod
    def deferred_by_cooldown(run: Mapping[str, Any], cooldown_ends: float, scheduled_for: str) -> Admission:
        return Admission(False, f"cool-down after the last promotion until {iso(cooldown_ends)}; "
                         f"its data joins the run scheduled for {scheduled_for}", dict(run), DEFERRED)

    @staticmethod
    def deferred_by_lock(run: Mapping[str, Any], holder: str, expires_at: float) -> Admission:
        return Admission(False, f"run {holder} holds the lock until {iso(expires_at)}; "
                         "this trigger is coalesced into the next run", dict(run), DEFERRED)

    @staticmethod
    def admitted(run: Mapping[str, Any], trigger_type: str, lock_expires_at: float, first_deployment: bool,
                 pending: Iterable[str], own_key: str) -> Admission:
        """Admitted with the lock: the run takes over the ``pending`` triggers (by de-duplication key),
        and counts those other than its own as coalesced."""
        return Admission(True, f"{trigger_type} trigger admitted; lock held until {iso(lock_expires_at)}",
                         {**run, "lock_expires_at": iso(lock_expires_at), "first_deployment": first_deployment},
                         coalesced_triggers=sum(1 for key in pending if key != own_key))
