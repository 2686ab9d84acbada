"""The state machine against the step contracts and the step names against each other.

Every path of statemachines/retrain.asl.json (InputPath, OutputPath, ResultPath, ResultSelector,
Parameters, ItemReader, a Choice's Variable) must name fields the contracts of
``driftloop.pipeline.contracts`` declare, with the type its comparison needs; every Task must write what
the pipeline function its handler calls returns; and docs/architecture.md's "Steps" table must match the
ASL, the template and the handlers.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, create_model

from driftloop.pipeline.contracts import Drift, Evaluation, RunState
from driftloop.pipeline.scaleout import MergePartsItem

REPO = Path(__file__).resolve().parents[3]
ASL = REPO / "statemachines" / "retrain.asl.json"
ARCHITECTURE = REPO / "docs" / "architecture.md"
NUMERIC = ("NumericEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "NumericLessThan",
           "NumericLessThanEquals")


# ---------------------------------------------------------------- the ASL as Step Functions sees it
def render(text: str, substitutions: dict[str, Any]) -> dict[str, Any]:
    """The definition with each function ARN replaced by its function's logical id, other values by 1."""

    def value(match: re.Match[str]) -> str:
        substitution = substitutions[match.group(1)]
        if isinstance(substitution, dict) and "Fn::GetAtt" in substitution:
            return substitution["Fn::GetAtt"][0]
        return "1"

    return json.loads(re.sub(r"\$\{(\w+)\}", value, text))


@pytest.fixture(scope="module")
def asl_text() -> str:
    return ASL.read_text()


@pytest.fixture(scope="module")
def substitutions(raw_template: dict[str, Any]) -> dict[str, Any]:
    return raw_template["Resources"]["RetrainStateMachine"]["Properties"]["DefinitionSubstitutions"]


@pytest.fixture(scope="module")
def definition(asl_text: str, substitutions: dict[str, Any]) -> dict[str, Any]:
    return render(asl_text, substitutions)


