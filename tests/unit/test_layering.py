"""The local runtime is at the edge: deployed code never imports it, the runtime injects its adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import boto3
import pytest

from driftloop.config import Settings
from driftloop.local.adapters import LocalAdapters, LocalTrainer, SimulatedEndpoint
from driftloop.local.template import load_app
from driftloop.pipeline.services import build_services, call_environment, services_from_env

SOURCE = Path(__file__).resolve().parents[2] / "src" / "driftloop"
LOCAL_RUNTIME = "driftloop.local"


def local_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import of the local runtime in ``tree``, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [(node.lineno, name) for name in names
                  if name == LOCAL_RUNTIME or name.startswith(LOCAL_RUNTIME + ".")]
    return found


def test_nothing_outside_local_imports_the_local_runtime() -> None:
    offenders = [
        f"{path.relative_to(SOURCE.parent)}:{line} imports {module}"
        for path in sorted(SOURCE.rglob("*.py"))
        if (SOURCE / "local") not in path.parents
        for line, module in local_imports(ast.parse(path.read_text(), str(path)))
    ]
    assert not offenders, "deployed code must not know about the local runtime:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source", [
    "import driftloop.local.adapters",
    "from driftloop.local.adapters import SimulatedEndpoint",
    "from driftloop import local",
    "def build():\n    from driftloop.local import runtime\n",
])
def test_the_scan_finds_every_form_of_import(source: str) -> None:
    assert local_imports(ast.parse(source))


def test_the_scan_ignores_look_alikes() -> None:
    assert not local_imports(ast.parse('"""see driftloop.local.adapters"""\nimport driftloop.localisation\n'))


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return Settings.from_env(load_app(SOURCE.parents[1] / "template.yaml").environment)


def test_deployed_services_drive_sagemaker(settings: Settings) -> None:
    built = build_services(settings)
    assert type(built.trainer).__name__ == "SageMakerTrainer"
    assert type(built.endpoint).__name__ == "SageMakerEndpoint"


def test_the_runtime_injects_its_adapters_for_one_call_only(settings: Settings, tmp_path: Path) -> None:
    environment = load_app(SOURCE.parents[1] / "template.yaml").environment
    with call_environment(environment, LocalAdapters(tmp_path, boto3.session.Session())):
        local = services_from_env()
        assert isinstance(local.trainer, LocalTrainer)
        assert isinstance(local.endpoint, SimulatedEndpoint)
        assert services_from_env() is local  # warm: one Services per environment and adapters
    with call_environment(environment):
        assert type(services_from_env().endpoint).__name__ == "SageMakerEndpoint"
