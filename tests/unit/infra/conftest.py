"""The template, raw and translated by aws-sam-translator offline (no AWS account, no network)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "template.yaml"


def load_script(name: str, relative_path: str) -> ModuleType:
    """Import a script that is not in a package (scripts/, layers/)."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _NoManagedPolicies:
    """The default loader asks IAM for managed policy ARNs; the checks need none of them."""

    def load(self) -> dict[str, str]:
        return {}


def _with_s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    # The translator accepts only s3:// locations; what the code is does not matter to these checks.
    local_properties = {"CodeUri", "ContentUri", "DefinitionUri"}
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in local_properties & properties.keys():
            properties[key] = f"s3://driftloop-build/{key}"
    return template


@pytest.fixture(scope="session")
def raw_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="session")
def translated(raw_template: dict[str, Any]) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(_with_s3_uris(copy.deepcopy(raw_template)), {}, _NoManagedPolicies())


@pytest.fixture(scope="session")
def resources(translated: dict[str, Any]) -> dict[str, Any]:
    return translated["Resources"]
