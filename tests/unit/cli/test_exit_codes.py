"""One table of exit codes: the enum, every command's --help and the README say the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driftloop.cli import build_parser, main
from driftloop.console import MEANINGS, ExitCode

PROJECT = Path(__file__).resolve().parents[3]


def _commands() -> list[str]:
    parser = build_parser()
    (subparsers,) = [action for action in parser._actions if action.dest == "command"]
    return sorted(subparsers.choices)


def test_the_codes_are_distinct_and_usage_is_argparse_own() -> None:
    assert len({code.value for code in ExitCode}) == len(ExitCode)
    assert list(MEANINGS) == list(ExitCode)
    assert (ExitCode.OK, ExitCode.USAGE) == (0, 2)
    with pytest.raises(SystemExit) as exit_info:
        main(["drift", "--no-such-option"])
    assert exit_info.value.code == ExitCode.USAGE


@pytest.mark.parametrize("command", [[], *([name] for name in _commands())])
def test_every_help_ends_with_the_table(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    table = text[text.index("exit codes:"):]
    assert [int(code) for code in re.findall(r"^  (\d)  ", table, re.MULTILINE)] == [code.value for code in ExitCode]


def test_the_readme_table_lists_every_code() -> None:
    readme = (PROJECT / "README.md").read_text()
    section = readme[readme.index("### Exit codes"):]
    section = section[: section.index("\n#", 1)]
    rows = dict(re.findall(r"^\| `(\d)` \| (.+?) \|$", section, re.MULTILINE))
    assert sorted(int(code) for code in rows) == [code.value for code in ExitCode]
    for code in ExitCode:
        keyword = {ExitCode.OK: "success", ExitCode.FAILED: "failed", ExitCode.USAGE: "usage",
                   ExitCode.NO_RULE: "no rule", ExitCode.BAD_INPUT: "bad input"}[code]
        assert keyword in rows[str(code.value)].lower(), code
        assert keyword in MEANINGS[code].lower(), code


@pytest.mark.parametrize(("raised", "code", "words"), [
    (TimeoutError("executions still running after 900 s: ['run-1']"), ExitCode.FAILED, "still running after 900 s"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_runs_that_outlive_the_timeout_and_interrupts_are_one_line(
        raised: BaseException, code: int, words: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def command(args: object) -> int:
        raise raised

    monkeypatch.setattr("driftloop.local.cli.cmd_runs", command)
    assert main(["runs"]) == code
    error = capsys.readouterr().err
    assert error.startswith("driftloop runs: ") and words in error and error.count("\n") == 1
