"""Settings for the whole test session."""

from __future__ import annotations

import os

import pytest

from driftloop.local.process import BLAS_THREADS, tuned_process

# Before numpy loads OpenBLAS (the env var is read once, at load): the tests run two workers on a 2-core
# machine, where BLAS's own threads only compete with the other worker.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(BLAS_THREADS))
_session_tuning = tuned_process()


def pytest_configure(config: pytest.Config) -> None:
    """The local runtime's process settings (:mod:`driftloop.local.process`) for every test, not only while a
    runtime runs: the tests keep many objects alive for a moment (frames, Arrow tables, moto's state), which
    CPython's default young generation of 700 promotes into full collections of a heap of a million objects."""
    _session_tuning.__enter__()


def pytest_unconfigure(config: pytest.Config) -> None:
    _session_tuning.__exit__(None, None, None)
