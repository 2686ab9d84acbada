"""The outside world a step talks to, built once per process from the Lambda environment.

Which trainer and endpoint the steps drive is injected (:class:`Adapters`): SageMaker's by default, as
deployed; the local runtime passes its own with :func:`call_environment`, so deployed code never knows
about it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import boto3

from driftloop.adapters.endpoint import Endpoint
from driftloop.adapters.ledger import Ledger
from driftloop.adapters.sagemaker_endpoint import DataCapture, SageMakerEndpoint
from driftloop.adapters.tags import stack_tags
from driftloop.adapters.training import SageMakerTrainer, Trainer
from driftloop.config import Settings
from driftloop.layout import capture_destination


@dataclass(frozen=True)
class Services:
    settings: Settings
    s3: Any
    sagemaker: Any
    sns: Any
    states: Any
    events: Any
    ledger: Ledger
    trainer: Trainer
    endpoint: Endpoint
    clock: Callable[[], float] = time.time
    scheduler: Any = None
    sleep: Callable[[float], None] = time.sleep


class AWSClients(Protocol):
    """Makes the AWS clients of a step's services (a ``boto3.session.Session`` does)."""

    def client(self, service_name: str) -> Any: ...


class Adapters(Protocol):
    """Builds the trainer and the endpoint a deployment's steps drive, from its settings and AWS clients, and
    tells the time they run on (``clock``: epoch seconds; ``sleep``: a wait inside a step).

    Must be hashable (a frozen dataclass): warm Services are cached by it.
    """

    def __call__(self, settings: Settings, s3: Any, sagemaker: Any) -> tuple[Trainer, Endpoint]: ...

    def session(self) -> AWSClients:
        """Where the AWS clients of one Services come from."""

    def clock(self) -> float: ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of the adapters' time inside a step (between retries of an AWS call)."""


@dataclass(frozen=True)
class SageMakerAdapters:
    """The deployed adapters: SageMaker training jobs and the SageMaker endpoint, on the wall clock."""

    def __call__(self, settings: Settings, s3: Any, sagemaker: Any) -> tuple[Trainer, Endpoint]:
        capture = DataCapture(capture_destination(settings.data_bucket), settings.data_capture_sampling_percent,
                              settings.data_capture_kms_key)
        tags = stack_tags(settings.stack_name)
        return SageMakerTrainer(sagemaker, tags), SageMakerEndpoint(sagemaker, settings.endpoint_name, capture, tags)

    def session(self) -> AWSClients:
        return boto3.session.Session()  # its own: a boto3 session is not thread-safe

    def clock(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


sagemaker_adapters = SageMakerAdapters()


def build_services(settings: Settings, adapters: Adapters = sagemaker_adapters) -> Services:
    session = adapters.session()
    sagemaker = session.client("sagemaker")
    s3 = session.client("s3")
    trainer, endpoint = adapters(settings, s3, sagemaker)
    clock = adapters.clock
    return Services(
        settings=settings,
        s3=s3,
        sagemaker=sagemaker,
        sns=session.client("sns"),
        states=session.client("stepfunctions"),
        events=session.client("events"),
        ledger=Ledger(session.client("dynamodb"), settings.ledger_table, clock),
        trainer=trainer,
        endpoint=endpoint,
        clock=clock,
        scheduler=session.client("scheduler"),
        sleep=adapters.sleep,
    )


@functools.lru_cache(maxsize=32)  # room for one per function of a stack when all of them share a process
def _cached(environment: frozenset[tuple[str, str]], adapters: Adapters) -> Services:
    return build_services(Settings.from_env(dict(environment)), adapters)


_CALL: ContextVar[tuple[Mapping[str, str], Adapters] | None] = ContextVar("driftloop_call", default=None)


@contextmanager
def call_environment(environment: Mapping[str, str], adapters: Adapters = sagemaker_adapters) -> Iterator[None]:
    """Run a handler with ``environment`` as its Lambda environment and ``adapters`` as its trainer and
    endpoint, in this thread only: the local runtime runs functions concurrently in one process, where
    ``os.environ`` is shared by all of them."""
    token = _CALL.set((environment, adapters))
    try:
        yield
    finally:
        _CALL.reset(token)


def services_from_env() -> Services:
    """One Services per distinct environment and adapters: warm Lambda invocations reuse the clients."""
    call = _CALL.get()
    environment, adapters = (os.environ, sagemaker_adapters) if call is None else call
    return _cached(frozenset(environment.items()), adapters)


def hold_lock(services: Services, run_id: str) -> None:
    """Renew this run's lease on the model's lock before a long or state-changing step; a run that lost
    its lock stops here (LockLostError is not retried) and takes the failure path instead of promoting."""
    settings = services.settings
    services.ledger.require_lock(settings.model_name, run_id, services.clock(), settings.lock_lease_minutes * 60)
