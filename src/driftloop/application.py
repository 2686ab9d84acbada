"""Where driftloop's SAM application is: a checkout, a folder ``driftloop init`` wrote, or the installed package.

The application is the template, the state machine, the handlers, the layer recipe, the local profile, the SAM
configuration and the sample events. In a repository they sit where SAM expects them; a wheel carries a copy
in ``driftloop/app`` (setup.py makes it), so an installed driftloop runs the demo from any folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from driftloop.errors import ConfigurationError, InvalidInputError

APPLICATION = ("template.yaml", "samconfig.toml", "local.toml", "statemachines", "functions", "layers", "events")
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_APPLICATION = PACKAGE_DIR / "app"
SOURCE_CHECKOUT = PACKAGE_DIR.parents[1]  # src/driftloop of a checkout (an editable install)
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".aws-sam")


def is_application(folder: Path) -> bool:
    return (folder / "template.yaml").is_file() and (folder / "statemachines").is_dir()


def find_project_dir(start: Path | None = None) -> Path:
    """The folder holding template.yaml: the current one or a parent (a checkout, or a folder ``driftloop init``
    wrote), else the application installed with driftloop (in the wheel, or the checkout of an editable install)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, PACKAGED_APPLICATION, SOURCE_CHECKOUT):
        if is_application(folder):
            return folder
    raise ConfigurationError(f"no template.yaml found in {here} or its parents, and this driftloop was installed "
                             "without its application (driftloop/app); reinstall it with pip, or run it from a "
                             "checkout")


def write_application(target: Path, source: Path | None = None) -> list[str]:
    """Write the application and driftloop's own sources (``src/driftloop``, which the layer recipe bundles) into
    the new or empty folder ``target``; return the names written at its top."""
    source = source or find_project_dir()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError(f"{target} exists and is not an empty folder; choose a new one")
    target.mkdir(parents=True, exist_ok=True)
    for name in APPLICATION:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, ignore=_NOT_SHIPPED)
        elif (source / name).is_file():
            shutil.copy2(source / name, target / name)
    shutil.copytree(PACKAGE_DIR, target / "src" / "driftloop",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "app", ".aws-sam"))
    return sorted(path.name + ("/" if path.is_dir() else "") for path in target.iterdir())
