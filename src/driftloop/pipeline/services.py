"""The outside world a step talks to, built once per process from the Lambda environment."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import boto3

from driftloop.adapters.endpoint import Endpoint
from driftloop.adapters.ledger import Ledger
from driftloop.adapters.sagemaker_endpoint import SageMakerEndpoint
from driftloop.adapters.training import SageMakerTrainer, Trainer
from driftloop.config import Settings
from driftloop.errors import ConfigurationError


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


def build_services(settings: Settings, workspace: str | None = None) -> Services:
    session = boto3.session.Session()
    sagemaker = session.client("sagemaker")
    s3 = session.client("s3")
    if settings.runtime_backend == "local":
        if not workspace:
            raise ConfigurationError("RUNTIME_BACKEND=local needs DRIFTLOOP_WORKSPACE (set by the local runtime)")
        from driftloop.local.adapters import LocalTrainer, SimulatedEndpoint
        from driftloop.local.clock import now as local_now

        trainer: Trainer = LocalTrainer(workspace, s3)
        endpoint: Endpoint = SimulatedEndpoint(workspace, settings.endpoint_name, s3)
        clock: Callable[[], float] = local_now  # simulated time: waits jump ahead (driftloop.local.clock)
    else:
        trainer = SageMakerTrainer(sagemaker)
        endpoint = SageMakerEndpoint(sagemaker, settings.endpoint_name)
        clock = time.time
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
    )


@functools.lru_cache(maxsize=8)
def _cached(environment: frozenset[tuple[str, str]]) -> Services:
    env = dict(environment)
    return build_services(Settings.from_env(env), env.get("DRIFTLOOP_WORKSPACE"))


_CALL_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("driftloop_call_environment", default=None)


@contextmanager
def call_environment(environment: Mapping[str, str]) -> Iterator[None]:
    """Run a handler with ``environment`` as its Lambda environment in this thread only: the local runtime
    runs functions concurrently in one process, where ``os.environ`` is shared by all of them."""
    token = _CALL_ENVIRONMENT.set(environment)
    try:
        yield
    finally:
        _CALL_ENVIRONMENT.reset(token)


def services_from_env() -> Services:
    """One Services per distinct environment: warm Lambda invocations reuse the clients."""
    environment = _CALL_ENVIRONMENT.get()
    return _cached(frozenset((os.environ if environment is None else environment).items()))


def hold_lock(services: Services, run_id: str) -> None:
    """Renew this run's lease on the model's lock before a long or state-changing step; a run that lost
    its lock stops here (LockLostError is not retried) and takes the failure path instead of promoting."""
    settings = services.settings
    services.ledger.require_lock(settings.model_name, run_id, services.clock(), settings.lock_lease_minutes * 60)
