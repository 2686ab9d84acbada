"""What a local training job's start costs: a fork of the warm training host against a new Python.

    PYTHONPATH=src .venv/bin/python benchmarks/training_host_benchmark.py [--jobs 10]

Each job is the start of a real local training job without its data: the source bundle
(``sourcedir.tar.gz``, as SageMaker unpacks it) in the job's folder, ``PYTHONPATH`` on it, and a program
that imports the bundle's training entry point (``driftloop.model.train``) and the SciPy module it fits
with, then exits. What a job does after that, reading its channel and fitting, is the same both ways.
Both ways run in the same run, one after the other, so the ratio holds on a busy machine; the first job
of the host also pays for starting it, and is counted. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from driftloop.local.training_host import TrainingHost
from driftloop.model.bundle import build_source_bundle

PROGRAM = "import driftloop.model.train\nfrom scipy import sparse\n"


def job_seconds(host: TrainingHost, root: Path, jobs: int) -> list[float]:
    bundle, _ = build_source_bundle()
    seconds = []
    for index in range(jobs):
        folder = root / f"job-{index}"
        with tarfile.open(fileobj=io.BytesIO(bundle)) as archive:
            archive.extractall(folder, filter="data")
        (folder / "start.py").write_text(PROGRAM)
        environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(folder)}
        started = time.perf_counter()
        code = host.run("start.py", str(folder), environment, str(folder / "stdout"), str(folder / "stderr"))
        seconds.append(time.perf_counter() - started)
        if code != 0:
            raise SystemExit(f"job {index} exited with {code}: {(folder / 'stderr').read_text()[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="jobs per way (default 10)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not sys.platform.startswith("linux"):
        print("the warm host forks only on Linux; elsewhere both ways start a new Python")
    results = {}
    with tempfile.TemporaryDirectory(prefix="driftloop-host-bench-") as folder:
        for name, fork in (("new Python per job", False), ("fork of the warm host", True)):
            host = TrainingHost(fork=fork)
            try:
                results[name] = job_seconds(host, Path(folder) / name.replace(" ", "-"), args.jobs)
            finally:
                host.close()
    baseline = statistics.median(results["new Python per job"])
    print(f"{args.jobs} job starts each way, load average {os.getloadavg()[0]:.2f}\n")
    print("| way | median s/job | first job s | total s | median vs a new Python |")
    print("|---|---|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {statistics.median(seconds):.3f} | {seconds[0]:.3f} | {sum(seconds):.2f} | "
              f"{statistics.median(seconds) / baseline:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
