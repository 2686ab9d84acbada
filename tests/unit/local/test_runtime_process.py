"""The local runtime raises the collector's young-generation threshold, keeps BLAS to one thread and shares one
botocore data loader while it runs, and gives the process back its own settings when it stops."""

from __future__ import annotations

import gc
from pathlib import Path

import botocore.loaders
import botocore.session
import numpy  # noqa: F401  (loads the BLAS library the runtime limits)
from threadpoolctl import threadpool_info, threadpool_limits

from driftloop.local.process import BLAS_THREADS, YOUNG_GENERATION_THRESHOLD, tuned_process
from driftloop.local.runtime import LocalAWS, Profile

PROJECT = Path(__file__).resolve().parents[3]


def _blas_threads() -> set[int]:
    return {library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"}


def test_the_runtime_tunes_the_process_and_restores_the_callers_settings(tmp_path: Path) -> None:
    callers, callers_loader = gc.get_threshold(), botocore.session.create_loader
    gc.set_threshold(1234, 7, 9)
    botocore.session.create_loader = fresh_loader = lambda *args, **kwargs: callers_loader(*args, **kwargs)  # noqa: E731
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            assert _blas_threads() == {2}
            with LocalAWS(PROJECT, tmp_path / "workspace", Profile.load(PROJECT)):
                assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 7, 9)
                assert _blas_threads() == {BLAS_THREADS}
                assert botocore.session.Session().get_component("data_loader") is \
                    botocore.session.Session().get_component("data_loader")
            assert gc.get_threshold() == (1234, 7, 9)
            assert _blas_threads() == {2}
            assert botocore.session.create_loader is fresh_loader
    finally:
        gc.set_threshold(*callers)
        botocore.session.create_loader = callers_loader


def test_botocore_sessions_share_one_data_loader_inside_the_block_and_across_blocks() -> None:
    callers_loader = botocore.session.create_loader
    botocore.session.create_loader = botocore.loaders.create_loader  # botocore's own: a loader per session
    try:
        with tuned_process():
            first, second = botocore.session.Session(), botocore.session.Session()
            assert first.get_component("data_loader") is second.get_component("data_loader")
        assert botocore.session.Session().get_component("data_loader") is not first.get_component("data_loader")
        with tuned_process():
            later = botocore.session.Session()
            assert later.get_component("data_loader") is first.get_component("data_loader"), "and across blocks"
    finally:
        botocore.session.create_loader = callers_loader


def test_runtimes_share_their_clients_and_each_client_reaches_the_running_runtimes_own_state(tmp_path: Path) -> None:
    with LocalAWS(PROJECT, tmp_path / "first", Profile.load(PROJECT)) as first:
        s3 = first.client("s3")
        s3.create_bucket(Bucket="only-in-the-first-runtime")
    with LocalAWS(PROJECT, tmp_path / "second", Profile.load(PROJECT)) as second:
        assert second.client("s3") is s3
        buckets = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
        assert "only-in-the-first-runtime" not in buckets
        assert second.app.environment["DATA_BUCKET"] in buckets
