"""``--json`` / ``--json -`` print only JSON on stdout; ``--json OUT`` writes the file; no file named '-'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftloop.cli import main
from driftloop.simulate import Scenario, Simulator, SimulatorConfig

COUNTS = [{"stage": 0, "champion": {"served": 4000, "conversions": 400},
           "challenger": {"served": 4000, "conversions": 480}}]


@pytest.fixture(scope="module")
def months(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three simulated months of a small shop."""
    simulator = Simulator(SimulatorConfig(seed=5, n_users=200, n_items=40, events_per_month=1500), Scenario.SEASONAL)
    return simulator.write_months(str(tmp_path_factory.mktemp("months")), [0, 1, 2])


def _argv(command: str, months: list[str], tmp_path: Path) -> list[str]:
    if command == "drift":
        return ["drift", "--baseline", months[0], "--current", months[1]]
    if command == "merge":
        return ["merge", "--original", months[0], "--new", months[1], "--out", str(tmp_path / "ds"), "--run-id", "r1"]
    if command == "train":
        return ["train", "--data", months[0], "--out", str(tmp_path / "model")]
    if command == "backtest":
        folder = Path(months[0]).parent
        return ["backtest", "--data", str(folder), "--strategies", "never,every", "--quiet"]
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps(COUNTS))
    return ["ab", "--counts", str(counts)]


COMMANDS = ["drift", "merge", "train", "backtest", "ab"]
KEYS = {"drift": "decision", "merge": "version_dir", "train": "ndcg_at_10", "backtest": "strategies", "ab": "action"}


@pytest.mark.parametrize("flag", [["--json"], ["--json", "-"]])
@pytest.mark.parametrize("command", COMMANDS)
def test_json_on_stdout_is_the_only_output(command: str, flag: list[str], months: list[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*_argv(command, months, tmp_path), *flag]) == 0
    document = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON document
    assert KEYS[command] in document
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_json_to_a_file_keeps_the_text(command: str, months: list[str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "new folder" / f"{command}.json"
    assert main([*_argv(command, months, tmp_path), "--json", str(out)]) == 0
    assert KEYS[command] in json.loads(out.read_text())
    text = capsys.readouterr().out
    assert text.strip() and not text.lstrip().startswith("{")


def test_the_option_can_precede_another_option(months: list[str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    html = tmp_path / "drift.html"
    assert main(["drift", "--json", "--baseline", months[0], "--current", months[1], "--html", str(html)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] and html.exists()
