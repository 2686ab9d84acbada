"""Where commands find the SAM application, and ``driftloop init`` writing it out."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop import application
from driftloop.application import APPLICATION, find_project_dir, write_application
from driftloop.cli import main
from driftloop.errors import ConfigurationError, InvalidInputError

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_is_found_from_any_of_its_folders() -> None:
    assert find_project_dir(REPO / "docs") == REPO


def test_outside_any_checkout_the_installed_application_is_used(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    installed = tmp_path / "site-packages" / "driftloop" / "app"
    write_application(installed, source=REPO)
    monkeypatch.setattr(application, "PACKAGED_APPLICATION", installed)
    monkeypatch.setattr(application, "SOURCE_CHECKOUT", tmp_path / "nowhere")
    (tmp_path / "elsewhere").mkdir()
    assert find_project_dir(tmp_path / "elsewhere") == installed


def test_without_any_application_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(application, "PACKAGED_APPLICATION", tmp_path / "missing")
    monkeypatch.setattr(application, "SOURCE_CHECKOUT", tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="no template.yaml found .* reinstall it with pip"):
        find_project_dir(tmp_path)


def test_init_writes_the_whole_application_and_the_core_the_layer_bundles(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "my-driftloop"
    assert main(["init", str(target)]) == 0
    for name in APPLICATION:
        assert (target / name).exists(), name
    for copied in ("template.yaml", "statemachines/retrain.asl.json", "functions/admit/app.py"):
        assert (target / copied).read_bytes() == (REPO / copied).read_bytes(), copied
    assert (target / "src/driftloop/pipeline/admit.py").is_file()
    assert not list(target.rglob("__pycache__")) and not (target / "src/driftloop/app").exists()
    assert find_project_dir(target / "functions") == target
    out = capsys.readouterr().out
    assert "sam deploy --guided" in out and str(target) in out


@pytest.mark.parametrize("existing", ["a file", "a folder with a file"])
def test_init_never_writes_over_something_that_exists(tmp_path: Path, existing: str) -> None:
    target = tmp_path / "taken"
    if existing == "a file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        write_application(target, source=REPO)
    assert (target.read_text() if target.is_file() else (target / "notes.txt").read_text()) == "mine"
    assert not (target / "template.yaml").exists()
