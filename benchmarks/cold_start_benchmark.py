"""How long does each Lambda handler take to import (its cold start's Python part) with the layer as built?

Builds DriftloopLayer the way `sam build` does (layers/driftloop/Makefile: wheels for the platform,
trimmed, driftloop without ``local/``, ``.pyc`` by Python 3.12), for x86_64 so that this machine can
import it; installs boto3 as the python3.12 runtime provides it (with ``.pyc``); then, per handler in
``functions/``, runs ``python3.12 -X importtime -c 'import app'`` in a fresh process, from ``/tmp``, with
``PYTHONPATH`` = the function's folder, the layer and the runtime's boto3, and the environment variables
Lambda sets (``LAMBDA_TASK_ROOT`` among them). Prints a Markdown table:

- wall: the smallest cumulative ``import app`` time of the runs (``-X importtime``);
- CPU: the median user+sys seconds of the whole process, less the median of an empty interpreter's;
- where the time goes: the four top-level packages with the largest import self time (median, summed
  over their modules).

Not Lambda numbers: a function's CPU share follows its memory size, and Graviton differs from this
machine; the load average is printed beside the table. Usage::

    PYTHONPATH=src python benchmarks/cold_start_benchmark.py [--runs 5] [--layer DIR] [--target 0.5]

``--layer DIR`` measures an existing build (the folder that holds ``python/``) instead of building one.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOTO3_VERSION = "1.43.108"  # the one the tests run with; the python3.12 runtime brings its own
IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def python312() -> str:
    for candidate in (shutil.which("python3.12"), *sorted(Path.home().glob(".pyenv/versions/3.12.*/bin/python3.12"))):
        if candidate and subprocess.run([str(candidate), "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 12))"],
                                        capture_output=True, check=False).returncode == 0:
            return str(candidate)
    raise SystemExit("no Python 3.12 found: Lambda's python3.12 runtime is what is measured")


def build_layer(target: Path, interpreter: str) -> Path:
    """The layer as `sam build` makes it (x86_64 wheels), in ``target``/python."""
    subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "layers/driftloop/Makefile"),
                    "build-DriftloopLayer", f"ARTIFACTS_DIR={target}", "PYTHON_PLATFORM=x86_64-manylinux_2_28",
                    f"PYTHON={sys.executable}", f"PYTHON312={interpreter}"],
                   check=True, stdout=subprocess.DEVNULL)
    return target


def install_runtime(target: Path, interpreter: str) -> Path:
    """boto3 with .pyc, as /var/runtime holds it."""
    subprocess.run([interpreter, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                    "--target", str(target), f"boto3=={BOTO3_VERSION}"], check=True)
    subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "0", str(target)], check=True,
                   stdout=subprocess.DEVNULL)
    return target


def lambda_environment(function: Path | None) -> dict[str, str]:
    """What the python3.12 runtime sets before it imports a handler, as far as imports look at it:
    aws-xray-sdk, for one, builds a sampler with an X-Ray client of its own (about 0.2 s) unless
    ``LAMBDA_TASK_ROOT`` says it runs in Lambda, where Lambda samples."""
    if function is None:
        return {}
    return {"LAMBDA_TASK_ROOT": str(function), "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_REGION": "us-east-1"}


def run_once(interpreter: str, path: list[Path], code: str,
             function: Path | None = None) -> tuple[float, dict[str, float], float]:
    """(cumulative seconds of ``import app``, self seconds per top-level package, CPU seconds of the
    process) of one fresh interpreter, in ``function``'s Lambda environment when one is given."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run([interpreter, "-X", "importtime", "-c", code], cwd=tempfile.gettempdir(),
                               env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(map(str, path)),
                                    "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1",
                                    **lambda_environment(function)},
                               capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"{code!r} failed: {completed.stderr.strip().splitlines()[-1]}")
    app, packages = 0.0, defaultdict(float)
    for match in IMPORT_LINE.finditer(completed.stderr):
        name = match.group(4)
        packages[name.split(".")[0]] += int(match.group(1)) / 1e6
        if name == "app":
            app = int(match.group(2)) / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return app, dict(packages), cpu


def measure(interpreter: str, layer: Path, runtime: Path, runs: int) -> list[dict[str, object]]:
    empty = statistics.median(run_once(interpreter, [runtime], "pass")[2] for _ in range(runs))
    rows = []
    for function in sorted(path for path in (ROOT / "functions").iterdir() if (path / "app.py").exists()):
        walls, cpus, packages = [], [], defaultdict(list)
        for _ in range(runs):
            wall, selves, cpu = run_once(interpreter, [function, layer / "python", runtime], "import app", function)
            walls.append(wall)
            cpus.append(cpu - empty)
            for name, seconds in selves.items():
                packages[name].append(seconds)
        heaviest = sorted(((statistics.median(times), name) for name, times in packages.items()), reverse=True)[:4]
        rows.append({"handler": function.name, "wall": min(walls), "cpu": statistics.median(cpus),
                     "top": ", ".join(f"{name} {seconds:.2f}" for seconds, name in heaviest)})
    return rows


def table(rows: list[dict[str, object]], target: float) -> str:
    lines = ["| handler | wall (best) | CPU (median) | largest self times by package, s |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['handler']} | {row['wall']:.3f} s | {row['cpu']:.3f} s | {row['top']} |")
    within = sum(float(row["wall"]) <= target for row in rows)  # type: ignore[arg-type]
    lines += ["", f"{within} of {len(rows)} handlers import within {target} s wall (best run)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layer", type=Path, help="an existing layer build (the folder holding python/)")
    parser.add_argument("--target", type=float, default=0.5, help="seconds a handler's import should stay under")
    args = parser.parse_args(argv)
    interpreter = python312()
    with tempfile.TemporaryDirectory(prefix="driftloop-cold-start-") as folder:
        work = Path(folder)
        layer = args.layer or build_layer(work / "layer", interpreter)
        runtime = install_runtime(work / "runtime", interpreter)
        load = os.getloadavg()
        rows = measure(interpreter, layer, runtime, args.runs)
    print(table(rows, args.target))
    print(f"\n{args.runs} runs per handler, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) when the measurement started.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
