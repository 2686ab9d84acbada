"""The embedded AWS: moto in-process, provisioned from template.yaml, persisted in a workspace folder.

Lambda tasks of the state machine reach moto's Lambda service, whose Docker-free backend is routed
here to the handler the template names, in this process, with that function's environment. A
handler exception comes back as a function error with ``errorType``/``errorMessage``, so the state
machine's own Retry and Catch decide what happens next.

Time limits are the dispatcher's: a call longer than the sooner of the function's ``Timeout`` and its
Task's ``TimeoutSeconds`` is stopped mid-way and fails as AWS would fail it (``Sandbox.Timedout`` or
``States.Timeout``). moto fails a state that outgrows Step Functions' 256 KiB with
``States.DataLimitExceeded``; as in AWS (and unlike moto), ``States.ALL`` does not catch it.

Handlers run concurrently, as Lambda runs them: each in the thread of the execution that called it,
with its function's environment passed to it alone (``call_environment``), never by rewriting
``os.environ``. Each AWS API call is atomic, as it is in AWS: moto's request handling runs under one
lock (a Lambda Invoke excepted, whose handler makes calls of its own), so a conditional write cannot
interleave with another call the way moto's unsynchronised backends would otherwise allow.
"""

from __future__ import annotations

import copy
import ctypes
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import threading
import time
import tomllib
import traceback
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

from driftloop.errors import ConfigurationError, InjectedFault, TransientError
from driftloop.local.adapters import UPDATE_SECONDS_VARIABLE
from driftloop.local.customers import LiveTraffic
from driftloop.local.template import ACCOUNT_ID, REGION, FunctionSpec, LocalApp, load_app
from driftloop.pipeline.services import call_environment

LOCAL_PROFILE = "local.toml"
_AWS_CALL_LOCK = threading.RLock()
_LAMBDA_INVOKE_PATH = re.compile(r"/functions/[^/]+/invocations")
logging.getLogger("moto").setLevel(logging.CRITICAL)
_FAULT_ERRORS: dict[str, type[Exception]] = {"TransientError": TransientError, "InjectedFault": InjectedFault}
_NOT_MATCHED_BY_STATES_ALL = frozenset({"States.DataLimitExceeded"})


@dataclass(frozen=True)
class Profile:
    """Local values for the template's parameters, and settings of the local world."""

    parameters: dict[str, Any]
    requests_per_second: float = 800.0
    requests_per_month: int = 2000
    endpoint_update_seconds: float = 0.0

    @classmethod
    def load(cls, project_dir: Path, overrides: dict[str, Any] | None = None) -> Profile:
        path = project_dir / LOCAL_PROFILE
        document = tomllib.loads(path.read_text()) if path.exists() else {}
        parameters = {**document.get("parameters", {}), **(overrides or {})}
        world = document.get("world", {})
        return cls(parameters={k: str(v) for k, v in parameters.items()},
                   requests_per_second=float(world.get("requests_per_second", cls.requests_per_second)),
                   requests_per_month=int(world.get("requests_per_month", cls.requests_per_month)),
                   endpoint_update_seconds=float(world.get("endpoint_update_seconds", cls.endpoint_update_seconds)))


