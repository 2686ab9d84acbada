"""The embedded AWS: moto in-process, provisioned from template.yaml, persisted in a workspace folder.

Lambda tasks of the state machine reach moto's Lambda service, whose Docker-free backend is routed to the
:class:`~driftloop.local.dispatcher.Dispatcher`, which runs the handler the template names in this
process with that function's environment. moto's internals that this needs changed are patched in
:mod:`driftloop.local.moto_patches`; what persists between commands is in
:class:`~driftloop.local.workspace.Workspace`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import threading
import tomllib
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto import mock_aws
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from driftloop.errors import ConfigurationError
from driftloop.local import clock as local_clock
from driftloop.local.adapters import UPDATE_SECONDS_VARIABLE, LocalAdapters
from driftloop.local.clock import VirtualClock
from driftloop.local.customers import LiveTraffic
from driftloop.local.dispatcher import Dispatcher, FaultPlan, HandlerOutput
from driftloop.local.moto_patches import patched_moto
from driftloop.local.moto_store import queue_holds_messages, schedules_exist, stored_objects
from driftloop.local.process import tuned_process
from driftloop.local.template import ACCOUNT_ID, REGION, load_app
from driftloop.local.workspace import Workspace

LOCAL_PROFILE = "local.toml"
logging.getLogger("moto").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Profile:
    """Local values for the template's parameters, and settings of the local world."""

    parameters: dict[str, Any]
    requests_per_hour: float = 2000.0
    requests_per_month: int = 2000
    endpoint_update_seconds: float = 0.0
    clock_start: str = "2025-01-01T00:00:00+00:00"

    @classmethod
    def load(cls, project_dir: Path, overrides: dict[str, Any] | None = None) -> Profile:
        path = project_dir / LOCAL_PROFILE
        document = tomllib.loads(path.read_text()) if path.exists() else {}
        parameters = {**document.get("parameters", {}), **(overrides or {})}
        world = document.get("world", {})
        return cls(parameters={k: str(v) for k, v in parameters.items()},
                   requests_per_hour=float(world.get("requests_per_hour", cls.requests_per_hour)),
                   requests_per_month=int(world.get("requests_per_month", cls.requests_per_month)),
                   endpoint_update_seconds=float(world.get("endpoint_update_seconds", cls.endpoint_update_seconds)),
                   clock_start=str(world.get("clock_start", cls.clock_start)))


def _zip_placeholder() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the project folder")
    return buffer.getvalue()


