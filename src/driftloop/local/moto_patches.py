"""Every change driftloop's local runtime makes to moto's internals, in one place, for moto 5.x.

``patched_moto`` installs them for the life of a :class:`~driftloop.local.runtime.LocalAWS` and restores
moto afterwards:

- Lambda invocations reach the :class:`~driftloop.local.dispatcher.Dispatcher` (moto's Docker-free
  backend would only echo the event);
- each AWS API call is atomic, as in AWS: moto's request handling runs under one lock (a Lambda Invoke
  excepted, whose handler makes calls of its own), so a conditional write cannot interleave with another
  call the way moto's unsynchronised backends would otherwise allow;
- S3's URL table is read once, not re-imported twice at every S3 request (moto reloads it because
  environment variables may change it; the runtime's environment does not change while it runs);
- a state machine definition is parsed once per process: every execution used to parse the ASL again
  with ANTLR (about 0.1 s of CPU each); its evaluation components are still built afresh for each execution;
  and a definition CreateStateMachine has found valid is not built again only to be validated (every
  runtime creates the state machine);
- a Lambda Task reuses one Lambda client per region (moto builds a new boto3 client for every call);
- StartExecution no longer deep-copies running executions (their thread locks cannot be copied);
- ``States.ALL`` does not catch ``States.DataLimitExceeded``, as in AWS;
- GetExecutionHistory leaves out each event's input and output when asked to (``includeExecutionData``
  false), as AWS does; moto always sends them (a run's history is about 3 MB of them);
- time is the runtime's :class:`~driftloop.local.clock.VirtualClock`: a Wait state and a Retry's backoff
  sleep on it (it jumps ahead when every execution waits), and the timestamps moto writes where driftloop
  reads them (S3's LastModified and event times, EventBridge event times, execution start and stop,
  history events, ``$$.State.EnteredTime``, the scheduler's "now") are its time; a handler's call counts
  as work, during which the clock does not jump.

``check_moto_internals`` fails with one clear message naming what moved when a moto upgrade changes the
internals patched here.
"""

from __future__ import annotations

import copy
import datetime
import re
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import moto.events.models
import moto.s3.models
import moto.s3.notifications
import moto.scheduler.models
import moto.stepfunctions.models
import moto.stepfunctions.parser.asl.component.common.retry.retrier_decl as retrier_decl
import moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils as lambda_eval_utils
import moto.stepfunctions.parser.asl.component.state.state
import moto.stepfunctions.parser.backend.execution
import moto.stepfunctions.parser.models
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.responses import ActionResult
from moto.core.utils import unix_time
from moto.s3.models import S3Backend
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from driftloop.errors import ConfigurationError
from driftloop.local.clock import VirtualClock
from driftloop.local.dispatcher import Dispatcher

AWS_CALL_LOCK = threading.RLock()  # held by every AWS call but a Lambda Invoke, and by direct reads of moto's state
_LAMBDA_INVOKE_PATH = re.compile(r"/functions/[^/]+/invocations")
_NOT_MATCHED_BY_STATES_ALL = frozenset({"States.DataLimitExceeded"})
PATCHED_INTERNALS = (
    (LambdaSimpleBackend, "invoke"),
    (BotocoreStubber, "process_request"),
    (lambda_eval_utils, "boto_client_for"),
    (S3Backend, "_url_module"),
    (AmazonStateLanguageParser, "parse"),
    (StepFunctionsParserBackend, "_validate_definition"),
    (ErrorEqualsDecl, "_eval_body"),
    (ErrorEqualsDecl, "_STATE_ALL_ERROR"),
    (WaitFunction, "_wait_interval"),
    (StepFunctionResponse, "get_execution_history"),
    (retrier_decl, "time"),
    (EventManager, "_get_current_timestamp"),
    (moto.s3.models, "utcnow"),
    (moto.stepfunctions.models, "utcnow"),
    (moto.scheduler.models, "utcnow"),
    (moto.events.models, "unix_time"),
    (moto.s3.notifications, "unix_time"),
    (moto.stepfunctions.parser.models, "datetime"),
    (moto.stepfunctions.parser.backend.execution, "datetime"),
    (moto.stepfunctions.parser.asl.component.state.state, "datetime"),
)


