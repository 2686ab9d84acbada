"""``driftloop drift`` as a hostile user calls it: outputs in missing folders, outputs onto its inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import interactions

from driftloop.cli import main
from driftloop.console import ExitCode


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    baseline, current = tmp_path / "baseline.parquet", tmp_path / "current/part-0.parquet"
    current.parent.mkdir()
    pq.write_table(interactions(2_000, seed=1), baseline)
    pq.write_table(interactions(2_000, seed=2), current)
    return baseline, current


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    error = capsys.readouterr().err
    assert error.startswith("driftloop drift: ") and error.count("\n") == 1 and "Traceback" not in error
    return error


def test_reports_into_missing_folders_are_written(tmp_path: Path, data: tuple[Path, Path]) -> None:
    baseline, current = data
    json_out, html_out = tmp_path / "out/a/report.json", tmp_path / "out/b/report.html"
    argv = ["drift", "--baseline", str(baseline), "--current", str(current.parent)]
    assert main([*argv, "--json", str(json_out), "--html", str(html_out), "--save-baseline",
                 str(tmp_path / "out/c/baseline.json")]) == 0
    assert json_out.read_text().startswith("{") and "<html" in html_out.read_text().lower()
    assert (tmp_path / "out/c/baseline.json").exists()


@pytest.mark.parametrize("option", ["--json", "--html", "--save-baseline"])
@pytest.mark.parametrize("target", ["baseline", "current file", "current folder", "policy"])
def test_an_output_onto_an_input_is_refused_and_the_input_kept(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture, option: str, target: str
) -> None:
    baseline, current = data
    policy = tmp_path / "policy.json"
    policy.write_text("{}")
    path = {"baseline": baseline, "current file": current, "current folder": current.parent / "report.json",
            "policy": policy}[target]
    before = {file: file.read_bytes() for file in tmp_path.rglob("*") if file.is_file()}
    argv = ["drift", "--baseline", str(baseline), "--current", str(current.parent if target == "current folder"
                                                                       else current), "--policy", str(policy)]
    assert main([*argv, option, str(path)]) == 2
    assert "input" in one_line_error(capsys)
    assert {file: file.read_bytes() for file in tmp_path.rglob("*") if file.is_file()} == before


def test_two_outputs_onto_one_file_are_refused(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    baseline, current = data
    out = str(tmp_path / "report")
    assert main(["drift", "--baseline", str(baseline), "--current", str(current), "--json", out, "--html", out]) == 2
    assert "same file" in one_line_error(capsys)


def test_an_output_that_cannot_be_written_is_one_line(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    baseline, current = data
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert main(["drift", "--baseline", str(baseline), "--current", str(current),
                 "--json", str(tmp_path / "blocker/report.json")]) == ExitCode.BAD_INPUT
    one_line_error(capsys)


@pytest.mark.parametrize("text", ["[]", '{"no_such_field": 1}', "{", ""])
def test_a_bad_policy_file_is_one_line(
    tmp_path: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture, text: str
) -> None:
    baseline, current = data
    (tmp_path / "policy.json").write_text(text)
    assert main(["drift", "--baseline", str(baseline), "--current", str(current),
                 "--policy", str(tmp_path / "policy.json")]) == ExitCode.BAD_INPUT
    assert "policy.json" in one_line_error(capsys)


def test_the_drift_command_imports_no_other_command(data: tuple[Path, Path], tmp_path: Path) -> None:
    """Importing the report (matplotlib) and the backtest took longer than the check on a million rows."""
    baseline, current = data
    script = (
        "import sys\nfrom driftloop.cli import main\n"
        f"code = main(['drift', '--baseline', {str(baseline)!r}, '--current', {str(current)!r}])\n"
        "heavy = [name for name in ('matplotlib', 'pandas', 'driftloop.report', 'driftloop.backtest', "
        "'driftloop.local', 'pyarrow.compute') if name in sys.modules]\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert result.stdout.splitlines()[-1] == "0 []"