_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _shared_client(service: str) -> Any:
    """One boto3 client per service for every runtime of the process: they differ by nothing else here (one
    region, the runtime's credentials and checksum settings), hold none of moto's state and are thread-safe,
    and building one costs more than most calls to moto."""
    with _CLIENTS_LOCK:
        if service not in _CLIENTS:
            _CLIENTS[service] = boto3.client(
                service, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local",
                config=Config(request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"))
        return _CLIENTS[service]


class LocalAWS:
    """A provisioned, running copy of the stack. Use as a context manager: state is saved on exit."""

    def __init__(self, project_dir: Path, workspace: Path, profile: Profile, faults: FaultPlan | None = None,
                 template: str = "template.yaml") -> None:
        self.project_dir = project_dir.resolve()
        self.workspace = Workspace(workspace.resolve())
        self.profile = profile
        self.faults = faults or FaultPlan()
        self.adapters = LocalAdapters(self.workspace.root, self)  # what the dispatcher injects into the steps
        self.app = load_app(self.project_dir / template, profile.parameters)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True},
                                      "lambda": {"use_docker": False}})
        self._patches: Any = None
        self._naming = threading.Lock()
        self._saved_environment: dict[str, str] = {}
        self._tuning: Any = None
        self.rule_queues: dict[str, str] = {}
        self.notification_queue = ""
        self.dispatcher: Dispatcher | None = None
        self.traffic: LiveTraffic | None = None
        self.clock = VirtualClock(self.workspace.load_clock() or _epoch_seconds(profile.clock_start),
                                  running=self.running_executions)
        self._console = sys.stdout

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalAWS:
        self._saved_environment = dict(os.environ)
        os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                           "DRIFTLOOP_ARTIFACT_CACHE": str(self.workspace.layout.cache),
                           # Checksums only where an API requires them: botocore's aws-chunked CRC32 body
                           # encoding and moto's decoding of it run in pure Python over every byte put.
                           "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                           "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"})
        self._tuning = tuned_process()
        self._tuning.__enter__()
        self.workspace.root.mkdir(parents=True, exist_ok=True)
        self._mock.start()
        output = HandlerOutput(self._console, self.workspace.layout.logs)
        sys.stdout = output
        self.dispatcher = Dispatcher(self.app, {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                                                UPDATE_SECONDS_VARIABLE: str(self.profile.endpoint_update_seconds)},
                                     self.faults, output, self.adapters)
        local_clock.install(self.clock)
        self._patches = patched_moto(self.dispatcher, self.clock)
        self._patches.__enter__()
        try:
            self._provision()
        except Exception:
            self.__exit__(None, None, None)
            raise
        environment = self.app.environment
        if self.profile.requests_per_hour > 0:  # customers of the simulated endpoint the dispatcher injects
            self.traffic = LiveTraffic(self.workspace.root, environment["ENDPOINT_NAME"], environment["DATA_BUCKET"],
                                       self.client("s3"), self.profile.requests_per_hour, self.clock)
            self.traffic.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.traffic is not None:
                self.traffic.stop()
            self.save()
        finally:
            sys.stdout = self._console
            if self._patches is not None:
                self._patches.__exit__(None, None, None)
                self._patches = None
            self._mock.stop()
            local_clock.install(None)
            os.environ.clear()
            os.environ.update(self._saved_environment)
            if self._tuning is not None:
                self._tuning.__exit__(None, None, None)
                self._tuning = None

    def client(self, service: str) -> Any:
        """The service's client for the runtime's own calls and its steps' (see ``_shared_client``)."""
        return _shared_client(service)

    def save(self) -> None:
        self.workspace.save_s3(stored_objects(ACCOUNT_ID, self.app.buckets.values()))
        for table in self.app.tables.values():
            self.workspace.save_table(self.client("dynamodb"), table["TableName"])
        self.workspace.save_schedules([schedule for _, schedule in self.one_time_schedules()])
        self.workspace.save_clock(self.clock.now())

    def running_executions(self) -> int:
        """Executions of the state machine that have not ended (the clock jumps when all of them wait)."""
        machines = stepfunctions_parser_backends[ACCOUNT_ID][REGION].state_machines
        return sum(getattr(execution.exec_status, "value", "RUNNING") == "RUNNING"  # None: starting
                   for machine in machines for execution in machine.executions)

    def execution_running(self, execution_arn: str) -> bool:
        """Whether the execution has not ended, read from moto's record of it: DescribeExecution would
        serialise and parse the run's whole state at every poll of the runner."""
        execution = stepfunctions_parser_backends[ACCOUNT_ID][REGION].describe_execution(execution_arn)
        return getattr(execution.exec_status, "value", "RUNNING") == "RUNNING"  # None: starting

    def execution_history(self, execution_arn: str) -> list[dict[str, Any]]:
        """The execution's history events as GetExecutionHistory lists them, read from moto's record of them:
        the API call would serialise and parse the whole history again at every poll of the runner."""
        execution = stepfunctions_parser_backends[ACCOUNT_ID][REGION].describe_execution(execution_arn)
        return list(execution.to_history_output()["events"])

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
            while queue_holds_messages(ACCOUNT_ID, REGION, queue_url):
                messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    event = json.loads(message["Body"])
                    event.setdefault("account", ACCOUNT_ID)  # EventBridge always sets it; moto's delivery omits it
                    delivered.append((rule, event))
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def events_waiting(self) -> bool:
        """Whether a rule's queue holds an event for the runner (looked up in moto's memory, not by a call)."""
        return any(queue_holds_messages(ACCOUNT_ID, REGION, queue_url) for queue_url in self.rule_queues.values())

    def one_time_schedules(self) -> list[tuple[float, dict[str, Any]]]:
        """(due epoch seconds, schedule) of every one-time ``at(...)`` schedule, soonest first."""
        if not schedules_exist(ACCOUNT_ID, REGION):
            return []
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
            if due > self.clock.now():
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
        while self.notification_queue and queue_holds_messages(ACCOUNT_ID, REGION, self.notification_queue):
            messages = sqs.receive_message(QueueUrl=self.notification_queue, MaxNumberOfMessages=10).get(
                "Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(message["Body"])
                received.append({"subject": body.get("Subject"), "message": body.get("Message")})
                sqs.delete_message(QueueUrl=self.notification_queue, ReceiptHandle=message["ReceiptHandle"])
        if received:
            with open(self.workspace.layout.notifications_file, "a", encoding="utf-8") as log:
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


def _epoch_seconds(iso_time: str) -> float:
    try:
        moment = datetime.fromisoformat(iso_time)
    except ValueError:
        raise ConfigurationError(
            f"[world] clock_start of {LOCAL_PROFILE} is not an ISO 8601 time: {iso_time!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
