"""One lock for Lambda and the local virtualenv: layers/driftloop/requirements.txt.

The layer installs it; `make venv` installs with it as constraints. These tests fail when the two drift
apart: a package the layer pins at one version and the tests run at another."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
LOCK = REPO / "layers/driftloop/requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;#]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    return {_canonical(match.group(1)): match.group(2) for match in map(_PIN.match, lines) if match}


LOCKED = _pins(LOCK.read_text().splitlines())


def test_every_line_of_the_lock_is_an_exact_pin() -> None:
    lines = [line for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines and len(LOCKED) == len(lines), [line for line in lines if not _PIN.match(line)]


@pytest.mark.parametrize("package", sorted(LOCKED))
def test_the_local_virtualenv_runs_the_version_the_layer_pins(package: str) -> None:
    try:
        installed = version(package)
    except PackageNotFoundError:
        pytest.fail(f"{package} is in the layer's lock but not installed locally: run `make venv`")
    assert installed == LOCKED[package], (
        f"{package}: the layer pins {LOCKED[package]}, the local virtualenv has {installed}; "
        "reinstall with `make venv` (it installs with the lock as constraints)")


def test_pyproject_pins_its_runtime_dependencies_at_the_locked_versions() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = _pins(project["dependencies"])
    shared = {name: pin for name, pin in pinned.items() if name in LOCKED}
    assert shared, "pyproject.toml and the lock share no pinned package"
    assert shared == {name: LOCKED[name] for name in shared}
