"""Check a template parameter's value as CloudFormation does before it creates a stack.

CloudFormation refuses a value that breaks the parameter's own definition: ``Type`` ``Number`` (a
number), ``AllowedValues``, ``AllowedPattern`` (matching the whole value), ``MinLength``/``MaxLength``
and ``MinValue``/``MaxValue``; for a ``CommaDelimitedList`` each item is checked. ``driftloop
--parameter`` values are checked this way, so a value that would fail ``sam deploy`` fails locally too,
with one line naming the rule. (local.toml, the local profile, may shorten durations below the
template's minimums, e.g. PollSeconds = 1: only AllowedValues bind it.) template.yaml has no ``Rules``
section; these checks are all CloudFormation would apply to it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftloop.errors import ConfigurationError
from driftloop.local.template import load_yaml


def _number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"parameter {name}={value} must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigurationError(f"parameter {name}={value} must be a finite number")
    return number


def check_parameter(name: str, spec: dict[str, Any], value: str | list[str]) -> None:
    """Raise ``ConfigurationError`` when ``value`` breaks the definition ``spec`` of parameter ``name``.

    Example
    -------
    >>> check_parameter("PsiThreshold", {"Type": "Number", "MinValue": 0}, "0.2")
    >>> check_parameter("PsiThreshold", {"Type": "Number", "MinValue": 0}, "-5")
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: parameter PsiThreshold=-5 is below its MinValue 0
    """
    items = value if isinstance(value, list) else [value]
    for item in items:
        text = str(item)
        shown = f"{name}={text}"
        if "AllowedValues" in spec and text not in [str(allowed) for allowed in spec["AllowedValues"]]:
            raise ConfigurationError(f"parameter {shown} is not one of {[str(v) for v in spec['AllowedValues']]}")
        if "AllowedPattern" in spec and re.fullmatch(spec["AllowedPattern"], text) is None:
            raise ConfigurationError(f"parameter {shown} does not match its AllowedPattern {spec['AllowedPattern']}")
        if "MinLength" in spec and len(text) < int(spec["MinLength"]):
            raise ConfigurationError(f"parameter {shown} is shorter than its MinLength {spec['MinLength']}")
        if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
            raise ConfigurationError(f"parameter {shown} is longer than its MaxLength {spec['MaxLength']}")
        if spec.get("Type") == "Number":
            number = _number(name, text)
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise ConfigurationError(f"parameter {shown} is below its MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise ConfigurationError(f"parameter {shown} is above its MaxValue {spec['MaxValue']}")


def check_overrides(template_path: Path, overrides: Mapping[str, str]) -> None:
    """Raise ``ConfigurationError`` for an override the template does not declare or whose value it refuses."""
    template = load_yaml(template_path)
    declared = template.get("Parameters", {})
    for name in sorted(set(overrides) - set(declared)):
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"did you mean {close[0]}?" if close else f"see the Parameters of {template_path}"
        raise ConfigurationError(f"unknown parameter {name}: {hint}")
    if template.get("Rules"):
        raise ConfigurationError(f"{template_path.name} has Rules, which driftloop cannot check locally yet")
    for name, value in overrides.items():
        spec = declared[name]
        items = [part.strip() for part in value.split(",")] if spec.get("Type") == "CommaDelimitedList" else value
        check_parameter(name, spec, items)


def parameter_overrides(template_path: Path, assignments: list[str] | None) -> dict[str, str]:
    """``--parameter NAME=VALUE`` assignments as a mapping, checked by :func:`check_overrides`."""
    overrides = dict(assignment.split("=", 1) for assignment in assignments or [])
    check_overrides(template_path, overrides)
    return overrides
