"""Handlers that only talk to AWS must start without numpy, pyarrow and scipy.

Those libraries are about a third of a cold start's import (docs/deploy.md, "Cold start"). A step that
reads no data (Admit, the polls, StartTraining, UpdateWeights, Rollback, Finalize, TearDown) must not load
them through a shared module; the steps that compare or merge data import what they use when they load.
Each handler is imported in a fresh interpreter, in the environment Lambda gives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

HEAVY = ("numpy", "pyarrow", "scipy")
AWS_ONLY = ("admit", "finalize", "poll_endpoint", "poll_training", "rollback", "start_training", "teardown",
            "update_weights")
READS_DATA = ("analyse_ab", "combine_merge", "drift", "evaluate", "merge", "merge_part", "promote")
PROBE = f"import json, sys, app; print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"


def _loaded(handler: str) -> list[str]:
    folder = REPO / "functions" / handler
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join([str(folder), str(REPO / "src")]),
                   "LAMBDA_TASK_ROOT": str(folder), "AWS_LAMBDA_FUNCTION_NAME": handler,
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    completed = subprocess.run([sys.executable, "-c", PROBE], env=environment, cwd=folder, capture_output=True,
                               text=True, check=False, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_every_handler_is_classified():
    assert sorted(AWS_ONLY + READS_DATA) == sorted(path.parent.name for path in REPO.glob("functions/*/app.py"))


@pytest.mark.parametrize("handler", AWS_ONLY)
def test_a_step_that_reads_no_data_loads_no_data_library(handler):
    assert _loaded(handler) == []


def test_the_probe_sees_a_data_library_where_one_is_loaded():
    assert "pyarrow" in _loaded("merge")
