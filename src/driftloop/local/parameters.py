"""Check a template parameter's value as CloudFormation does before it creates a stack.

CloudFormation refuses a value that breaks the parameter's own definition: ``Type`` ``Number`` (a
number), ``AllowedValues``, ``AllowedPattern`` (matching the whole value), ``MinLength``/``MaxLength``
and ``MinValue``/``MaxValue``; for a ``CommaDelimitedList`` each item is checked. ``driftloop
--parameter`` values are checked this way, so a value that would fail ``sam deploy`` fails locally too,
with one line naming the rule. (local.toml, the local profile, may shorten durations below the
template's minimums, e.g. PollSeconds = 1: only AllowedValues bind it.) The template's ``Rules``, if it
has any, are asserted on the values a command runs with (defaults, local.toml, ``--parameter``), as
CloudFormation asserts them on a stack's values.
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


def _split(spec: dict[str, Any], value: str) -> str | list[str]:
    return [part.strip() for part in value.split(",")] if spec.get("Type") == "CommaDelimitedList" else value


def _evaluate(expression: Any, values: Mapping[str, Any]) -> Any:
    """A rule function (``Ref``, ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Fn::Contains``,
    ``Fn::EachMemberEquals``, ``Fn::EachMemberIn``) or a literal."""
    if isinstance(expression, list):
        return [_evaluate(item, values) for item in expression]
    if not (isinstance(expression, dict) and len(expression) == 1):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    arguments = _evaluate(argument, values)
    if function == "Fn::Equals":
        return str(arguments[0]) == str(arguments[1])
    if function == "Fn::Not":
        return not arguments[0]
    if function == "Fn::And":
        return all(arguments)
    if function == "Fn::Or":
        return any(arguments)
    if function == "Fn::Contains":
        return str(arguments[1]) in [str(item) for item in arguments[0]]
    if function == "Fn::EachMemberEquals":
        return all(str(item) == str(arguments[1]) for item in arguments[0])
    if function == "Fn::EachMemberIn":
        return all(str(item) in [str(allowed) for allowed in arguments[1]] for item in arguments[0])
    raise ConfigurationError(f"template rule function {function} cannot be checked locally")


def check_rules(rules: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Raise ``ConfigurationError`` naming the first rule whose condition holds and one of whose assertions fails.

    Example
    -------
    >>> rules = {"CanaryNeedsAlarms": {
    ...     "RuleCondition": {"Fn::Equals": [{"Ref": "DeploymentMode"}, "canary"]},
    ...     "Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "RollbackAlarmNames"}, [""]]}]},
    ...                     "AssertDescription": "canary needs RollbackAlarmNames"}]}}
    >>> check_rules(rules, {"DeploymentMode": "ab", "RollbackAlarmNames": [""]})
    >>> check_rules(rules, {"DeploymentMode": "canary", "RollbackAlarmNames": [""]})
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: template rule CanaryNeedsAlarms: canary needs RollbackAlarmNames
    """
    for name, rule in rules.items():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], values):
            continue
        for assertion in rule.get("Assertions", []):
            if not _evaluate(assertion["Assert"], values):
                raise ConfigurationError(f"template rule {name}: {assertion.get('AssertDescription', 'not met')}")


def check_overrides(template_path: Path, overrides: Mapping[str, str],
                    profile: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigurationError`` for an override the template does not declare or whose value it refuses, or
    when the values (defaults, then ``profile``, then ``overrides``) break one of the template's Rules."""
    template = load_yaml(template_path)
    declared = template.get("Parameters", {})
    for name in sorted(set(overrides) - set(declared)):
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"did you mean {close[0]}?" if close else f"see the Parameters of {template_path}"
        raise ConfigurationError(f"unknown parameter {name}: {hint}")
    for name, value in overrides.items():
        check_parameter(name, declared[name], _split(declared[name], value))
    values = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    values.update({name: str(value) for name, value in {**(profile or {}), **overrides}.items() if name in declared})
    check_rules(template.get("Rules", {}), {name: _split(declared[name], value) for name, value in values.items()})


def parameter_overrides(template_path: Path, assignments: list[str] | None) -> dict[str, str]:
    """``--parameter NAME=VALUE`` assignments as a mapping, checked by :func:`check_overrides` together with the
    local profile (local.toml beside the template), whose values must be ones the template accepts too."""
    from driftloop.local.runtime import Profile

    overrides = dict(assignment.split("=", 1) for assignment in assignments or [])
    check_overrides(template_path, {**Profile.load(template_path.parent).parameters, **overrides})
    return overrides
