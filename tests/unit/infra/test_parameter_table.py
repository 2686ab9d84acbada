"""docs/deploy.md's parameter table is generated from template.yaml (scripts/parameter_table.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_SPEC = importlib.util.spec_from_file_location("parameter_table", REPO / "scripts/parameter_table.py")
assert _SPEC is not None and _SPEC.loader is not None
parameter_table = importlib.util.module_from_spec(_SPEC)
sys.modules["parameter_table"] = parameter_table
_SPEC.loader.exec_module(parameter_table)


def test_the_deploy_guide_lists_every_parameter_as_the_template_defines_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = parameter_table.main(["--check"])
    assert code == 0, capsys.readouterr().out


def test_a_parameter_added_to_the_template_makes_the_table_stale(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    template = (REPO / "template.yaml").read_text()
    extra = "Parameters:\n  BrandNewKnob:\n    Type: Number\n    Default: 3\n    MinValue: 1\n    Description: New.\n"
    (tmp_path / "template.yaml").write_text(template.replace("Parameters:\n", extra, 1))
    doc = tmp_path / "deploy.md"
    doc.write_text((REPO / "docs/deploy.md").read_text())
    assert parameter_table.main(["--check", "--template", str(tmp_path / "template.yaml"), "--doc", str(doc)]) == 1
    assert "differs" in capsys.readouterr().out
    assert parameter_table.main(["--template", str(tmp_path / "template.yaml"), "--doc", str(doc)]) == 0
    assert "| BrandNewKnob | Number | 3 | 1.. | New. |" in doc.read_text()


def test_every_template_parameter_has_a_row() -> None:
    table = parameter_table.render(REPO / "template.yaml")
    names = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    from driftloop.local.template import load_yaml
    assert names == list(load_yaml(REPO / "template.yaml")["Parameters"])
