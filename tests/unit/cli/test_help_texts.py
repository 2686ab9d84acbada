"""Help that tells the truth: every option explained, the right defaults, one spelling of scenario names."""

from __future__ import annotations

import argparse

import pytest

from driftloop.cli import build_parser, main
from driftloop.console import ExitCode
from driftloop.local.demo import SCENARIOS, verdict


def _commands() -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = [action for action in build_parser()._actions if action.dest == "command"]
    return dict(subparsers.choices)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_option_has_help(command: str) -> None:
    parser = _commands()[command]
    unexplained = [action.option_strings for action in parser._actions
                   if action.option_strings and not (action.help or "").strip()]
    assert not unexplained


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_demo_help_shows_its_own_workspace(capsys: pytest.CaptureFixture) -> None:
    assert "(default .driftloop/demo)" in _help(["demo"], capsys)
    assert build_parser().parse_args(["demo"]).workspace == ".driftloop/demo"


def test_merge_help_explains_the_bad_share(capsys: pytest.CaptureFixture) -> None:
    text = _help(["merge"], capsys)
    assert "quarantined" in text and "more than this share" in text


@pytest.mark.parametrize("command", ["runs", "endpoint"])
def test_commands_with_nothing_to_quiet_have_no_quiet(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--quiet"])
    assert exit_info.value.code == ExitCode.USAGE
    assert "unrecognized arguments: --quiet" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["replay", "seed", "upload", "demo", "backtest", "train", "merge", "simulate"])
def test_long_commands_offer_quiet(command: str) -> None:
    assert any("--quiet" in action.option_strings for action in _commands()[command]._actions)


@pytest.mark.parametrize(("argv", "expected"), [
    (["seed", "--scenario", "no_drift"], "no-drift"),
    (["seed", "--scenario", "population-shift"], "population-shift"),
    (["demo", "--scenario", "worse_challenger"], "worse-challenger"),
    (["simulate", "--out", "x", "--scenario", "No_Drift"], "no-drift"),
    (["backtest", "--data", "synthetic", "--scenario", "population_shift"], "population-shift"),
])
def test_scenarios_read_both_spellings_and_keep_the_hyphen(argv: list[str], expected: str) -> None:
    assert build_parser().parse_args(argv).scenario == expected


@pytest.mark.parametrize("command", ["seed", "demo", "simulate", "backtest"])
def test_scenario_choices_are_documented_with_hyphens(command: str) -> None:
    (scenario,) = [action for action in _commands()[command]._actions if "--scenario" in action.option_strings]
    assert all("_" not in name for name in scenario.choices)
    assert "no_drift" in scenario.help and "works too" in scenario.help


def test_a_shortened_demo_reports_another_ending_instead_of_failing() -> None:
    seasonal = SCENARIOS["seasonal"]
    message, code = verdict(seasonal, 6, "challenger_rejected")
    assert code == ExitCode.OK and "first 6 of the scenario's 12 months" in message and "promoted" in message
    assert verdict(seasonal, 6, "failed")[1] == ExitCode.FAILED
    assert verdict(seasonal, 12, "challenger_rejected")[1] == ExitCode.FAILED
    assert verdict(seasonal, 12, "promoted")[1] == ExitCode.OK
    assert verdict(SCENARIOS["failure"], 1, "failed")[1] == ExitCode.OK


@pytest.mark.parametrize("months", ["0", "-1", "two"])
def test_demo_months_must_be_a_positive_count(months: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--months", months])
    assert exit_info.value.code == ExitCode.USAGE
