"""scripts/lambda_sizes.py on small fake `sam build` outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, load_script

lambda_sizes = load_script("lambda_sizes", "scripts/lambda_sizes.py")

BUILT_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Layers:
    - Ref: SharedLayer
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: SharedLayer
  SmallFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: SmallFunction
  ExtraLayerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ExtraLayerFunction
      Layers:
      - !Ref ExtraLayer
      - arn:aws:lambda:eu-west-1:123456789012:layer:external:3
  ExtraLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: ExtraLayer
"""


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)  # sparse: apparent size without writing the bytes


def _build(tmp_path: Path, extra_layer_bytes: int) -> Path:
    (tmp_path / "template.yaml").write_text(BUILT_TEMPLATE)
    _write(tmp_path / "SmallFunction/app.py", 1_000)
    _write(tmp_path / "ExtraLayerFunction/app.py", 2_000)
    _write(tmp_path / "SharedLayer/python/lib/a.so", 100_000_000)
    _write(tmp_path / "SharedLayer/python/b.py", 500)
    _write(tmp_path / "ExtraLayer/python/c.so", extra_layer_bytes)
    return tmp_path


def test_sizes_add_global_and_own_layers(tmp_path):
    sizes = {size.function: size for size in lambda_sizes.measure(_build(tmp_path, 50_000_000))}
    assert sizes["SmallFunction"].total_bytes == 1_000 + 100_000_500
    assert sizes["SmallFunction"].unmeasured_layers == ()
    extra = sizes["ExtraLayerFunction"]
    assert extra.total_bytes == 2_000 + 100_000_500 + 50_000_000
    assert extra.unmeasured_layers == ("arn:aws:lambda:eu-west-1:123456789012:layer:external:3",)
    assert extra.to_dict()["over_limit"] is False


def test_exit_code_reports_a_function_over_the_limit(tmp_path, capsys):
    build = _build(tmp_path, lambda_sizes.LAMBDA_UNZIPPED_LIMIT - 100_000_000)
    assert lambda_sizes.main([str(build)]) == 1
    output = capsys.readouterr().out
    assert "ExtraLayerFunction" in output and "OVER" in output
    assert "SmallFunction" in output


def test_within_limit_exits_zero(tmp_path, capsys):
    assert lambda_sizes.main([str(_build(tmp_path, 1_000))]) == 0
    assert "OVER" not in capsys.readouterr().out


def test_missing_build_is_an_error(tmp_path, capsys):
    assert lambda_sizes.main([str(tmp_path / "nothing")]) == 2
    assert "sam build" in capsys.readouterr().err


@pytest.mark.skipif(not (REPO / ".aws-sam/build/template.yaml").is_file(), reason="no sam build output")
def test_real_build_fits(capsys):
    assert lambda_sizes.main([str(REPO / ".aws-sam/build")]) == 0
