import json
import subprocess
import sys

import pytest

from driftloop.cli import main
from driftloop.console import ExitCode

WIN = [
    {"stage": 0, "champion": {"served": 3600, "conversions": 1080}, "challenger": {"served": 400, "conversions": 132}},
    {"stage": 1, "champion": {"served": 2000, "conversions": 600}, "challenger": {"served": 2000, "conversions": 680}},
]


@pytest.fixture
def counts(tmp_path):
    def write(document, text=None):
        path = tmp_path / "counts.json"
        path.write_text(text if text is not None else json.dumps(document))
        return str(path)
    return write


def test_prints_the_verdict_with_test_interval_and_power(counts, capsys):
    assert main(["ab", "--counts", counts(WIN), "--minimum-lift", "0.1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verdict: promote\nreason: challenger converts significantly better")
    assert "test: stratified difference z" in out and "interval: challenger minus champion" in out
    assert "power: detects a +" in out


def test_json_to_stdout_is_the_whole_verdict(counts, capsys):
    assert main(["ab", "--counts", counts(WIN), "--stages", "10,50,100", "--json", "-"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["action"] == "continue" and verdict["power"]["minimum_lift"] == 0.05
    assert verdict["strata"] == WIN


def test_projected_end_makes_the_last_look_final(counts, capsys):
    even = [WIN[0], {"stage": 1, "champion": {"served": 2000, "conversions": 600},
                     "challenger": {"served": 2000, "conversions": 600}}]
    code = main(["ab", "--counts", counts(even), "--requests-per-wait", "1000", "--waits", "3", "--max-waits", "3"])
    assert code == 0 and capsys.readouterr().out.startswith("verdict: rollback\nreason: no significant win")


@pytest.mark.parametrize(("document", "text", "message"), [
    (None, "{not json", "not JSON"),
    (None, "", "not JSON"),
    ({"stage": 0}, None, "must be a JSON list"),
    ([{**WIN[0], "challenger": {"served": 10, "conversions": 11}}], None, "11 conversions out of 10 served"),
    ([{**WIN[0], "champion": {"served": -1, "conversions": 0}}], None, "must not be negative"),
    ([{**WIN[0], "challenger": {"served": 0, "conversions": 0}}], None, "challenger served nothing"),
    ([{**WIN[0], "stage": 2}], None, "unknown stage 2"),
])
def test_bad_input_is_one_line_a_rollback_and_exit_2(counts, capsys, document, text, message):
    assert main(["ab", "--counts", counts(document, text), "--json", "-"]) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert json.loads(captured.out)["action"] == "rollback"
    (line,) = captured.err.splitlines()
    assert line.startswith("driftloop ab: rollback: ") and message in line


def test_missing_file_and_bad_options_are_one_line_and_exit_2(tmp_path, counts, capsys):
    assert main(["ab", "--counts", str(tmp_path / "missing.json")]) == ExitCode.BAD_INPUT
    assert "No such file" in capsys.readouterr().err
    for options in (["--stages", "100"], ["--stages", "ten"], ["--minimum-lift", "0"], ["--holdback", "100"]):
        assert main(["ab", "--counts", counts(WIN), *options]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1


def test_a_reader_that_closed_the_pipe_gets_no_error_line(counts):
    command = [sys.executable, "-m", "driftloop.cli", "ab", "--counts", counts(WIN), "--json", "-"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # like `| head` that has already gone away
    _, error = process.communicate(timeout=120)
    assert error == b"" and process.returncode == 1