def check_moto_internals() -> None:
    """Raise ``ConfigurationError`` naming every moto internal the local runtime relies on that is gone."""
    missing = [f"{getattr(owner, '__module__', None) or owner.__name__}.{owner.__name__}.{name}"
               if isinstance(owner, type) else f"{owner.__name__}.{name}"
               for owner, name in PATCHED_INTERNALS if not hasattr(owner, name)]
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
_EXECUTION_DATA = ("input", "output")


def _history_with_data_on_request(get_execution_history: Callable[..., Any]) -> Callable[..., Any]:
    """moto's GetExecutionHistory, without each event's input and output when ``includeExecutionData`` is
    false (moto's stored events are copied, never changed)."""

    def history(response: StepFunctionResponse) -> Any:
        result = get_execution_history(response)
        if response._get_param("includeExecutionData", True) is not False:
            return result
        return ActionResult({**result.result, "events": [_without_data(event) for event in result.result["events"]]})

    return history


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    return {key: {name: value for name, value in detail.items() if name not in _EXECUTION_DATA}
            if key.endswith("EventDetails") and isinstance(detail, dict) else detail
            for key, detail in event.items()}


def _atomic_aws_calls(process_request: Callable[..., Any]) -> Callable[..., Any]:
    """moto's request handler, one call at a time (a Lambda Invoke excepted: its handler calls AWS itself
    and runs concurrently with other handlers)."""

    def process(stubber: Any, request: Any) -> Any:
        if _LAMBDA_INVOKE_PATH.search(request.url.split("?", 1)[0]):
            return process_request(stubber, request)
        with AWS_CALL_LOCK:
            return process_request(stubber, request)

    return process


def _clone_without_executions(machine: StateMachine, memo: dict[int, Any]) -> StateMachine:
    """moto 5.2 (5.2.1 to 5.2.5) deep-copies the state machine, running executions (thread locks) included, on every
    StartExecution, which fails from the second execution on; the clone needs only the definition."""
    executions, machine.executions = machine.executions, []
    try:
        return copy._reconstruct(machine, memo, *machine.__reduce_ex__(4))  # type: ignore[attr-defined]
    finally:
        machine.executions = executions


def _reused_clients(boto_client_for: Callable[..., Any]) -> Callable[..., Any]:
    """moto's ``boto_client_for``, building each (region, service) client once: its clients differ only by
    those two (the state's credentials are not used), and boto3 clients are thread-safe."""
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        with lock:
            if (region, service) not in clients:
                clients[region, service] = boto_client_for(region, service, state_credentials)
            return clients[region, service]

    return client_for


# Kept for the life of the process, so every runtime (each test's, say) shares them: ASL definition -> its
# parse tree, and the definitions CreateStateMachine found valid.
_PARSE_TREES: dict[str, Any] = {}
_VALID_DEFINITIONS: set[str] = set()


def _parse_trees_once(parse: Callable[[str], tuple[Any, Any]]) -> staticmethod:
    """moto's ASL parser, keeping each definition's parse tree (read-only once built) and building the
    evaluation components from it for every caller, as moto's parser does after parsing. A definition
    that does not parse raises every time, as before."""

    def parse_once(definition: str) -> tuple[Any, Any]:
        tree = _PARSE_TREES.get(definition)
        if tree is None:
            program, _PARSE_TREES[definition] = parse(definition)
            return program, _PARSE_TREES[definition]
        return Preprocessor().visit(tree), tree

    return staticmethod(parse_once)


def _validated_once(validate: Callable[[str], None]) -> staticmethod:
    """moto's definition check, run once per valid definition (an invalid one is checked, and refused, every
    time)."""

    def validate_once(definition: str) -> None:
        if definition not in _VALID_DEFINITIONS:
            validate(definition)
            _VALID_DEFINITIONS.add(definition)

    return staticmethod(validate_once)


