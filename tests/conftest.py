"""Settings for the whole test session."""

from __future__ import annotations

import gc

import pytest

from driftloop.local import YOUNG_GENERATION_THRESHOLD


def pytest_configure(config: pytest.Config) -> None:
    """The local runtime's collector setting for every test, not only while a runtime runs: the tests keep
    many objects alive for a moment (frames, Arrow tables, moto's state), which CPython's default of 700
    promotes into full collections of a heap of a million objects."""
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
