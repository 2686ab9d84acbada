"""Deliver events through the template's rules, start executions, follow them state by state."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftloop.local.runtime import LocalAWS

Printer = Callable[[str], None]
_NEWS_CHECK_SECONDS = 0.01


@dataclass
class Delivery:
    event: dict[str, Any]
    matched_rules: list[str]
    executions: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class ExecutionResult:
    arn: str
    name: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None


def _event_entry(event: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "Source": str(event.get("source", "")),
        "DetailType": str(event.get("detail-type", "")),
        "Detail": json.dumps(event.get("detail", {})),
        "Resources": [str(resource) for resource in event.get("resources", [])],
    }
    if event.get("time"):
        with contextlib.suppress(ValueError):  # EventBridge stamps its own time on an unreadable one
            entry["Time"] = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    return entry


class Runner:
    def __init__(self, world: LocalAWS, printer: Printer | None = print, poll_seconds: float = 0.2) -> None:
        self.world = world
        self.printer = printer or (lambda _line: None)
        self._printing = printer is not None
        self.poll_seconds = poll_seconds
        self._seen: dict[str, int] = {}
        self._first_seen: dict[str, float] = {}
        self._running: set[str] = set()
        self.finished: dict[str, ExecutionResult] = {}

    # -- delivering ------------------------------------------------------------------------
    def replay(self, event: dict[str, Any]) -> Delivery:
        """Deliver one event as EventBridge would: through the rules; each match starts an execution
        whose input is the event exactly as given."""
        self.route()  # events emitted before this one are not attributed to it
        if not isinstance(event, dict) or "detail-type" not in event or "source" not in event:
            return Delivery(event, [], note="not an EventBridge event (needs source, detail-type and detail)")
        if event.get("detail-type") in ("Scheduled Event", "Scheduled event"):
            return self._replay_schedule(event)
        response = self.world.client("events").put_events(Entries=[_event_entry(event)])
        if response.get("FailedEntryCount"):
            return Delivery(event, [], note=f"EventBridge refused the event: {response['Entries']}")
        matched = sorted({rule for rule, _ in self.world.drain_rule_queues()})
        delivery = Delivery(event, matched)
        if not matched:
            delivery.note = "matched no rule of the template: nothing started"
        for rule in matched:
            arn = self.world.start_execution(event)
            delivery.executions.append(arn)
            self._running.add(arn)
            self.printer(f"event {event.get('detail-type')} from {event.get('source')} matched {rule}: "
                         f"execution {arn.rsplit(':', 1)[-1]}")
        if not matched:
            self.printer(f"event {event.get('detail-type')} from {event.get('source')}: {delivery.note}")
        return delivery

    def _replay_schedule(self, event: dict[str, Any]) -> Delivery:
        schedules = [rule for rule in self.world.app.rules if rule.schedule and rule.targets_state_machine]
        enabled = [rule for rule in schedules if rule.enabled]
        if not enabled:
            names = ", ".join(rule.logical_id for rule in schedules) or "none"
            note = (f"the template's schedule ({names}) is DISABLED (parameter ScheduleState); "
                    "nothing started")
            self.printer(f"scheduled event: {note}")
            return Delivery(event, [], note=note)
        arn = self.world.start_execution(event)
        self._running.add(arn)
        self.printer(f"scheduled event matched {enabled[0].logical_id}: execution {arn.rsplit(':', 1)[-1]}")
        return Delivery(event, [enabled[0].name], [arn])

    def route(self) -> list[str]:
        """Start executions for events that services emitted (S3 uploads, deferred-run hand-overs, one-time
        schedules that came due)."""
        self.world.fire_due_schedules()
        started = []
        for rule, event in self.world.drain_rule_queues():
            arn = self.world.start_execution(event)
            self._running.add(arn)
            started.append(arn)
            detail = event.get("detail", {})
            what = detail.get("object", {}).get("key") or detail.get("reason") or ""
            self.printer(f"{event.get('detail-type')} {what} matched {rule}: execution {arn.rsplit(':', 1)[-1]}")
        return started

    # -- following -------------------------------------------------------------------------
    def _follow(self, arn: str) -> None:
        """Print the states the execution entered since the last look (nothing to do without a printer)."""
        if not self._printing:
            return
        events = self.world.execution_history(arn)
        name = arn.rsplit(":", 1)[-1]
        elapsed = time.monotonic() - self._first_seen.setdefault(arn, time.monotonic())
        for event in events[self._seen.get(arn, 0):]:
            line = self._describe(event)
            if line:
                self.printer(f"  [{name[-8:]} {elapsed:6.1f} s] {line}")
        self._seen[arn] = len(events)

    @staticmethod
    def _describe(event: dict[str, Any]) -> str | None:
        kind = event["type"]
        details = next((value for key, value in event.items() if key.endswith("EventDetails")), {})
        if kind.endswith("StateEntered") and kind != "ChoiceStateEntered":
            state = details.get("name", "?")
            return f"▶ {state}" + (" (waiting)" if kind == "WaitStateEntered" else "")
        if kind == "LambdaFunctionFailed":
            return f"  ✗ attempt failed: {details.get('error')}: {_message(details.get('cause'))}"
        if kind == "ChoiceStateExited":
            return None
        if kind == "ExecutionSucceeded":
            return "■ execution succeeded"
        if kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            return f"■ execution {kind[9:].lower()}: {details.get('error', '')} {_message(details.get('cause'))}"
        return None

    def wait(self, timeout: float = 600.0) -> dict[str, ExecutionResult]:
        """Follow every execution (and the ones they cause, also through a one-time schedule: when nothing
        else runs, the clock moves on to it) until all have finished; ``timeout`` is in real seconds."""
        states = self.world.client("stepfunctions")
        deadline = time.time() + timeout
        while True:
            self.route()
            for arn in sorted(self._running):
                self._follow(arn)
                if self.world.execution_running(arn):
                    continue
                description = states.describe_execution(executionArn=arn)
                if description["status"] != "RUNNING":
                    self._follow(arn)
                    self._running.discard(arn)
                    output = description.get("output")
                    self.finished[arn] = ExecutionResult(
                        arn, description["name"], description["status"],
                        json.loads(output) if output else None, description.get("error"), description.get("cause"))
            self.world.drain_notifications()
            if not self._running:
                self.route()
                schedules = self.world.one_time_schedules()
                if not self._running and not schedules:
                    return self.finished
                if not self._running:
                    self.world.clock.advance_to(schedules[0][0])
            if time.time() > deadline:
                raise TimeoutError(f"executions still running after {timeout:.0f} s: {sorted(self._running)}")
            self._pause()

    def _pause(self) -> None:
        """Wait ``poll_seconds`` for the next look, or less once every execution has ended or an event waits
        for a rule (both seen in moto's memory: a look at each execution costs API calls, these cost none)."""
        until = time.monotonic() + self.poll_seconds
        while (remaining := until - time.monotonic()) > 0:
            time.sleep(min(_NEWS_CHECK_SECONDS, remaining))
            if self.world.running_executions() == 0 or self.world.events_waiting():
                return


def _message(cause: Any) -> str:
    if not cause:
        return ""
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage", cause))[:300]
    except (TypeError, ValueError):
        pass
    return str(cause)[:300]