def _s3_urls_read_once() -> property:
    module = vars(S3Backend)["_url_module"].fget(None)  # the reload moto makes, once
    return property(lambda backend: module)


def _time_sources(clock: VirtualClock) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for every moto time source driftloop reads."""

    class VirtualDateTime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return datetime.datetime.fromtimestamp(clock.now(), tz)

    virtual_datetime_module = types.SimpleNamespace(**{**vars(datetime), "datetime": VirtualDateTime})

    def naive_utcnow() -> datetime.datetime:
        return datetime.datetime.fromtimestamp(clock.now(), datetime.UTC).replace(tzinfo=None)

    def virtual_unix_time(dt: datetime.datetime | None = None) -> float:
        return unix_time(dt) if dt is not None else clock.now()

    def wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        clock.sleep(wait_seconds, cancelled=lambda: not env.is_running())

    return [
        (WaitFunction, "_wait_interval", wait_interval),
        (retrier_decl, "time", types.SimpleNamespace(**{**vars(time), "sleep": clock.sleep})),  # Retry backoff
        (EventManager, "_get_current_timestamp", staticmethod(lambda: VirtualDateTime.now(datetime.UTC))),
        *[(module, "utcnow", naive_utcnow)
          for module in (moto.s3.models, moto.stepfunctions.models, moto.scheduler.models)],
        *[(module, "unix_time", virtual_unix_time) for module in (moto.events.models, moto.s3.notifications)],
        *[(module, "datetime", virtual_datetime_module)
          for module in (moto.stepfunctions.parser.models, moto.stepfunctions.parser.backend.execution,
                         moto.stepfunctions.parser.asl.component.state.state)],
    ]


@contextmanager
def _replaced(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    original = vars(owner)[name]
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def patched_moto(dispatcher: Dispatcher, clock: VirtualClock) -> Iterator[None]:
    """moto with driftloop's changes, for the duration of the block."""
    check_moto_internals()
    original_invoke = LambdaSimpleBackend.invoke
    original_process_request = BotocoreStubber.process_request

    def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
               response_headers: dict[str, str]) -> bytes:
        with clock.working():
            return dispatcher.invoke(function_name, body, response_headers)

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    BotocoreStubber.process_request = _atomic_aws_calls(original_process_request)  # type: ignore[method-assign]
    StateMachine.__deepcopy__ = _clone_without_executions  # type: ignore[attr-defined]
    ErrorEqualsDecl._eval_body = _error_equals_as_in_aws  # type: ignore[method-assign]
    try:
        with ExitStack() as stack:
            for owner, name, replacement in _time_sources(clock):
                stack.enter_context(_replaced(owner, name, replacement))
            stack.enter_context(_replaced(S3Backend, "_url_module", _s3_urls_read_once()))
            stack.enter_context(_replaced(AmazonStateLanguageParser, "parse",
                                          _parse_trees_once(AmazonStateLanguageParser.parse)))
            stack.enter_context(_replaced(StepFunctionsParserBackend, "_validate_definition",
                                          _validated_once(StepFunctionsParserBackend._validate_definition)))
            stack.enter_context(_replaced(StepFunctionResponse, "get_execution_history",
                                          _history_with_data_on_request(StepFunctionResponse.get_execution_history)))
            stack.enter_context(_replaced(lambda_eval_utils, "boto_client_for",
                                          _reused_clients(lambda_eval_utils.boto_client_for)))
            yield
    finally:
        LambdaSimpleBackend.invoke = original_invoke  # type: ignore[method-assign]
        BotocoreStubber.process_request = original_process_request  # type: ignore[method-assign]
        if "__deepcopy__" in vars(StateMachine):
            del StateMachine.__deepcopy__
        ErrorEqualsDecl._eval_body = _MOTO_ERROR_EQUALS  # type: ignore[method-assign]
