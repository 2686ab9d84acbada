"""Every Example in the package's docstrings runs, so the documentation cannot drift from the code.

Modules are found by their source containing a ``>>>`` prompt, so a new example is collected without
being listed here; the statistical modules listed in ``MUST_HAVE_EXAMPLES`` fail if they lose theirs.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import driftloop

PACKAGE_ROOT = Path(driftloop.__file__).parent

MUST_HAVE_EXAMPLES = (
    "driftloop.admission",
    "driftloop.decision.cost",
    "driftloop.decision.policy",
    "driftloop.decision.signals",
    "driftloop.drift.concept",
    "driftloop.drift.policy",
    "driftloop.drift.special",
    "driftloop.drift.verdict",
    "driftloop.evaluation.offline",
    "driftloop.traffic.judgement",
    "driftloop.traffic.sequential",
    "driftloop.traffic.stages",
    "driftloop.traffic.stratified",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_with_examples() -> list[str]:
    return sorted(
        _module_name(path) for path in PACKAGE_ROOT.rglob("*.py") if ">>>" in path.read_text(encoding="utf-8")
    )


def run_examples(module_name: str) -> tuple[int, doctest.TestResults]:
    """How many examples the module has, and how they fared."""
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, module_name)
    for test in tests:
        runner.run(test)
    return sum(len(test.examples) for test in tests), runner.summarize(verbose=False)


@pytest.mark.parametrize("module_name", sorted(set(modules_with_examples()) | set(MUST_HAVE_EXAMPLES)))
def test_docstring_examples_run(module_name: str) -> None:
    examples, results = run_examples(module_name)
    assert examples > 0, f"{module_name} has no docstring Example"
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {module_name} fail (see above)"


def test_a_failing_example_is_reported(tmp_path, monkeypatch) -> None:
    (tmp_path / "wrong_example.py").write_text('def one():\n    """\n    >>> one()\n    2\n    """\n    return 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    examples, results = run_examples("wrong_example")
    assert (examples, results.failed) == (1, 1)
