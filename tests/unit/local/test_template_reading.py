"""template.yaml is parsed once per process and version of the file, and every caller gets its own copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from driftloop.local.template import load_yaml


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


def test_a_file_that_does_not_parse_fails_every_time(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources: [unclosed\n")
    for _ in range(2):
        with pytest.raises(yaml.YAMLError):
            load_yaml(template)