def walk(states: dict[str, Any], item: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every state, nested ones too; ``item`` for a Map's processor, whose input is one map item."""
    for name, state in states.items():
        yield name, state, item
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from walk(processor["States"], item=True)


# ---------------------------------------------------------------- paths against the models
def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: ``X | None`` -> [X, None]."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _unwrap(arg)]
    return [annotation]


def _names(alternatives: list[Any]) -> str:
    return " | ".join(getattr(alt, "__name__", str(alt)) for alt in alternatives if alt is not type(None))


def resolve(model: type[BaseModel], path: str) -> tuple[list[Any] | None, str | None]:
    """The annotation alternatives ``path`` (``$.a.b``) ends at, or the reason it names no declared field."""
    current: list[Any] = [model]
    walked = "$"
    for segment in path.removeprefix("$").lstrip(".").split(".") if path != "$" else []:
        walked += f".{segment}"
        following: list[Any] = []
        for alternative in current:
            if isinstance(alternative, type) and issubclass(alternative, BaseModel):
                field = alternative.model_fields.get(segment)
                if field is not None:
                    following += _unwrap(field.annotation)
            elif typing.get_origin(alternative) is dict:
                following += _unwrap(typing.get_args(alternative)[1])
            elif alternative is Any:
                following.append(Any)
        if not following:
            return None, f"{walked} is not a field of {_names(current) or 'a plain value'}"
        current = following
    return current, None


def _accepts(alternatives: list[Any], rule: dict[str, Any]) -> str | None:
    """Why a Choice rule's comparison cannot hold for a field of this type (None when it can)."""
    if Any in alternatives:
        return None
    if "BooleanEquals" in rule and bool not in alternatives:
        return "BooleanEquals needs a bool field"
    if any(key in rule for key in NUMERIC) and not {int, float} & set(alternatives):
        return "a numeric comparison needs a number field"
    if "StringEquals" in rule:
        literals = [value for alt in alternatives if typing.get_origin(alt) is typing.Literal
                    for value in typing.get_args(alt)]
        if str not in alternatives and rule["StringEquals"] not in literals:
            return f"StringEquals {rule['StringEquals']!r} can never match (values {literals})"
    return None


def _rules(choice: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("And", "Or"):
        for rule in choice.get(key, []):
            yield from _rules(rule)
    if "Not" in choice:
        yield from _rules(choice["Not"])
    if "Variable" in choice:
        yield choice


def _path_values(value: Any) -> Iterator[str]:
    """The JSONPath values of a Parameters-like block (keys ending ``.$``), context paths aside."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.endswith(".$") and isinstance(inner, str) and not inner.startswith("$$"):
                yield inner
            else:
                yield from _path_values(inner)


def path_errors(definition: dict[str, Any], state_model: type[BaseModel] = RunState,
                item_model: type[BaseModel] = MergePartsItem,
                task_contracts: dict[str, type[BaseModel]] | None = None) -> list[str]:
    """Every path of the definition that the models do not declare, or declare with the wrong type."""
    errors: list[str] = []

    def check(state: str, what: str, path: str, model: type[BaseModel]) -> list[Any] | None:
        found, problem = resolve(model, path)
        if problem:
            errors.append(f"{state}.{what} {path}: {problem}")
        return found

    for name, state, item in walk(definition["States"]):
        model = item_model if item else state_model
        for key in ("InputPath", "OutputPath"):
            if isinstance(state.get(key), str):
                check(name, key, state[key], model)
        for block in ("Parameters", "ItemSelector"):
            for path in _path_values(state.get(block)):
                check(name, block, path, model)
        for path in _path_values((state.get("ItemReader") or {}).get("Parameters")):
            check(name, "ItemReader", path, model)
        contract = (task_contracts or {}).get(name)
        for path in _path_values(state.get("ResultSelector")):
            if contract is None:
                errors.append(f"{name}.ResultSelector {path}: no contract known for this Task's result")
            else:
                check(name, "ResultSelector", path, contract)
        if isinstance(state.get("ResultPath"), str):
            written = check(name, "ResultPath", state["ResultPath"], model)
            if written and contract is not None and contract not in written and Any not in written:
                errors.append(f"{name}.ResultPath {state['ResultPath']} holds {_names(written)}, "
                              f"but the Task returns {contract.__name__}")
            if written and state["Type"] == "Pass" and "Result" in state:
                problem = _accepts(written, {"StringEquals": state["Result"]})
                if problem:
                    errors.append(f"{name}.Result {state['Result']!r} at {state['ResultPath']}: {problem}")
        for catch in state.get("Catch", []):
            check(name, "Catch.ResultPath", catch["ResultPath"], model)
        for choice in state.get("Choices", []):
            for rule in _rules(choice):
                found = check(name, "Variable", rule["Variable"], model)
                problem = found and _accepts(found, rule)
                if problem:
                    errors.append(f"{name}.Variable {rule['Variable']}: {problem}")
    return errors


# ---------------------------------------------------------------- the "Steps" table
def steps_table() -> dict[str, dict[str, str]]:
    """docs/architecture.md's "Steps" table by ASL state."""
    section = ARCHITECTURE.read_text().split("\n## Steps\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0]]
    table = {}
    for cells in rows[1:]:
        row = dict(zip(header, (cell.strip() for cell in cells), strict=True))
        table[row["ASL state"].split(" (")[0]] = row
    return table


def handler_calls(folder: str) -> set[str]:
    """``module.function`` of every ``driftloop.pipeline`` function a handler refers to."""
    tree = ast.parse((REPO / folder / "app.py").read_text())
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "driftloop.pipeline" for alias in node.names}
    return {f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules}


def pipeline_function(dotted: str) -> Any:
    module, function = dotted.split(".")
    return getattr(importlib.import_module(f"driftloop.pipeline.{module}"), function)


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, str]]:
    return steps_table()


@pytest.fixture(scope="module")
def task_contracts(table: dict[str, dict[str, str]]) -> dict[str, type[BaseModel]]:
    return {state: pipeline_function(row["Pipeline function"]).contract for state, row in table.items()
            if hasattr(pipeline_function(row["Pipeline function"]), "contract")}


