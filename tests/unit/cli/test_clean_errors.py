"""A hostile user's mistakes end in one line on stderr and the documented exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftloop.application import write_application
from driftloop.cli import main
from driftloop.console import ExitCode
from driftloop.errors import ConfigurationError
from driftloop.local.parameters import check_overrides, check_parameter
from driftloop.local.template import load_yaml

PROJECT = Path(__file__).resolve().parents[3]
TEMPLATE = PROJECT / "template.yaml"


def one_line(capsys: pytest.CaptureFixture, command: str) -> str:
    error = capsys.readouterr().err
    assert error.startswith(f"driftloop {command}: ") and error.count("\n") == 1, error
    assert "Traceback" not in error
    return error


def test_upload_of_a_missing_file_names_it_and_creates_no_workspace(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "missing.parquet"
    code = main(["upload", "--file", str(missing), "--workspace", str(tmp_path / "ws"), "--project", str(PROJECT)])
    assert code == ExitCode.BAD_INPUT
    assert "missing.parquet: no such file" in one_line(capsys, "upload")
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("assignment", ["Foo", "=1", " PsiThreshold=1"])
def test_a_parameter_without_name_and_equals_is_bad_usage(assignment: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "--parameter", assignment])
    assert exit_info.value.code == ExitCode.USAGE
    assert "is not NAME=VALUE" in capsys.readouterr().err


RULES = [
    ("TrafficStages=abc", "AllowedPattern"),
    ("PsiThreshold=-5", "below its MinValue 0"),
    ("JsThreshold=2", "above its MaxValue 1"),
    ("MinSampleSize=ten", "must be a number"),
    ("ScheduleState=on", "is not one of"),
    ("PsiTreshold=0.3", "did you mean PsiThreshold?"),
]
EVENT = str(PROJECT / "events/manual_retrain_request.json")
COMMANDS = {"runs": [], "replay": [EVENT], "upload": ["--month", "1"], "endpoint": [], "seed": [], "demo": []}


@pytest.mark.parametrize(("command", "assignment", "rule"), [
    *(("runs", assignment, rule) for assignment, rule in RULES),
    *((command, *RULES[index % len(RULES)]) for index, command in enumerate(COMMANDS)),
])
def test_a_parameter_value_cloudformation_refuses_stops_before_anything_runs(
        command: str, assignment: str, rule: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    workspace = tmp_path / "ws"
    argv = [command, *COMMANDS[command], "--parameter", assignment, "--workspace", str(workspace),
            "--project", str(PROJECT)]
    assert main(argv) == ExitCode.USAGE
    assert rule in one_line(capsys, command)
    assert not workspace.exists()


def test_every_parameter_is_checked_by_its_own_definition() -> None:
    """The defaults pass; each bound, pattern and list the template declares is enforced."""
    declared = load_yaml(TEMPLATE)["Parameters"]
    for name, spec in declared.items():
        default = spec.get("Default")
        check_parameter(name, spec, str(default).split(",") if spec["Type"] == "CommaDelimitedList" else str(default))
        refused = []
        if "MinValue" in spec:
            refused.append(str(float(spec["MinValue"]) - 1))
        if "MaxValue" in spec:
            refused.append(str(float(spec["MaxValue"]) + 1))
        if "AllowedValues" in spec:
            refused.append("not-" + str(spec["AllowedValues"][0]))
        if "AllowedPattern" in spec:
            refused.append("has spaces\n")
        if spec["Type"] == "Number":
            refused.append("abc")
        for value in refused:
            with pytest.raises(ConfigurationError, match=f"parameter {name}="):
                check_parameter(name, spec, value)


def test_overrides_are_split_like_cloudformation_lists() -> None:
    check_overrides(TEMPLATE, {"AlarmNames": "first-alarm, second-alarm", "PsiThreshold": "0.3"})
    with pytest.raises(ConfigurationError, match="unknown parameter Nope"):
        check_overrides(TEMPLATE, {"Nope": "1"})


def test_list_parameters_are_checked_item_by_item() -> None:
    spec = {"Type": "CommaDelimitedList", "AllowedValues": ["a", "b"]}
    check_parameter("Names", spec, ["a", "b"])
    with pytest.raises(ConfigurationError, match="Names=c is not one of"):
        check_parameter("Names", spec, ["a", "c"])


@pytest.mark.parametrize("command", [["runs"], ["endpoint"], ["replay", EVENT], ["upload", "--month", "1"], ["report"]])
def test_a_mistyped_workspace_is_not_created(command: list[str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    typo = tmp_path / ".driftlop"
    assert main([*command, "--workspace", str(typo), "--project", str(PROJECT)] if command != ["report"]
                else ["report", "--workspace", str(typo)]) == ExitCode.BAD_INPUT
    error = one_line(capsys, command[0])
    assert str(typo) in error and ("does not exist" in error or "not a driftloop workspace" in error)
    assert not typo.exists()


def test_a_folder_that_is_not_a_workspace_is_named_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes").mkdir()
    assert main(["runs", "--workspace", str(tmp_path / "notes"), "--project", str(PROJECT)]) == ExitCode.BAD_INPUT
    assert "is not a driftloop workspace" in one_line(capsys, "runs")


def test_duplicate_column_names_in_drift_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = pa.Table.from_arrays([pa.array(["a", "b"] * 300), pa.array(["x", "y"] * 300), pa.array([1, 2] * 300)],
                                 names=["user_id", "item_id", "user_id"])
    path = tmp_path / "dup.parquet"
    pq.write_table(table, path)
    assert main(["drift", "--baseline", str(path), "--current", str(path)]) == ExitCode.BAD_INPUT
    assert "duplicate column names" in one_line(capsys, "drift")


def test_train_on_a_missing_path_says_so_plainly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "model")]) == ExitCode.BAD_INPUT
    error = one_line(capsys, "train")
    assert "--data" in error and "no such file or folder" in error and "channel" not in error
    assert not (tmp_path / "model").exists()


def test_replay_of_an_unreadable_event_delivers_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code = main(["replay", EVENT, str(broken),
                 "--workspace", str(tmp_path / "ws"), "--project", str(PROJECT)])
    assert code == ExitCode.BAD_INPUT
    assert "broken.json: cannot read event JSON" in one_line(capsys, "replay")
    assert not (tmp_path / "ws").exists()


def test_upload_of_a_folder_says_it_is_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["upload", "--file", str(tmp_path), "--workspace", str(tmp_path / "ws"), "--project", str(PROJECT)])
    assert code == ExitCode.BAD_INPUT
    assert "a folder, not a file" in one_line(capsys, "upload")


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "soon"])
@pytest.mark.parametrize("command", [["upload", "--month", "1"], ["replay", EVENT]])
def test_a_timeout_must_be_a_positive_number(command: list[str], timeout: str,
                                            capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--timeout", timeout])
    assert exit_info.value.code == ExitCode.USAGE
    assert "argument --timeout" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["demo"], ["seed", "--reset"]])
def test_a_refused_parameter_removes_no_workspace(command: list[str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    workspace = tmp_path / "ws"
    (workspace / "s3").mkdir(parents=True)
    (workspace / "s3" / "index.json").write_text("{}")
    code = main([*command, "--parameter", "PsiThreshold=-5", "--workspace", str(workspace), "--project", str(PROJECT)])
    assert code == ExitCode.USAGE
    one_line(capsys, command[0])
    assert (workspace / "s3" / "index.json").read_text() == "{}"


def test_seed_writes_into_no_folder_of_other_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    assert main(["seed", "--workspace", str(tmp_path), "--project", str(PROJECT)]) == ExitCode.BAD_INPUT
    assert "is not a driftloop workspace" in one_line(capsys, "seed")
    assert [path.name for path in tmp_path.iterdir()] == ["thesis.tex"]


RULES_TEMPLATE = """
Parameters:
  DeploymentMode: {Type: String, Default: ab, AllowedValues: [ab, canary]}
  RollbackAlarmNames: {Type: CommaDelimitedList, Default: ""}
  Stages: {Type: CommaDelimitedList, Default: "10,50"}
