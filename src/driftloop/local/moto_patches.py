"""Every change driftloop's local runtime makes to moto's internals, in one place, for moto 5.x.

``patched_moto`` installs them for the life of a :class:`~driftloop.local.runtime.LocalAWS` and restores
moto afterwards:

- Lambda invocations reach the :class:`~driftloop.local.dispatcher.Dispatcher` (moto's Docker-free
  backend would only echo the event);
- each AWS API call is atomic, as in AWS: moto's request handling runs under one lock (a Lambda Invoke
  excepted, whose handler makes calls of its own), so a conditional write cannot interleave with another
  call the way moto's unsynchronised backends would otherwise allow;
- StartExecution no longer deep-copies running executions (their thread locks cannot be copied);
- ``States.ALL`` does not catch ``States.DataLimitExceeded``, as in AWS.

``check_moto_internals`` fails with one clear message naming what moved when a moto upgrade changes the
internals patched here.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

from driftloop.errors import ConfigurationError
from driftloop.local.dispatcher import Dispatcher

_AWS_CALL_LOCK = threading.RLock()
_LAMBDA_INVOKE_PATH = re.compile(r"/functions/[^/]+/invocations")
_NOT_MATCHED_BY_STATES_ALL = frozenset({"States.DataLimitExceeded"})
PATCHED_INTERNALS = (
    (LambdaSimpleBackend, "invoke"),
    (BotocoreStubber, "process_request"),
    (ErrorEqualsDecl, "_eval_body"),
    (ErrorEqualsDecl, "_STATE_ALL_ERROR"),
)


def check_moto_internals() -> None:
    """Raise ``ConfigurationError`` naming every moto internal the local runtime relies on that is gone."""
    missing = [f"{owner.__module__}.{owner.__name__}.{name}" for owner, name in PATCHED_INTERNALS
               if not hasattr(owner, name)]
    if missing:
        raise ConfigurationError(
            "this moto version changed internals the local runtime patches (driftloop/local/moto_patches.py): "
            + ", ".join(missing))


def _error_equals_as_in_aws(self: ErrorEqualsDecl, env: Any) -> None:
    """moto's ``States.ALL`` matches every error; AWS's does not match ``States.DataLimitExceeded``, which a
    Catcher must name."""
    if (getattr(env.stack[-1], "error_name", None) in _NOT_MATCHED_BY_STATES_ALL
            and ErrorEqualsDecl._STATE_ALL_ERROR in self.error_names):
        env.stack.pop()
        env.stack.append(False)
        return
    _MOTO_ERROR_EQUALS(self, env)


_MOTO_ERROR_EQUALS = ErrorEqualsDecl._eval_body


def _atomic_aws_calls(process_request: Callable[..., Any]) -> Callable[..., Any]:
    """moto's request handler, one call at a time (a Lambda Invoke excepted: its handler calls AWS itself
    and runs concurrently with other handlers)."""

    def process(stubber: Any, request: Any) -> Any:
        if _LAMBDA_INVOKE_PATH.search(request.url.split("?", 1)[0]):
            return process_request(stubber, request)
        with _AWS_CALL_LOCK:
            return process_request(stubber, request)

    return process


def _clone_without_executions(machine: StateMachine, memo: dict[int, Any]) -> StateMachine:
    """moto 5.2.1 deep-copies the state machine, running executions (thread locks) included, on every
    StartExecution, which fails from the second execution on; the clone needs only the definition."""
    executions, machine.executions = machine.executions, []
    try:
        return copy._reconstruct(machine, memo, *machine.__reduce_ex__(4))  # type: ignore[attr-defined]
    finally:
        machine.executions = executions


@contextmanager
def patched_moto(dispatcher: Dispatcher) -> Iterator[None]:
    """moto with driftloop's changes, for the duration of the block."""
    check_moto_internals()
    original_invoke = LambdaSimpleBackend.invoke
    original_process_request = BotocoreStubber.process_request

    def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
               response_headers: dict[str, str]) -> bytes:
        return dispatcher.invoke(function_name, body, response_headers)

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    BotocoreStubber.process_request = _atomic_aws_calls(original_process_request)  # type: ignore[method-assign]
    StateMachine.__deepcopy__ = _clone_without_executions  # type: ignore[attr-defined]
    ErrorEqualsDecl._eval_body = _error_equals_as_in_aws  # type: ignore[method-assign]
    try:
        yield
    finally:
        LambdaSimpleBackend.invoke = original_invoke  # type: ignore[method-assign]
        BotocoreStubber.process_request = original_process_request  # type: ignore[method-assign]
        if "__deepcopy__" in vars(StateMachine):
            del StateMachine.__deepcopy__
        ErrorEqualsDecl._eval_body = _MOTO_ERROR_EQUALS  # type: ignore[method-assign]
