"""The dispatcher's time limits: counted from the handler's start, as Lambda counts a function's Timeout."""

from __future__ import annotations

import io
import json
from pathlib import Path

from driftloop.local.dispatcher import Dispatcher, FaultPlan, HandlerOutput
from driftloop.local.template import FunctionSpec, LocalApp
from driftloop.pipeline.services import SageMakerAdapters

SLOW_IMPORT = """
import time

time.sleep(0.8)  # an init (imports, clients) longer than the call's whole time limit


def handler(event, context):
    finish = time.monotonic() + event.get("seconds", 0)
    while time.monotonic() < finish:  # Python steps, where Lambda's stop (an async exception) lands
        time.sleep(0.01)
    return {"remaining_ms": context.get_remaining_time_in_millis()}
"""


def dispatcher(tmp_path: Path, time_limit: float) -> Dispatcher:
    (tmp_path / "app.py").write_text(SLOW_IMPORT)
    function = FunctionSpec("SlowFunction", "slow", "arn:aws:lambda:us-east-1:123456789012:function:slow",
                            tmp_path, "app.handler", {}, timeout=900)
    app = LocalApp(tmp_path, {}, {"SlowFunction": function}, [], "machine", "arn:machine", {}, {}, {}, {})
    return Dispatcher(app, {}, FaultPlan(time_limits={"SlowFunction": time_limit}),
                      HandlerOutput(io.StringIO(), tmp_path / "logs"), SageMakerAdapters())


def test_loading_the_handlers_module_does_not_count_toward_the_time_limit(tmp_path: Path) -> None:
    local = dispatcher(tmp_path, time_limit=0.5)
    headers: dict[str, str] = {}
    result = json.loads(local.invoke("slow", json.dumps({"seconds": 0}), headers))
    assert "x-amz-function-error" not in headers, result
    assert 0 < result["remaining_ms"] <= 500
    assert local.invocations[-1]["outcome"] == "ok"


def test_a_handler_that_outlives_its_time_limit_is_stopped_with_sandbox_timedout(tmp_path: Path) -> None:
    local = dispatcher(tmp_path, time_limit=0.3)
    headers: dict[str, str] = {}
    result = json.loads(local.invoke("slow", json.dumps({"seconds": 5}), headers))
    assert headers["x-amz-function-error"] == "Unhandled"
    assert result["errorType"] == "Sandbox.Timedout" and "timed out after 0.30 seconds" in result["errorMessage"]
    assert local.invocations[-1]["seconds"] < 4, "stopped at the limit, not when the handler finished"
