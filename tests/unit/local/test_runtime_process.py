"""The local runtime raises the collector's young-generation threshold while it runs, and gives the
process back its own thresholds when it stops."""

from __future__ import annotations

import gc
from pathlib import Path

from driftloop.local import YOUNG_GENERATION_THRESHOLD
from driftloop.local.runtime import LocalAWS, Profile

PROJECT = Path(__file__).resolve().parents[3]


def test_the_runtime_sets_the_young_generation_and_restores_the_callers_thresholds(tmp_path: Path) -> None:
    callers = gc.get_threshold()
    gc.set_threshold(1234, 7, 9)
    try:
        with LocalAWS(PROJECT, tmp_path / "workspace", Profile.load(PROJECT)):
            assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 7, 9)
        assert gc.get_threshold() == (1234, 7, 9)
    finally:
        gc.set_threshold(*callers)
