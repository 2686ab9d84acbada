"""Does the worst-case run fit in Step Functions' execution history?

A Standard execution fails once its history reaches 25,000 events ("Maximum execution history size",
https://docs.aws.amazon.com/step-functions/latest/dg/limits.html; "Avoid reaching the history quota",
https://docs.aws.amazon.com/step-functions/latest/dg/bp-history-limit.html), and a run that dies so never
reaches Finalize. The run's loops all go through a Wait (training polls, bakes, endpoint-change polls), so
the bound reads the running state machine's own definition, which is acyclic once cut at its Waits. A
Wait is entered at most as often as ``wait_visits`` says; every visit costs the longest way from it back to
itself, and every entry of its loop the longest way out of it (to another Wait or the end). A Catch ends the
healthy flow, so the longest stretch a Catch leads to counts once, and so does every Task's whole retry
budget: retries are transient faults, and a run retrying at every one of thousands of polls is not counted.
Otherwise the bound over-counts (no run promotes and rolls back, each for the full endpoint-change cap).

A Distributed Map's items run as child executions with their own histories
(https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html): the Map adds only its
own events to the run's.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from driftloop.errors import ConfigurationError

# How long an endpoint change may keep the endpoint Creating/Updating before the run gives up on it. A
# plain SageMaker update takes minutes (new instances, health checks); guarded deployments are followed by
# AnalyseAB under their own timeout, not here.
MAX_ENDPOINT_CHANGE_SECONDS = 3 * 3600
# ... and how many polls it may take, so a short PollSeconds cannot outgrow the execution history (3 h at
# the default PollSeconds of 60 s); the history bound below counts with both.
MAX_ENDPOINT_CHANGE_POLLS = 180
HISTORY_LIMIT = 25_000
SAFE_SHARE = 0.9
EXECUTION_EVENTS = 2  # ExecutionStarted and ExecutionSucceeded/Failed
DEFAULT_MAX_ATTEMPTS = 3  # a Retrier's MaxAttempts when absent


def _retries(state: dict[str, Any]) -> int:
    """Every Retrier counts its own attempts, so the worst case is their sum."""
    return sum(rule.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS) for rule in state.get("Retry", []))


def state_events(state: dict[str, Any]) -> int:
    """History events of one visit to ``state`` without retries.

    A Lambda Task: TaskStateEntered, LambdaFunctionScheduled, -Started, -Succeeded, TaskStateExited. A
    Map: MapStateEntered, MapRunStarted, its end, MapStateExited. Other states: Entered and Exited (Fail:
    Entered only).
    """
    kind = state["Type"]
    if kind == "Task":
        return 5
    if kind == "Map":
        return 4
    return 1 if kind == "Fail" else 2


def retry_events(state: dict[str, Any]) -> int:
    """Events of ``state``'s whole retry budget: a Lambda Task's retry adds Scheduled, Started and Failed
    (or TimedOut), a Map's a MapRun's start and end."""
    per_retry = {"Task": 3, "Map": 2}.get(state["Type"], 0)
    return per_retry * _retries(state)


def _following(state: dict[str, Any]) -> list[str]:
    names = [state["Next"]] if "Next" in state else []
    names += [choice["Next"] for choice in state.get("Choices", [])]
    return names + ([state["Default"]] if "Default" in state else [])


def _caught(state: dict[str, Any]) -> list[str]:
    return [catch["Next"] for catch in state.get("Catch", [])]


def _reach(states: dict[str, Any], name: str, wait: str | None, path: tuple[str, ...],
           memo: dict[tuple[str, str | None], tuple[float, float]]) -> tuple[float, float]:
    """Most events from entering ``name`` until ``wait`` is entered again (``-inf`` if it cannot be), and
    until another Wait is entered or the run ends."""
    if (name, wait) in memo:
        return memo[name, wait]
    if name in path:
        loop = " -> ".join((*path[path.index(name):], name))
        raise ConfigurationError(f"the state machine loops without a Wait ({loop}); its history has no bound")
    state = states[name]
    following = _following(state)
    back, out = -math.inf, 0.0 if not following else -math.inf
    for successor in following:
        if successor == wait:
            back = max(back, 0.0)
        elif states[successor]["Type"] == "Wait":
            out = max(out, 0.0)
        else:
            successor_back, successor_out = _reach(states, successor, wait, (*path, name), memo)
            back, out = max(back, successor_back), max(out, successor_out)
    memo[name, wait] = own = (state_events(state) + back, state_events(state) + out)
    return own


def wait_visits(states: dict[str, Any], max_training_seconds: float, traffic_stages: int,
                max_bake_waits: int) -> dict[str, tuple[int, int]]:
    """How often each Wait's loop can be entered in one run, and how often the Wait itself.

    The training poll loops until ``MaxTrainingSeconds``; AnalyseAB's bake ``MaxBakeWaits`` times per
    traffic stage; an endpoint poll (a Task with a ``change`` parameter) until ``MAX_ENDPOINT_CHANGE_SECONDS``
    or ``MAX_ENDPOINT_CHANGE_POLLS`` from the change's first request, once per change: per traffic stage
    for ``traffic``, once for the others. A Wait of none of these kinds has no known bound and is refused.
    """
    visits = {}
    for name, state in states.items():
        if state["Type"] != "Wait":
            continue
        seconds = max(float(state.get("Seconds", 1)), 1.0)
        polled = states[state["Next"]]
        change = polled.get("Parameters", {}).get("change")
        if state["Next"] == "PollTraining":
            visits[name] = 1, math.ceil(max_training_seconds / seconds) + 1
        elif state["Next"] == "AnalyseAB":
            visits[name] = traffic_stages, traffic_stages * max_bake_waits
        elif change:
            changes = traffic_stages if change == "traffic" else 1
            polls = min(math.ceil(MAX_ENDPOINT_CHANGE_SECONDS / seconds), MAX_ENDPOINT_CHANGE_POLLS) + 1
            visits[name] = changes, changes * polls
        else:
            raise ConfigurationError(f"the Wait {name} loops with no known bound; the history check cannot "
                                     "count it")
    return visits


@functools.lru_cache(maxsize=4)
def check_history(definition: str, max_training_seconds: float, traffic_stages: int,
                  max_bake_waits: int) -> int:
    """The most history events a run can write; raise ConfigurationError above 90% of 25,000.

    Example
    -------
    >>> asl = {"StartAt": "StartTraining", "States": {
    ...     "StartTraining": {"Type": "Task", "Resource": "arn", "Next": "WaitForTraining"},
    ...     "WaitForTraining": {"Type": "Wait", "Seconds": 60, "Next": "PollTraining"},
    ...     "PollTraining": {"Type": "Task", "Resource": "arn", "Next": "TrainingFinished"},
    ...     "TrainingFinished": {"Type": "Choice", "Default": "WaitForTraining",
    ...                          "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "Done"}]},
    ...     "Done": {"Type": "Succeed"}}}
    >>> check_history(json.dumps(asl), 3600, 3, 24)  # 2 + 5 + 61 polls x (2 + 5 + 2) + (5 + 2 + 2)
    565
    >>> check_history(json.dumps(asl), 200_000, 3, 24)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: a run can write up to 30031 history events (WaitForTraining 3335 x 9), ...
    """
    machine = json.loads(definition)
    states = machine["States"]
    memo: dict[tuple[str, str | None], tuple[float, float]] = {}
    loops = {}
    for name, (entries, visits) in wait_visits(states, max_training_seconds, traffic_stages,
                                               max_bake_waits).items():
        back, out = _reach(states, states[name]["Next"], name, (name,), memo)
        loops[name] = visits, state_events(states[name]) + max(back, 0), entries * out
    failure = max((_reach(states, name, None, (), memo)[1] for state in states.values() for name in _caught(state)
                   if states[name]["Type"] != "Wait"), default=0)
    retries = sum(retry_events(state) for state in states.values())
    loop_events = sum(visits * per_visit + exits for visits, per_visit, exits in loops.values())
    total = int(EXECUTION_EVENTS + _reach(states, machine["StartAt"], None, (), memo)[1] + loop_events + failure
                + retries)
    if total > SAFE_SHARE * HISTORY_LIMIT:
        largest = sorted(loops, key=lambda name: loops[name][0] * loops[name][1], reverse=True)[:3]
        shares = ", ".join(f"{name} {loops[name][0]} x {loops[name][1]:g}" for name in largest)
        raise ConfigurationError(
            f"a run can write up to {total} history events ({shares}), more than {SAFE_SHARE:.0%} of Step "
            f"Functions' {HISTORY_LIMIT:,}-event limit: raise PollSeconds, or lower MaxTrainingSeconds, "
            "MaxBakeWaits or the number of TrafficStages")
    return total
