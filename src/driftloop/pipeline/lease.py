"""Does the lock's lease outlast the longest stretch of a run without a renewal?

A run renews its lease at the start of every step that reads or changes what the lock protects
(``RENEWING_STATES``). Between two renewals the state machine may spend a Task's whole retry budget, a
training poll or a bake Wait; if that can take longer than ``LockLeaseMinutes``, another run could take
the lock over in the middle of a healthy run. The check reads the running state machine's own
definition, so a longer ``BakeSeconds`` or a new Wait is seen without a second source of truth.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from driftloop.errors import ConfigurationError

# States whose function renews the lease as it starts (``hold_lock``), and Admit, which takes it. A Map
# whose items run a renewing Task renews at every item it starts.
RENEWING_STATES = frozenset({
    "Admit", "ComputeDrift", "PlanMergeParts", "MergePart", "CombineMerge", "MergeDatasets", "StartTraining",
    "PollTraining", "EvaluateChallenger", "UpdateWeights", "AnalyseAB", "Promote",
})
DEFAULT_TASK_SECONDS = 99_999_999  # Step Functions' Task timeout when TimeoutSeconds is absent


def _retry_budget(task: dict[str, Any]) -> float:
    """Seconds a Task can spend waiting between its attempts, and the number of extra attempts."""
    seconds, extra = 0.0, 0
    for rule in task.get("Retry", []):
        interval, rate = rule.get("IntervalSeconds", 1), rule.get("BackoffRate", 2.0)
        cap = rule.get("MaxDelaySeconds", float("inf"))
        attempts = rule.get("MaxAttempts", 3)
        extra += attempts
        seconds += sum(min(interval * rate ** attempt, cap) for attempt in range(attempts))
    return seconds + extra * task.get("TimeoutSeconds", DEFAULT_TASK_SECONDS)


def _longest(states: dict[str, Any], start: str, seen: frozenset[str]) -> tuple[float, list[str]]:
    """Worst-case seconds from entering ``start`` until a renewing state begins (or the run ends)."""
    if start in seen or start not in states:
        return 0.0, []
    state = states[start]
    kind = state["Type"]
    if kind == "Task":
        spent = state.get("TimeoutSeconds", DEFAULT_TASK_SECONDS)
        if start not in RENEWING_STATES:
            spent += _retry_budget(state)
    elif kind == "Wait":
        spent = float(state.get("Seconds", 0))
    elif kind == "Map":
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        inner = processor.get("States", {})
        spent = max((task.get("TimeoutSeconds", DEFAULT_TASK_SECONDS) for task in inner.values()
                     if task.get("Type") == "Task"), default=0)
    else:
        spent = 0.0
    following = [state["Next"]] if "Next" in state else []
    if kind == "Choice":
        following = [choice["Next"] for choice in state.get("Choices", [])] + (
            [state["Default"]] if "Default" in state else [])
    worst, path = 0.0, []
    for name in following:
        if name in RENEWING_STATES:
            continue
        seconds, tail = _longest(states, name, seen | {start})
        if seconds > worst:
            worst, path = seconds, tail
    return spent + worst, [start, *path]


@functools.lru_cache(maxsize=4)
def check_lease(definition: str, lease_minutes: float) -> float:
    """The longest stretch (seconds) without a renewal; raise ConfigurationError when the lease is shorter.

    Example
    -------
    >>> asl = {"StartAt": "Admit", "States": {
    ...     "Admit": {"Type": "Task", "TimeoutSeconds": 10, "Next": "Bake"},
    ...     "Bake": {"Type": "Wait", "Seconds": 3600, "Next": "AnalyseAB"},
    ...     "AnalyseAB": {"Type": "Task", "TimeoutSeconds": 300, "End": True}}}
    >>> check_lease(json.dumps(asl), 120)
    3610.0
    >>> check_lease(json.dumps(asl), 60)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: LockLeaseMinutes=60 is shorter than the 61 minutes ... (Admit -> Bake); ...
    """
    states = json.loads(definition)["States"]
    worst, path = 0.0, []
    for name in RENEWING_STATES & set(states):
        seconds, tail = _longest(states, name, frozenset())
        if seconds > worst:
            worst, path = seconds, tail
    if worst >= lease_minutes * 60:
        raise ConfigurationError(
            f"LockLeaseMinutes={lease_minutes:g} is shorter than the {-(-worst // 60):.0f} minutes a run can go "
            f"without renewing its lease ({' -> '.join(path)}); raise LockLeaseMinutes or shorten the "
            "Waits (BakeSeconds, PollSeconds) and Task timeouts on that path")
    return worst
