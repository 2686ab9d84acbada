"""Logs, traces and run metrics of the step Lambdas: one handler shape for every step (Powertools).

Every line a step logs is JSON with the correlation keys ``run_id``, ``model`` and ``step`` (the state's
name), and the step ends with one ``step decided`` line carrying its decision (the result's top-level
scalar fields). The core logs through ``logging.getLogger(__name__)``: its ``driftloop.*`` loggers
propagate to the Powertools logger, which is named after the service ``driftloop``, so their lines are
the same JSON with the same keys.

Tracer patches botocore, so every AWS call is an X-Ray subsegment of the handler's segment, annotated
with the run and the model. Outside Lambda (the local runtime, tests) Powertools turns the tracer off by
itself (no ``LAMBDA_TASK_ROOT``); ``POWERTOOLS_TRACE_DISABLED=true`` turns it off anywhere.

Finalize publishes each run's outcome and training cost as Embedded Metric Format lines
(:func:`publish_run_metrics`), which the template's dashboard charts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from driftloop.drift.metrics import RUNS_METRIC, TRAINING_COST_METRIC, emit_metrics
from driftloop.pipeline.services import Services, services_from_env

# The template's POWERTOOLS_SERVICE_NAME, fixed here: the core's loggers are named driftloop.<module>.
SERVICE = "driftloop"
MAX_DECISION_TEXT = 300

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE, patch_modules=["botocore"])

Event = TypeVar("Event", bound=BaseModel)


def correlation_keys(event: BaseModel, model: str) -> dict[str, str]:
    """``model``, and the ``run_id`` and ``step`` the invocation names (an item of the scale-out map and an
    endpoint poll carry their own ``run_id``; Admit learns it from the trigger, so it has none yet).

    Example
    -------
    >>> from driftloop.pipeline.invocation import StepInvocation
    >>> event = StepInvocation.model_validate({
    ...     "state": {"admission": {"run": {"run_id": "upload-3f2a"}}},
    ...     "context": {"Execution": {"Id": "arn:x", "Name": "e-1", "StartTime": "2025-08-01T00:00:00Z"},
    ...                 "State": {"Name": "Evaluate", "EnteredTime": "2025-08-01T01:00:00Z"}}})
    >>> correlation_keys(event, "recommender")
    {'model': 'recommender', 'run_id': 'upload-3f2a', 'step': 'Evaluate'}
    """
    keys = {"model": model}
    state = getattr(event, "state", None)
    run = ((state or {}).get("admission") or {}).get("run") if isinstance(state, dict) else None
    run_id = (run or {}).get("run_id") or getattr(event, "run_id", None)
    if run_id:
        keys["run_id"] = str(run_id)
    context = getattr(event, "context", None)
    step = getattr(getattr(context, "state", None), "name", None)
    if step:
        keys["step"] = str(step)
    return keys


def decision_summary(result: Any) -> dict[str, Any]:
    """The result's top-level scalars (texts cut to ``MAX_DECISION_TEXT``): the decision, without the
    evidence documents the run record keeps in full.

    Example
    -------
    >>> summary = decision_summary({"action": "promote", "stage_index": 2, "evidence": {"p": 0.01},
    ...                             "reason": "x" * 400})
    >>> summary["action"], summary["stage_index"], "evidence" in summary, len(summary["reason"])
    ('promote', 2, False, 303)
    """
    if not isinstance(result, dict):
        return {"result": type(result).__name__}
    summary: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, str):
            summary[key] = value if len(value) <= MAX_DECISION_TEXT else f"{value[:MAX_DECISION_TEXT]}..."
        elif isinstance(value, bool | int | float) or value is None:
            summary[key] = value
    return summary


def step_handler(step: Callable[[Event, Services], dict[str, Any]], model: type[Event],
                 services: Callable[[], Services] = services_from_env) -> Callable[[dict, LambdaContext], dict]:
    """The Lambda handler of ``step``: validates the event as ``model`` (with pydantic alone: Powertools'
    parser utility would load every AWS event model it knows, about 0.05 s of each cold start), correlates
    the logs and the trace with the run and the model, runs the step and logs its decision (or its error,
    then re-raises it for the state machine's Retry and Catch)."""

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        event = model.model_validate(raw_event)
        built = services()
        keys = correlation_keys(event, built.settings.model_name)
        logger.thread_safe_append_keys(**keys)
        for name, value in keys.items():
            tracer.put_annotation(key=name, value=value)
        try:
            result = step(event, built)
            admitted = (result.get("run") or {}).get("run_id") if isinstance(result, dict) else None
            if admitted and "run_id" not in keys:
                logger.thread_safe_append_keys(run_id=str(admitted))  # Admit: the run it has just named
            logger.info("step decided", extra={"decision": decision_summary(result)})
            return result
        except Exception as error:
            logger.error("step failed", extra={"error": type(error).__name__, "cause": str(error)[:1000]})
            raise
        finally:
            logger.thread_safe_clear_keys()

    return handler


def training_cost(record: dict[str, Any]) -> float | None:
    """USD the run's training job cost (its completed job's estimate), None when it trained nothing.

    Example
    -------
    >>> training_cost({"evidence": {"training": {"cost": {"cost_usd": 0.0731}}}})
    0.0731
    >>> training_cost({"evidence": {"drift": {}}}) is None
    True
    """
    cost = (((record.get("evidence") or {}).get("training") or {}).get("cost") or {}).get("cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
        return None
    return float(cost)


def publish_run_metrics(model: str, record: dict[str, Any]) -> dict[str, float]:
    """``runs`` = 1 by model and outcome, and ``training_cost_usd`` by model when the run trained, as EMF
    on stdout (CloudWatch Logs turns them into metrics: no PutMetricData call, no permission). Returns
    what was published."""
    emit_metrics({RUNS_METRIC: (MetricUnit.Count, 1)}, {"model": model, "outcome": str(record.get("outcome"))})
    published = {RUNS_METRIC: 1.0}
    cost = training_cost(record)
    if cost is not None:
        emit_metrics({TRAINING_COST_METRIC: (MetricUnit.NoUnit, cost)}, {"model": model})
        published[TRAINING_COST_METRIC] = cost
    return published
