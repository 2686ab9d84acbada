"""A plain install of the project gives a ``driftloop`` that runs the demo and ``init`` from any folder.

The wheel is built from this checkout and installed into a fresh virtualenv. Its third-party packages come
from the test environment's site-packages through a path entry (nothing is downloaded); driftloop itself, its
template, state machine, handlers and local profile come only from the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Without the checkout on PYTHONPATH (as `PYTHONPATH=src pytest` would have it), pip and the commands see only
# what is installed.
CLEAN_ENVIRONMENT = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``driftloop`` script of a fresh virtualenv holding the wheel of this checkout."""
    root = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "wheel"),
                    str(REPO)], check=True, capture_output=True, text=True, env=CLEAN_ENVIRONMENT)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv/bin/python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((root / "wheel").glob("driftloop-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                    str(wheel)], check=True, capture_output=True, text=True, env=CLEAN_ENVIRONMENT)
    return root / "venv/bin/driftloop"


def _run(script: Path, folder: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *args], cwd=folder, env=CLEAN_ENVIRONMENT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_the_installed_driftloop_is_the_wheel_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    python = installed.parent / "python"
    found = subprocess.run([str(python), "-c", "import driftloop; print(driftloop.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=CLEAN_ENVIRONMENT).stdout
    assert str(REPO) not in found and "site-packages" in found


def test_init_from_an_empty_folder_writes_the_application(installed: Path, tmp_path: Path) -> None:
    result = _run(installed, tmp_path, "init", "app")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app/template.yaml").read_bytes() == (REPO / "template.yaml").read_bytes()
    assert (tmp_path / "app/src/driftloop/cli.py").is_file()


def test_the_demo_runs_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    # Month 1's upload takes the whole retrain path (drift, merge, training, the offline gate, the A/B test,
    # promotion): every handler loads from the wheel.
    result = _run(installed, tmp_path, "demo", "--months", "1")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (tmp_path / ".driftloop/demo/report/report.html").is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    assert "incoming/2025-02.parquet" in result.stdout
    assert "outcome: promoted" in result.stdout, result.stdout[-3000:]
