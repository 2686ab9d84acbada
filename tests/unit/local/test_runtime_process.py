"""The local runtime raises the collector's young-generation threshold and keeps BLAS to one thread while it
runs, and gives the process back its own settings when it stops."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy  # noqa: F401  (loads the BLAS library the runtime limits)
from threadpoolctl import threadpool_info, threadpool_limits

from driftloop.local.process import BLAS_THREADS, YOUNG_GENERATION_THRESHOLD
from driftloop.local.runtime import LocalAWS, Profile

PROJECT = Path(__file__).resolve().parents[3]


def _blas_threads() -> set[int]:
    return {library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"}


def test_the_runtime_tunes_the_process_and_restores_the_callers_settings(tmp_path: Path) -> None:
    callers = gc.get_threshold()
    gc.set_threshold(1234, 7, 9)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            assert _blas_threads() == {2}
            with LocalAWS(PROJECT, tmp_path / "workspace", Profile.load(PROJECT)):
                assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 7, 9)
                assert _blas_threads() == {BLAS_THREADS}
            assert gc.get_threshold() == (1234, 7, 9)
            assert _blas_threads() == {2}
    finally:
        gc.set_threshold(*callers)