# ---------------------------------------------------------------- the tests
def test_the_definition_uses_jsonpath(definition):
    """The checks below read JSONPath fields; a JSONata definition would need other checks."""
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert all(state.get("QueryLanguage", "JSONPath") == "JSONPath" for _, state, _ in walk(definition["States"]))


def test_every_path_of_the_state_machine_names_a_field_of_the_contracts(definition, task_contracts):
    assert path_errors(definition, task_contracts=task_contracts) == []


def test_every_task_writes_what_its_function_returns(definition, task_contracts):
    tasks = {name for name, state, item in walk(definition["States"]) if state["Type"] == "Task" and not item}
    assert tasks <= set(task_contracts), f"Tasks whose function has no contract: {tasks - set(task_contracts)}"


def test_every_task_is_a_row_of_the_steps_table(definition, table):
    tasks = {name for name, state, _ in walk(definition["States"]) if state["Type"] == "Task"}
    assert tasks == set(table), "docs/architecture.md 'Steps' lists exactly the Task states"


def test_each_row_matches_the_asl_the_template_and_the_handler(definition, raw_template, table):
    states = {name: state for name, state, _ in walk(definition["States"])}
    functions = raw_template["Resources"]
    for state_name, row in table.items():
        function = row["Template function"]
        assert states[state_name]["Resource"] == function, f"{state_name} invokes {states[state_name]['Resource']}"
        code_uri = functions[function]["Properties"]["CodeUri"].rstrip("/")
        assert code_uri == row["Handler folder"], f"{function}'s CodeUri is {code_uri}"
        assert row["Pipeline function"] in handler_calls(code_uri), f"{code_uri}/app.py does not call it"
        assert callable(pipeline_function(row["Pipeline function"]))
        written = states[state_name].get("ResultPath")
        if written:
            contract = pipeline_function(row["Pipeline function"]).contract
            assert row["Writes (contract)"] == f"`{written}` ({contract.__name__})"


# ---------------------------------------------------------------- the check can fail
def test_a_renamed_field_in_the_asl_is_reported(definition, task_contracts):
    renamed = json.loads(json.dumps(definition).replace('"$.drift.decision"', '"$.drift.verdict"'))
    assert path_errors(renamed, task_contracts=task_contracts) == [
        "DriftDecision.Variable $.drift.verdict: $.drift.verdict is not a field of Drift"]


def test_a_renamed_field_in_a_contract_is_reported(definition, task_contracts):
    fields = {("action" if name == "decision" else name): (field.annotation, field)
              for name, field in Drift.model_fields.items()}
    drift = create_model("Drift", __config__=Drift.model_config, **fields)
    state = create_model("RunState", __base__=RunState, drift=(drift | None, None))
    contracts_now = {**task_contracts, "ComputeDrift": drift}
    assert path_errors(definition, state_model=state, task_contracts=contracts_now) == [
        "DriftDecision.Variable $.drift.decision: $.drift.decision is not a field of Drift"]


def test_a_comparison_of_the_wrong_type_or_value_is_reported(definition, task_contracts):
    changed = copy.deepcopy(definition)
    changed["States"]["DriftDecision"]["Choices"][0]["StringEquals"] = "retrain_now"
    changed["States"]["Admitted"]["Choices"][0] = {"Variable": "$.admission.admitted", "StringEquals": "yes",
                                                   "Next": "ComputeDrift"}
    errors = path_errors(changed, task_contracts=task_contracts)
    assert len(errors) == 2
    assert "'retrain_now' can never match" in errors[0] or "'retrain_now' can never match" in errors[1]


def test_a_task_writing_another_contract_is_reported(definition, task_contracts):
    wrong = {**task_contracts, "PollTraining": Evaluation}
    assert path_errors(definition, task_contracts=wrong) == [
        "PollTraining.ResultPath $.training holds Training, but the Task returns Evaluation"]

