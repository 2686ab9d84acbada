"""Every step logs JSON lines that carry run_id, model and step, its decision, and the core's lines too."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from driftloop.drift.metrics import (
    NAMESPACE,
    RUN_DIMENSIONS,
    RUNS_METRIC,
    TRAINING_COST_DIMENSIONS,
    TRAINING_COST_METRIC,
)
from driftloop.observability import SERVICE, logger, publish_run_metrics, step_handler, tracer
from driftloop.pipeline.invocation import StepInvocation

CORE = logging.getLogger("driftloop.pipeline.example")


def invocation(state: dict[str, Any], step: str = "AnalyseAB") -> dict[str, Any]:
    return {"state": state, "context": {
        "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:driftloop-retrain:e-1", "Name": "e-1",
                      "StartTime": "2025-08-01T00:00:00Z"},
        "State": {"Name": step, "EnteredTime": "2025-08-01T01:00:00Z", "RetryCount": 0}}}


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "driftloop-AnalyseABFunction", 512, "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:driftloop-AnalyseABFunction"


def services() -> Any:
    return SimpleNamespace(settings=SimpleNamespace(model_name="recommender"))


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The JSON lines the Powertools handler writes (to a buffer instead of stdout)."""
    buffer = io.StringIO()
    for handler in logging.getLogger(SERVICE).handlers:
        monkeypatch.setattr(handler, "stream", buffer)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]
    return read


def test_a_step_logs_its_decision_with_the_correlation_keys_and_the_core_logs_with_them(lines):
    def analyse(event: StepInvocation, built: Any) -> dict[str, Any]:
        CORE.info("looked at the counts", extra={"served": 1200})
        return {"action": "promote", "stage_index": 2, "evidence": {"p_value": 0.001}}

    handler = step_handler(analyse, StepInvocation, services)
    result = handler(invocation({"admission": {"run": {"run_id": "upload-3f2a"}}}), Context())
    assert result["action"] == "promote"
    core, decided = lines()[-2:]
    for line in (core, decided):
        assert (line["run_id"], line["model"], line["step"]) == ("upload-3f2a", "recommender", "AnalyseAB")
        assert line["service"] == SERVICE
    assert core["message"] == "looked at the counts" and core["served"] == 1200
    assert decided["message"] == "step decided"
    assert decided["decision"] == {"action": "promote", "stage_index": 2}


def test_admit_is_correlated_with_the_run_it_names(lines):
    handler = step_handler(lambda event, built: {"admitted": True, "run": {"run_id": "manual-9c1d"}},
                           StepInvocation, services)
    handler(invocation({}, step="Admit"), Context())
    decided = lines()[-1]
    assert (decided["run_id"], decided["decision"]) == ("manual-9c1d", {"admitted": True})


def test_a_failing_step_logs_its_error_re_raises_and_leaves_no_keys_behind(lines):
    def broken(event: StepInvocation, built: Any) -> dict[str, Any]:
        raise RuntimeError("endpoint is Failed")

    with pytest.raises(RuntimeError):
        step_handler(broken, StepInvocation, services)(invocation({"admission": {"run": {"run_id": "r-1"}}}),
                                                       Context())
    failed = lines()[-1]
    assert (failed["level"], failed["message"], failed["error"]) == ("ERROR", "step failed", "RuntimeError")
    assert failed["run_id"] == "r-1"
    CORE.info("after the step")
    assert "run_id" not in lines()[-1]


def test_tracing_is_off_outside_lambda():
    assert tracer.disabled
    assert logger.service == SERVICE


def test_finalize_publishes_the_run_outcome_and_training_cost_as_emf(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)  # as in Lambda: still no `service` dimension
    record = {"outcome": "promoted", "evidence": {"training": {"cost": {"cost_usd": 0.0731}}}}
    assert publish_run_metrics("recommender", record) == {RUNS_METRIC: 1.0, TRAINING_COST_METRIC: 0.0731}
    runs, cost = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    [runs_directive] = runs["_aws"]["CloudWatchMetrics"]
    assert (runs_directive["Namespace"], runs_directive["Dimensions"]) == (NAMESPACE, [list(RUN_DIMENSIONS)])
    assert (runs["model"], runs["outcome"], runs[RUNS_METRIC]) == ("recommender", "promoted", [1.0])
    [cost_directive] = cost["_aws"]["CloudWatchMetrics"]
    assert cost_directive["Dimensions"] == [list(TRAINING_COST_DIMENSIONS)] and cost[TRAINING_COST_METRIC] == [0.0731]


def test_a_run_that_trained_nothing_publishes_no_cost(capsys):
    assert publish_run_metrics("recommender", {"outcome": "no_drift", "evidence": {}}) == {RUNS_METRIC: 1.0}
    assert len(capsys.readouterr().out.splitlines()) == 1
