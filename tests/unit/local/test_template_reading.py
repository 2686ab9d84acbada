"""template.yaml is parsed and translated once per process, version of the file and parameter values, and every
caller gets its own copy."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from driftloop.cli import main
from driftloop.console import ExitCode
from driftloop.errors import ConfigurationError
from driftloop.local import template as template_module
from driftloop.local.template import load_app, load_yaml


def test_each_caller_gets_its_own_copy_and_a_changed_file_is_read_again(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n    Properties: {Name: !Ref Name}\n")
    first = load_yaml(template)
    assert first == {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"Name": {"Ref": "Name"}}}}}
    first["Resources"]["Bucket"]["Type"] = "changed by a caller"
    assert load_yaml(template)["Resources"]["Bucket"]["Type"] == "AWS::S3::Bucket"
    modified = os.stat(template).st_mtime_ns
    template.write_text("Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n")
    os.utime(template, ns=(modified, modified))  # same modification time, other size
    assert list(load_yaml(template)["Resources"]) == ["Queue"]


def test_a_file_that_does_not_parse_fails_every_time_naming_the_file_and_the_place(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources: [unclosed\n")
    for _ in range(2):
        with pytest.raises(ConfigurationError, match=r"template\.yaml: not valid YAML \(.*line 2, column 1"):
            load_yaml(template)


@pytest.mark.parametrize(("content", "problem"), [(b"[]\n", "not a template.*list"),
                                                 (b"hello\n", "not a template.*str"),
                                                 (b"\xff\xfe\x00bad", "not valid YAML.*utf-8")])
def test_a_file_that_is_not_a_template_fails_naming_what_it_is(tmp_path: Path, content: bytes, problem: str) -> None:
    template = tmp_path / "template.yaml"
    template.write_bytes(content)
    with pytest.raises(ConfigurationError, match=problem):
        load_yaml(template)


def test_a_corrupt_template_is_one_line_and_the_usage_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "template.yaml").write_text("Resources: [unclosed\n")
    assert main(["runs", "--project", str(tmp_path)]) == ExitCode.USAGE
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("driftloop runs: ") and "not valid YAML" in line


def test_each_app_is_its_own_and_follows_its_parameter_values() -> None:
    template = Path(__file__).resolve().parents[3] / "template.yaml"
    first, second = load_app(template), load_app(template)
    assert first.definition == second.definition and first.definition is not second.definition
    first.functions.clear()
    assert second.functions, "an app is its caller's own"
    assert load_app(template).environment == second.environment
    renamed = load_app(template, {"ModelName": "shoes"})
    assert renamed.environment["MODEL_NAME"] == "shoes" != second.environment["MODEL_NAME"]
    assert load_app(template).environment["MODEL_NAME"] == second.environment["MODEL_NAME"]


ALIASED_FUNCTION = """Transform: AWS::Serverless-2016-10-31
Parameters:
  Alias: {Type: String, Default: live}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: fn/, Handler: app.handler, Runtime: python3.12, AutoPublishAlias: !Ref Alias}
"""


def test_the_translation_is_kept_per_parameter_values(tmp_path: Path) -> None:
    """SAM bakes some parameter values into what it generates (an alias is named after its value), so the
    translation kept for one set of values must not serve another."""
    (tmp_path / "fn").mkdir()
    template = tmp_path / "template.yaml"
    template.write_text(ALIASED_FUNCTION)
    for alias in ("live", "beta", "live"):
        with pytest.raises(ConfigurationError, match="one state machine"):  # translated, then found incomplete
            load_app(template, {"Alias": alias})
    kept = [pickle.loads(translated) for (version, _), translated in template_module._TRANSLATED.items()
            if version[0] == os.path.realpath(template)]
    assert sorted(name for translation in kept for name in translation["Resources"] if "Alias" in name) == [
        "FnAliasbeta", "FnAliaslive"]