@dataclass
class FaultPlan:
    """Errors to raise instead of running a function: ``{logical id: [[error type, times], ...]}``,
    consumed in order; ``times`` -1 repeats forever and the error type ``"ok"`` lets calls through.

    ``delays`` (seconds, per logical id) make every call of a function that much slower. A delay that
    reaches the call's time limit is not slept: the call fails at once with the timeout error it would
    end with, and its handler does not run (it was cut off before finishing anything).

    ``time_limits`` (seconds, per logical id) shorten a function's time limit: its handler runs and is
    stopped mid-way when the limit is reached, keeping what it wrote so far (a Lambda timeout mid-merge).
    """

    remaining: dict[str, list[list[Any]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    time_limits: dict[str, float] = field(default_factory=dict)

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


class _HandlerOutput(io.TextIOBase):
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


def _state_name(event: Any) -> str | None:
    context = event.get("context") if isinstance(event, dict) else None
    return ((context or {}).get("State") or {}).get("Name") if isinstance(context, dict) else None


class Dispatcher:
    """Runs the template's handlers in-process for moto's Lambda backend."""

    def __init__(self, app: LocalApp, runtime_environment: dict[str, str], faults: FaultPlan,
                 output: _HandlerOutput) -> None:
        self.app = app
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
        with call_environment(self._environment(function)):
            self.output.local.function = function.logical_id
            began = time.time()
            try:
                delay = self.faults.delays.get(function.logical_id, 0.0)
                if delay >= limit:
                    raise _CallTimedOut(timeout_error, limit)
                if delay:
                    time.sleep(delay)
                injected = self.faults.take(function.logical_id)
                if injected:
                    raise _FAULT_ERRORS.get(injected, InjectedFault)(
                        f"fault injected into {function.logical_id} by the local fault plan")
                handler = getattr(self._module(function), function.handler.rpartition(".")[2])
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


def _atomic_aws_calls(process_request: Callable[..., Any]) -> Callable[..., Any]:
    """moto's request handler, one call at a time (a Lambda Invoke excepted: its handler calls AWS itself
    and runs concurrently with other handlers)."""

    def process(stubber: Any, request: Any) -> Any:
        if _LAMBDA_INVOKE_PATH.search(request.url.split("?", 1)[0]):
            return process_request(stubber, request)
        with _AWS_CALL_LOCK:
            return process_request(stubber, request)

    return process


def _function_error(response_headers: dict[str, str], error_type: str, error: Exception) -> bytes:
    response_headers["x-amz-function-error"] = "Unhandled"
    return json.dumps({
        "errorType": error_type,
        "errorMessage": str(error)[:4000],
        "stackTrace": traceback.format_exception(error)[-3:],
    }).encode()


def _zip_placeholder() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the project folder")
    return buffer.getvalue()


class Workspace:
    """S3 objects, DynamoDB items, one-time schedules and counters kept between commands under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "s3" / "objects"
        self.index_file = root / "s3" / "index.json"

    def load_index(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.index_file.read_text()) if self.index_file.exists() else {}

    def save_s3(self, s3: Any, buckets: list[str]) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        index: dict[str, dict[str, Any]] = {}
        for bucket in buckets:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for entry in page.get("Contents", []):
                    response = s3.get_object(Bucket=bucket, Key=entry["Key"])
                    body = response["Body"].read()
                    digest = hashlib.sha256(body).hexdigest()
                    blob = self.objects / digest
                    if not blob.exists():
                        blob.write_bytes(body)
                    index[f"{bucket}/{entry['Key']}"] = {
                        "bucket": bucket, "key": entry["Key"], "sha256": digest,
                        "content_type": response.get("ContentType", "binary/octet-stream"),
                        "last_modified": entry["LastModified"].isoformat(),
                    }
        self.index_file.parent.mkdir(parents=True, exist_ok=True)
        self.index_file.write_text(json.dumps(index, indent=1, sort_keys=True))

    def restore_s3(self, s3: Any) -> None:
        for entry in sorted(self.load_index().values(), key=lambda item: item["last_modified"]):
            s3.put_object(Bucket=entry["bucket"], Key=entry["key"], ContentType=entry["content_type"],
                          Body=(self.objects / entry["sha256"]).read_bytes())

    def table_file(self, table: str) -> Path:
        return self.root / "dynamodb" / f"{table}.json"

    def save_table(self, dynamodb: Any, table: str) -> None:
        items = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            items.extend(page.get("Items", []))
        path = self.table_file(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items, indent=1, sort_keys=True))

    def restore_table(self, dynamodb: Any, table: str) -> None:
        path = self.table_file(table)
        if path.exists():
            for item in json.loads(path.read_text()):
                dynamodb.put_item(TableName=table, Item=item)

    def save_schedules(self, schedules: list[dict[str, Any]]) -> None:
        fields = ("Name", "GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow",
                  "ActionAfterCompletion", "Target")
        kept = [{name: schedule[name] for name in fields if name in schedule} for schedule in schedules]
        (self.root / "schedules.json").write_text(json.dumps(kept, indent=1, sort_keys=True, default=str))

    def restore_schedules(self, scheduler: Any) -> None:
        path = self.root / "schedules.json"
        for schedule in json.loads(path.read_text()) if path.exists() else []:
            scheduler.create_schedule(**schedule)

    def counters(self) -> dict[str, int]:
        path = self.root / "deliveries.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def save_counters(self, counters: dict[str, int]) -> None:
        (self.root / "deliveries.json").write_text(json.dumps(counters, indent=1, sort_keys=True))


def _clone_without_executions(machine: StateMachine, memo: dict[int, Any]) -> StateMachine:
    """moto 5.2.1 deep-copies the state machine, running executions (thread locks) included, on every
    StartExecution, which fails from the second execution on; the clone needs only the definition."""
    executions, machine.executions = machine.executions, []
    try:
        return copy._reconstruct(machine, memo, *machine.__reduce_ex__(4))  # type: ignore[attr-defined]
    finally:
        machine.executions = executions


class LocalAWS:
    """A provisioned, running copy of the stack. Use as a context manager: state is saved on exit."""

    def __init__(self, project_dir: Path, workspace: Path, profile: Profile, faults: FaultPlan | None = None,
                 template: str = "template.yaml") -> None:
        self.project_dir = project_dir.resolve()
        self.workspace = Workspace(workspace.resolve())
        self.profile = profile
        self.faults = faults or FaultPlan()
        self.app = load_app(self.project_dir / template, profile.parameters)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True},
                                      "lambda": {"use_docker": False}})
        self._original_invoke: Callable[..., Any] | None = None
        self._original_process_request: Callable[..., Any] | None = None
        self._naming = threading.Lock()
        self._saved_environment: dict[str, str] = {}
        self.rule_queues: dict[str, str] = {}
        self.notification_queue = ""
        self.dispatcher: Dispatcher | None = None
        self.traffic: LiveTraffic | None = None
        self._console = sys.stdout

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalAWS:
        self._saved_environment = dict(os.environ)
        os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                           "DRIFTLOOP_ARTIFACT_CACHE": str(self.workspace.root / "cache")})
        self.workspace.root.mkdir(parents=True, exist_ok=True)
        self._mock.start()
        output = _HandlerOutput(self._console, self.workspace.root / "logs")
        sys.stdout = output
        self.dispatcher = Dispatcher(self.app, {"DRIFTLOOP_WORKSPACE": str(self.workspace.root),
                                                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                                                UPDATE_SECONDS_VARIABLE: str(self.profile.endpoint_update_seconds)},
                                     self.faults, output)
        dispatcher = self.dispatcher
        self._original_invoke = LambdaSimpleBackend.invoke

        def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
                   response_headers: dict[str, str]) -> bytes:
            return dispatcher.invoke(function_name, body, response_headers)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
        self._original_process_request = BotocoreStubber.process_request
        BotocoreStubber.process_request = _atomic_aws_calls(BotocoreStubber.process_request)  # type: ignore[method-assign]
        StateMachine.__deepcopy__ = _clone_without_executions  # type: ignore[attr-defined]
        ErrorEqualsDecl._eval_body = _error_equals_as_in_aws  # type: ignore[method-assign]
        try:
            self._provision()
        except Exception:
            self.__exit__(None, None, None)
            raise
        environment = self.app.environment
        if environment.get("RUNTIME_BACKEND") == "local" and self.profile.requests_per_second > 0:
            self.traffic = LiveTraffic(self.workspace.root, environment["ENDPOINT_NAME"],
                                       environment["DATA_BUCKET"], self.profile.requests_per_second)
            self.traffic.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.traffic is not None:
                self.traffic.stop()
            self.save()
        finally:
            sys.stdout = self._console
            if self._original_invoke is not None:
                LambdaSimpleBackend.invoke = self._original_invoke  # type: ignore[method-assign]
            if self._original_process_request is not None:
                BotocoreStubber.process_request = self._original_process_request  # type: ignore[method-assign]
            if "__deepcopy__" in vars(StateMachine):
                del StateMachine.__deepcopy__
            ErrorEqualsDecl._eval_body = _MOTO_ERROR_EQUALS  # type: ignore[method-assign]
            self._mock.stop()
            os.environ.clear()
            os.environ.update(self._saved_environment)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def save(self) -> None:
        self.workspace.save_s3(self.client("s3"), list(self.app.buckets.values()))
        for table in self.app.tables.values():
            self.workspace.save_table(self.client("dynamodb"), table["TableName"])
        self.workspace.save_schedules([schedule for _, schedule in self.one_time_schedules()])

    # -- provisioning -----------------------------------------------------------------------
    def _provision(self) -> None:
        s3, dynamodb, iam = self.client("s3"), self.client("dynamodb"), self.client("iam")
        for bucket in self.app.buckets.values():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for table in self.app.tables.values():
            dynamodb.create_table(
                TableName=table["TableName"],
                KeySchema=table["KeySchema"],
                AttributeDefinitions=table["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
            )
        self.workspace.restore_s3(s3)
        for table in self.app.tables.values():
            self.workspace.restore_table(dynamodb, table["TableName"])
        self.workspace.restore_schedules(self.client("scheduler"))  # one-time schedules not yet due
        data_bucket = self.app.environment["DATA_BUCKET"]
        s3.put_bucket_notification_configuration(
            Bucket=data_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
        role = iam.create_role(RoleName="driftloop-local-runtime", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambda_client = self.client("lambda")
        for function in self.app.functions.values():
            lambda_client.create_function(FunctionName=function.name, Runtime="python3.12", Role=role,
                                          Handler=function.handler, Code={"ZipFile": _zip_placeholder()},
                                          Timeout=function.timeout)
        sns, sqs, events = self.client("sns"), self.client("sqs"), self.client("events")
        for topic in self.app.topics.values():
            topic_arn = sns.create_topic(Name=topic)["TopicArn"]
            self.notification_queue = sqs.create_queue(QueueName=f"local-notifications-{topic}")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=self.notification_queue,
                                                 AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        for index, rule in enumerate(self.app.rules):
            if not (rule.targets_state_machine and rule.enabled and rule.pattern):
                continue
            queue_url = sqs.create_queue(QueueName=f"local-rule-{index}")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"]
            events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern), State="ENABLED")
            events.put_targets(Rule=rule.name, Targets=[{"Id": "local-runner", "Arn": queue_arn}])
            self.rule_queues[rule.name] = queue_url
        self.client("stepfunctions").create_state_machine(
            name=self.app.state_machine_name, definition=json.dumps(self.app.definition), roleArn=role,
            type="STANDARD")

    # -- events -----------------------------------------------------------------------------
    def drain_rule_queues(self) -> list[tuple[str, dict[str, Any]]]:
        """(rule name, delivered event) for every event a rule matched since the last drain."""
        sqs = self.client("sqs")
        delivered = []
        for rule, queue_url in self.rule_queues.items():
            while True:
                messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    event = json.loads(message["Body"])
                    event.setdefault("account", ACCOUNT_ID)  # EventBridge always sets it; moto's delivery omits it
                    delivered.append((rule, event))
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def one_time_schedules(self) -> list[tuple[float, dict[str, Any]]]:
        """(due epoch seconds, schedule) of every one-time ``at(...)`` schedule, soonest first."""
        scheduler, found = self.client("scheduler"), []
        for summary in scheduler.list_schedules().get("Schedules", []):
            schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=summary.get("GroupName", "default"))
            expression = schedule["ScheduleExpression"]
            if expression.startswith("at(") and expression.endswith(")"):
                due = datetime.fromisoformat(expression[3:-1]).replace(tzinfo=UTC).timestamp()
                found.append((due, schedule))
        return sorted(found, key=lambda entry: entry[0])

    def fire_due_schedules(self) -> int:
        """What EventBridge Scheduler does at a one-time schedule's time: send its target event to the
        bus, then delete the schedule (``ActionAfterCompletion: DELETE``). Returns how many fired."""
        fired = 0
        for due, schedule in self.one_time_schedules():
            if due > time.time():
                break
            target = schedule["Target"]
            parameters = target.get("EventBridgeParameters", {})
            self.client("events").put_events(Entries=[{
                "Source": parameters["Source"], "DetailType": parameters["DetailType"],
                "Detail": target.get("Input", "{}"), "EventBusName": target["Arn"]}])
            self.client("scheduler").delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])
            fired += 1
        return fired

    def drain_notifications(self) -> list[dict[str, Any]]:
        sqs, received = self.client("sqs"), []
        while self.notification_queue:
            messages = sqs.receive_message(QueueUrl=self.notification_queue, MaxNumberOfMessages=10).get(
                "Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(message["Body"])
                received.append({"subject": body.get("Subject"), "message": body.get("Message")})
                sqs.delete_message(QueueUrl=self.notification_queue, ReceiptHandle=message["ReceiptHandle"])
        if received:
            with open(self.workspace.root / "notifications.jsonl", "a", encoding="utf-8") as log:
                for notification in received:
                    log.write(json.dumps(notification) + "\n")
        return received

    def execution_name(self, event: dict[str, Any]) -> str:
        """Derived from the event and how often this workspace has seen it delivered."""
        digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:16]
        with self._naming:
            counters = self.workspace.counters()
            counters[digest] = counters.get(digest, 0) + 1
            self.workspace.save_counters(counters)
        return f"evt-{digest}-{counters[digest]}"

    def start_execution(self, event: dict[str, Any]) -> str:
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.app.state_machine_arn, name=self.execution_name(event),
            input=json.dumps(event))["executionArn"]


def find_project_dir(start: Path | None = None) -> Path:
    """The folder holding template.yaml: the current one or a parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").exists() and (folder / "statemachines").is_dir():
            return folder
    raise ConfigurationError(f"no template.yaml found in {here} or its parents; run driftloop from the project")

