"""Everything a handler can import must be in the layer or in the Lambda runtime.

Follows the imports that run when a module loads (module and class level; not those deferred into
functions, such as scipy for fitting or driftloop.local for the local backend) from
functions/*/app.py through src/driftloop, the package the layer copies. A module outside that set
would fail only in AWS, at cold start.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from conftest import REPO

SOURCE = REPO / "src"
# Top-level import names of layers/driftloop/requirements.txt, plus what the python3.12 runtime ships.
LAYER_MODULES = {
    "aws_lambda_powertools", "pyarrow", "numpy", "pydantic", "pydantic_core",
    "annotated_types", "typing_extensions", "typing_inspection", "jmespath", "scipy", "aws_xray_sdk", "wrapt",
}  # fmt: skip
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "urllib3"}


def _module_file(module: str) -> Path | None:
    base = SOURCE.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _load_time_nodes(nodes: list[ast.stmt]) -> list[ast.AST]:
    """Statements executed on import: everything but function bodies and ``if TYPE_CHECKING:``."""
    executed: list[ast.AST] = []
    for node in nodes:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            executed.extend(_load_time_nodes(node.orelse))
            continue
        executed.append(node)
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, [])
            if field == "handlers":
                children = [statement for handler in children for statement in handler.body]
            executed.extend(_load_time_nodes(children))
    return executed


def _imports(path: Path, module: str) -> set[str]:
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _load_time_nodes(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _closure() -> tuple[set[str], set[str]]:
    """(driftloop modules reached, other top-level modules imported) from every handler."""
    pending = []
    for handler in sorted(REPO.glob("functions/*/app.py")):
        pending.extend(_imports(handler, "app"))
    reached: set[str] = set()
    external: set[str] = set()
    while pending:
        name = pending.pop()
        top = name.split(".")[0]
        if top != "driftloop":
            external.add(top)
            continue
        path = _module_file(name)
        if path is None or name in reached:
            continue  # an attribute imported from a module, not a module
        reached.add(name)
        parents = [".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1)]
        pending.extend(parents)
        pending.extend(_imports(path, name))
    return reached, external


def test_handlers_import_only_layer_and_runtime_modules():
    reached, external = _closure()
    assert "driftloop" in reached
    unavailable = external - LAYER_MODULES - RUNTIME_MODULES - set(sys.stdlib_module_names)
    assert not unavailable, f"handlers reach modules the layer lacks: {sorted(unavailable)}"


def test_handlers_never_reach_the_local_runtime():
    reached, external = _closure()
    assert not {name for name in reached if name.startswith("driftloop.local")}
    assert "moto" not in external


def test_layer_modules_match_the_requirements():
    requirements = (REPO / "layers/driftloop/requirements.txt").read_text()
    pinned = {
        re.split(r"[\[=<>]", line)[0].strip().lower().replace("-", "_")
        for line in requirements.splitlines()
        if line.strip() and not line.startswith("#")
    }
    import_names = {"python_dateutil": "dateutil"}
    assert {import_names.get(name, name) for name in pinned} == LAYER_MODULES
