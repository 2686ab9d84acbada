"""Runs the template's Lambda handlers in-process for moto's Lambda backend, as Lambda would run them.

A handler exception comes back as a function error with ``errorType``/``errorMessage``, so the state
machine's own Retry and Catch decide what happens next. Time limits are the dispatcher's: a call longer
than the sooner of the function's ``Timeout`` and its Task's ``TimeoutSeconds`` is stopped mid-way and
fails as AWS would fail it (``Sandbox.Timedout`` or ``States.Timeout``); both count from the handler's
start, after its module is loaded (Lambda's init, which the function's Timeout does not cover). Handlers
run concurrently, each in the thread of the execution that called it, with its function's environment
passed to it alone (``call_environment``, with the local adapters), never by rewriting ``os.environ``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from driftloop.errors import ConfigurationError, InjectedFault, TransientError
from driftloop.local.template import FunctionSpec, LocalApp
from driftloop.pipeline.services import Adapters, call_environment

_FAULT_ERRORS: dict[str, type[Exception]] = {"TransientError": TransientError, "InjectedFault": InjectedFault}


@dataclass
class FaultPlan:
    """Errors to raise instead of running a function: ``{logical id: [[error type, times], ...]}``,
    consumed in order; ``times`` -1 repeats forever and the error type ``"ok"`` lets calls through.

    ``delays`` (seconds, per logical id) make every call of a function that much slower. A delay that
    reaches the call's time limit is not slept: the call fails at once with the timeout error it would
    end with, and its handler does not run (it was cut off before finishing anything).

    ``time_limits`` (seconds, per logical id) shorten a function's time limit: its handler runs and is
    stopped mid-way when the limit is reached, keeping what it wrote so far (a Lambda timeout mid-merge).

    ``holds`` (per logical id) make a function's calls wait, before their handler runs, while the event is
    not set: a step kept mid-run (holding the model's lock, say) until whoever set the plan lets it go.
    """

    remaining: dict[str, list[list[Any]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    time_limits: dict[str, float] = field(default_factory=dict)
    holds: dict[str, threading.Event] = field(default_factory=dict)

    def take(self, logical_id: str) -> str | None:
        with self._lock:
            queue = self.remaining.get(logical_id) or []
            while queue and queue[0][1] == 0:
                queue.pop(0)
            if not queue:
                return None
            error, times = queue[0]
            if times > 0:
                queue[0][1] = times - 1
            return None if error == "ok" else error


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


class HandlerOutput(io.TextIOBase):
    """sys.stdout while the runtime is up: what a handler prints (Powertools logs and metrics) goes to
    ``<workspace>/logs/<function>.log`` as it would go to CloudWatch Logs; everything else passes through."""

    def __init__(self, console: Any, logs: Path) -> None:
        self.console, self.logs = console, logs
        self.local = threading.local()

    def write(self, text: str) -> int:
        function = getattr(self.local, "function", None)
        if function is None:
            return self.console.write(text)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{function}.log", "a", encoding="utf-8") as log:
            return log.write(text)

    def flush(self) -> None:
        self.console.flush()


class _CallTimedOut(Exception):
    def __init__(self, error_type: str, limit: float) -> None:
        super().__init__(f"Task timed out after {limit:.2f} seconds")
        self.error_type = error_type


class _SandboxStopped(BaseException):
    """Raised inside a handler at its deadline (a BaseException, so no handler's ``except Exception`` keeps it)."""


class _Watchdog:
    """Stops the calling thread's handler at the deadline, as Lambda stops a function at its Timeout: the
    exception is raised in that thread at its next Python instruction (a thread waiting in C, e.g. for its
    worker threads, gets it when the wait returns), so what the handler wrote so far stays written and
    nothing after it is."""

    def __init__(self, seconds: float) -> None:
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(max(seconds, 0.0), self._stop)
        self._timer.daemon = True

    def _stop(self) -> None:
        with self._lock:
            if not self._done:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread),
                                                           ctypes.py_object(_SandboxStopped))

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


def _state_name(event: Any) -> str | None:
    context = event.get("context") if isinstance(event, dict) else None
    return ((context or {}).get("State") or {}).get("Name") if isinstance(context, dict) else None