Rules:
  CanaryNeedsAlarms:
    RuleCondition: !Equals [!Ref DeploymentMode, canary]
    Assertions:
      - Assert: !Not [!Equals [!Ref RollbackAlarmNames, [""]]]
        AssertDescription: canary mode needs RollbackAlarmNames
  KnownStages:
    Assertions:
      - Assert: !EachMemberIn [!Ref Stages, ["10", "50", "100"]]
        AssertDescription: Stages are 10, 50 or 100
"""


@pytest.mark.parametrize(("assignments", "refusal"), [
    ([], None),
    (["DeploymentMode=canary", "RollbackAlarmNames=a,b"], None),
    (["DeploymentMode=canary"], "template rule CanaryNeedsAlarms: canary mode needs RollbackAlarmNames"),
    (["Stages=10,20"], "template rule KnownStages: Stages are 10, 50 or 100"),
])
def test_the_template_rules_are_asserted_on_the_values_a_command_runs_with(
        assignments: list[str], refusal: str | None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "template.yaml").write_text(RULES_TEMPLATE)
    parameters = [option for assignment in assignments for option in ("--parameter", assignment)]
    code = main(["runs", "--project", str(tmp_path), "--workspace", str(tmp_path / "ws"), *parameters])
    if refusal is None:  # the values pass: the command goes on to find no workspace
        assert code == ExitCode.BAD_INPUT and "does not exist" in one_line(capsys, "runs")
    else:
        assert code == ExitCode.USAGE and refusal in one_line(capsys, "runs")


def test_a_rule_is_checked_with_the_local_profile(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(RULES_TEMPLATE)
    with pytest.raises(ConfigurationError, match="CanaryNeedsAlarms"):
        check_overrides(tmp_path / "template.yaml", {}, {"DeploymentMode": "canary"})


def test_a_local_profile_value_the_template_refuses_stops_the_command(tmp_path, capsys):
    project = tmp_path / "project"
    write_application(project)
    profile = project / "local.toml"
    profile.write_text(profile.read_text().replace("[parameters]\n", "[parameters]\nPollSeconds = 1\n", 1))
    assert main(["runs", "--project", str(project), "--workspace", str(tmp_path / "ws")]) == 2
    error = capsys.readouterr().err
    assert "PollSeconds" in error and error.count("\n") == 1
