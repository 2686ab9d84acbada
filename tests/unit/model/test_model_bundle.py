from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from model_fixtures import clustered_interactions

from driftloop.model.bundle import build_source_bundle


def test_bundle_is_reproducible_and_has_the_container_layout() -> None:
    first, digest = build_source_bundle()
    second, again = build_source_bundle()
    assert first == second and digest == again and len(digest) == 64
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert {"train.py", "inference.py", "requirements.txt", "driftloop/model/train.py"} <= set(names)
    assert names == sorted(names)
    assert {member.mtime for member in members} == {315532800} and {member.uid for member in members} == {0}
    assert not any(name.endswith(("jobs.py", "bundle.py", "cli.py")) for name in names)


def extract(tmp_path: Path) -> Path:
    bundle, _ = build_source_bundle()
    code = tmp_path / "code"
    with tarfile.open(fileobj=io.BytesIO(bundle)) as archive:
        archive.extractall(code, filter="data")
    return code


def test_bundled_train_script_runs_alone_without_aws_libraries(tmp_path: Path) -> None:
    code = extract(tmp_path)
    train, model, output = tmp_path / "train", tmp_path / "model", tmp_path / "output"
    train.mkdir()
    pq.write_table(clustered_interactions(n_users=60, n_items=40, n_events=1500), train / "part.parquet")
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['train.py', '--algorithm', 'item_knn']\n"
        "try:\n"
        "    runpy.run_path('train.py', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    import driftloop\n"
        "    assert driftloop.__file__.startswith(sys.path[0]), driftloop.__file__\n"
        "    assert not {'boto3', 'botocore', 'aws_lambda_powertools'} & set(sys.modules)\n"
        "    raise\n"
    )
    environment = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(train),
        "SM_MODEL_DIR": str(model),
        "SM_OUTPUT_DATA_DIR": str(output),
    }
    environment.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(code)!r}); exec({probe!r})"],
        cwd=code,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads((model / "metrics.json").read_text())["algorithm"] == "item_knn"
    assert "ndcg_at_10=" in completed.stderr  # the MetricDefinitions regexes read these log lines


def container_python() -> str | None:
    """A working Python 3.10 interpreter (the scikit-learn 1.4-2 container's version), if any."""
    candidates = [shutil.which("python3.10"), *map(str, Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.startswith("Python 3.10"):
            return candidate
    return None


def test_bundled_code_compiles_on_the_container_python(tmp_path: Path) -> None:
    interpreter = container_python()
    if interpreter is None:
        pytest.skip("no Python 3.10 interpreter here to check the container's syntax")
    code = extract(tmp_path)
    sources = sorted(str(path) for path in code.rglob("*.py"))
    completed = subprocess.run([interpreter, "-m", "py_compile", *sources], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