class Dispatcher:
    """Runs the template's handlers in-process for moto's Lambda backend, with ``adapters`` (the local
    trainer and the simulated endpoint) injected into their services."""

    def __init__(self, app: LocalApp, runtime_environment: dict[str, str], faults: FaultPlan,
                 output: HandlerOutput, adapters: Adapters) -> None:
        self.app = app
        self.adapters = adapters
        self.output = output
        self.runtime_environment = runtime_environment
        self.faults = faults
        self.invocations: list[dict[str, Any]] = []
        self._modules: dict[str, ModuleType] = {}
        self._loading = threading.Lock()
        # What every function shares (Powertools' settings among them) is in os.environ for the libraries
        # that read it there; a function's own variables reach only its calls. LocalAWS restores the
        # whole environment on exit.
        os.environ.update({**app.environment, **runtime_environment})

    def _environment(self, function: FunctionSpec) -> dict[str, str]:
        return {**function.environment, **self.runtime_environment, "AWS_LAMBDA_FUNCTION_NAME": function.name}

    def _module(self, function: FunctionSpec) -> ModuleType:
        with self._loading:
            return self._load(function)

    def _load(self, function: FunctionSpec) -> ModuleType:
        if function.logical_id not in self._modules:
            module_file, _, _ = function.handler.rpartition(".")
            path = function.code_dir / f"{module_file.replace('.', '/')}.py"
            name = f"driftloop_function_{function.logical_id}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigurationError(f"cannot load handler {function.handler} from {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            self._modules[function.logical_id] = module
        return self._modules[function.logical_id]

    def time_limit(self, function: FunctionSpec, event: Any) -> tuple[float, str]:
        """Seconds the call may take and the error it fails with after that: the function's Timeout
        (``Sandbox.Timedout``) or, when sooner, the calling Task's TimeoutSeconds (``States.Timeout``)."""
        task_seconds = self.app.definition.get("States", {}).get(_state_name(event), {}).get("TimeoutSeconds")
        if isinstance(task_seconds, int | float) and task_seconds < function.timeout:
            return float(task_seconds), "States.Timeout"
        return float(function.timeout), "Sandbox.Timedout"

    def invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        function = self.app.function_by_arn(function_name)
        event = json.loads(body) if body else {}
        started = time.time()
        record: dict[str, Any] = {"function": function.logical_id, "started": started}
        limit, timeout_error = self.time_limit(function, event)
        limit = min(limit, self.faults.time_limits.get(function.logical_id, limit))
        payload = b""
        stopped_waiting: TimeoutError | None = None
        with call_environment(self._environment(function), self.adapters):
            self.output.local.function = function.logical_id
            try:
                # Lambda's init (loading the handler's module) does not count toward the function's Timeout.
                handler = getattr(self._module(function), function.handler.rpartition(".")[2])
                began = time.time()
                delay = self.faults.delays.get(function.logical_id, 0.0)
                if delay >= limit:
                    raise _CallTimedOut(timeout_error, limit)
                if delay:
                    time.sleep(delay)
                if function.logical_id in self.faults.holds:
                    self.faults.holds[function.logical_id].wait()
                injected = self.faults.take(function.logical_id)
                if injected:
                    raise _FAULT_ERRORS.get(injected, InjectedFault)(
                        f"fault injected into {function.logical_id} by the local fault plan")
                context = LambdaContext(function.name, function.arn, deadline=began + limit,
                                        log_group_name=f"/aws/lambda/{function.name}")
                try:
                    with _Watchdog(began + limit - time.time()):
                        result = handler(event, context)
                except _SandboxStopped:
                    raise _CallTimedOut(timeout_error, limit) from None
                if time.time() - began > limit:
                    raise _CallTimedOut(timeout_error, limit)
                payload = json.dumps(result, default=str).encode()
                record["outcome"] = "ok"
            except _CallTimedOut as timed_out:
                record.update(outcome="timeout", error=timed_out.error_type, message=str(timed_out))
                if timed_out.error_type != "States.Timeout":
                    payload = _function_error(response_headers, timed_out.error_type, timed_out)
                else:
                    # The Task gave up, not the function: moto's Lambda task turns TimeoutError into the
                    # LambdaFunctionTimedOut event with States.Timeout, as Step Functions records it.
                    stopped_waiting = TimeoutError(str(timed_out))
            except Exception as error:  # noqa: BLE001 - every handler error becomes a Lambda function error
                error_type = type(error).__name__
                payload = _function_error(response_headers, error_type, error)
                record.update(outcome="error", error=error_type, message=str(error)[:500])
            finally:
                self.output.local.function = None
        record["finished"] = time.time()
        record["seconds"] = round(record["finished"] - started, 3)
        self.invocations.append(record)
        if stopped_waiting is not None:
            raise stopped_waiting
        return payload


def _function_error(response_headers: dict[str, str], error_type: str, error: Exception) -> bytes:
    response_headers["x-amz-function-error"] = "Unhandled"
    return json.dumps({
        "errorType": error_type,
        "errorMessage": str(error)[:4000],
        "stackTrace": traceback.format_exception(error)[-3:],
    }).encode()
