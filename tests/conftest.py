"""Settings for the whole test session."""

from __future__ import annotations

import gc
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
    """Also freeze what is alive now: after this hook, pytest's unraisable-exception plugin runs five full
    collections to find objects whose finalizer fails, each over the whole heap the session built (about 3 s
    of CPU per worker). Frozen objects are left out of them; each test's own garbage was collected while it
    ran, with its unraisable exceptions reported then."""
    _session_tuning.__exit__(None, None, None)
    gc.freeze()
