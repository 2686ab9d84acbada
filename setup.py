"""Ships the SAM application inside the driftloop package, so an installed driftloop works from any folder.

The template, state machine, handlers, layer recipe, local profile, SAM configuration and sample events stay
where SAM expects them in the repository (their one source); building a wheel copies them into
``driftloop/app``. ``driftloop demo`` then runs them when it is not started inside a checkout, and
``driftloop init DIR`` writes them out for a user to customise and deploy. Everything else is in
pyproject.toml.
"""

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

def _application() -> tuple[str, ...]:
    """``APPLICATION`` of src/driftloop/application.py (read, not imported: the build has no driftloop yet)."""
    module = ast.parse((ROOT / "src/driftloop/application.py").read_text())
    for node in module.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "APPLICATION" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("src/driftloop/application.py defines no APPLICATION")


class BuildPyWithApplication(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from its checkout, which holds the application itself
        target = Path(self.build_lib) / "driftloop" / "app"
        for name in _application():
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".aws-sam"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildPyWithApplication})
