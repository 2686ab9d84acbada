"""Drift report speed and memory against plain pyarrow reads (and optionally Evidently).

    .venv/bin/python benchmarks/drift_benchmark.py [--rows 1000000] [--evidently-python PATH]

Writes reference/current Parquet (20 columns: 12 numeric, 8 categorical with 5-500 categories,
some nulls, a few shifted) under a temporary folder, then measures, in this one run:
- read: both files with ``pyarrow.parquet.read_table`` (the baseline the targets are ratios of);
- build: ``build_baseline`` on the reference (done once per model, stored with it);
- compare: ``compare_to_baseline`` of the current file against the stored baseline, plus JSON+HTML;
- end-to-end: build + compare, as ``driftloop drift --baseline ref.parquet --current cur.parquet`` does;
- cli: that command itself, ``driftloop.cli.main`` with --json and --html (its imports included).
Each step runs in a fresh subprocess so its peak RSS and CPU time are its own; the table gives wall
and CPU seconds as ratios to the read, then the targets (end to end <= 1.5x the read, goal 1.2x; peak
memory under 500 MB and flat across sizes). Evidently (optional, in its own
environment: ``pip install -r benchmarks/requirements-evidently.txt``) runs its DataDriftPreset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC = 12
CATEGORY_SIZES = (5, 8, 12, 30, 60, 120, 250, 500)
SHIFTED_NUMERIC = {"num_00", "num_04"}
SHIFTED_CATEGORICAL = {"cat_03"}
CHUNK_ROWS = 500_000
END_TO_END_TARGET, END_TO_END_GOAL = 1.5, 1.2
MEMORY_TARGET_MB = 500


def _chunk(rows: int, seed: int, shifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for index in range(NUMERIC):
        name = f"num_{index:02d}"
        shift = 0.3 if shifted and name in SHIFTED_NUMERIC else 0.0
        if index % 3 == 0:
            values = rng.normal(shift, 1.0, rows)
        elif index % 3 == 1:
            values = rng.lognormal(2.0 + shift, 0.5, rows)
        else:
            values = rng.integers(0, 1000, rows).astype(np.float64)
        mask = rng.random(rows) < 0.01 if index % 4 == 0 else None
        columns[name] = pa.array(values, mask=mask)
    for index, size in enumerate(CATEGORY_SIZES):
        name = f"cat_{index:02d}"
        weights = 1.0 / np.arange(1, size + 1)
        if shifted and name in SHIFTED_CATEGORICAL:
            weights = weights[::-1]
        labels = np.array([f"{name}_v{value}" for value in range(size)])
        codes = rng.choice(size, rows, p=weights / weights.sum())
        columns[name] = pa.array(labels[codes])
    return pa.table(columns)


def write_dataset(path: Path, rows: int, seed: int, shifted: bool) -> None:
    writer = None
    for start in range(0, rows, CHUNK_ROWS):
        table = _chunk(min(CHUNK_ROWS, rows - start), seed * 1000 + start // CHUNK_ROWS, shifted)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=128 * 1024)
    assert writer is not None
    writer.close()


STEPS = {
    "read": """
import pyarrow.parquet as pq
pq.read_table(REF); pq.read_table(CUR)
""",
    "build": """
import json
from driftloop.drift import build_baseline
from driftloop.storage import local_source
baseline = build_baseline(local_source(REF), exclude=())
open(OUT + "/baseline.json", "w").write(json.dumps(baseline.to_dict()))
""",
    "compare": """
import json
from driftloop.drift import Baseline, compare_to_baseline
from driftloop.storage import local_source
baseline = Baseline.from_dict(json.load(open(OUT + "/baseline.json")))
report = compare_to_baseline(baseline, local_source(CUR))
open(OUT + "/report.json", "w").write(json.dumps(report.to_dict()))
open(OUT + "/report.html", "w").write(report.to_html())
""",
    "end_to_end": """
import json
from driftloop.drift import build_baseline, compare_to_baseline
from driftloop.storage import local_source
report = compare_to_baseline(build_baseline(local_source(REF), exclude=()), local_source(CUR))
open(OUT + "/report.json", "w").write(json.dumps(report.to_dict()))
open(OUT + "/report.html", "w").write(report.to_html())
""",
    "cli": """
from driftloop.cli import main
main(["drift", "--baseline", REF, "--current", CUR, "--json", OUT + "/cli.json", "--html", OUT + "/cli.html"])
""",
    "evidently": """
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference, current = pd.read_parquet(REF), pd.read_parquet(CUR)
Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
""",
}

TIMER = """
import resource, sys, time
REF, CUR, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
"""


def run_step(python: str, step: str, reference: Path, current: Path, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, all threads, imports included) and peak RSS MB."""
    script = TIMER.format(body=STEPS[step])
    result = subprocess.run(
        [python, "-c", script, str(reference), str(current), str(out)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{result.stderr[-2000:]}")
    seconds, cpu_seconds, peak_mb = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(cpu_seconds), float(peak_mb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs per step")
    parser.add_argument("--evidently-python", help="python of an environment with Evidently installed")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    summary: dict[int, dict[str, tuple[float, float, float]]] = {}
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder)
            reference, current = out / "reference.parquet", out / "current.parquet"
            write_dataset(reference, rows, seed=1, shifted=False)
            write_dataset(current, rows, seed=2, shifted=True)
            steps = ["read", "build", "compare", "end_to_end", "cli"]
            if args.evidently_python:
                steps.append("evidently")
            measured: dict[str, tuple[float, float, float]] = {}
            for step in steps:
                python = args.evidently_python if step == "evidently" else sys.executable
                repeats = 1 if step == "evidently" else args.repeat
                runs = [run_step(python, step, reference, current, out) for _ in range(repeats)]
                best = min(runs, key=lambda run: run[0])
                measured[step] = (best[0], best[1], max(run[2] for run in runs))
            report = json.loads((out / "report.json").read_text())
            read_seconds, read_cpu = measured["read"][0], measured["read"][1]
            print(f"\n{rows:,} reference + {rows:,} current rows x 20 columns "
                  f"(load average {os.getloadavg()[0]:.1f})")
            print(f"{'step':<12}{'seconds':>9}{'x read':>9}{'CPU s':>9}{'CPU x read':>12}{'peak MB':>10}")
            for step, (seconds, cpu, peak) in measured.items():
                print(f"{step:<12}{seconds:>9.2f}{seconds / read_seconds:>9.2f}{cpu:>9.2f}"
                      f"{cpu / read_cpu:>12.2f}{peak:>10.0f}")
            if "evidently" in measured:
                print(
                    f"Evidently / compare: {measured['evidently'][0] / measured['compare'][0]:.1f}x, "
                    f"Evidently / end_to_end: {measured['evidently'][0] / measured['end_to_end'][0]:.1f}x"
                )
            print(
                f"decision {report['decision']}, drifted {sorted(report['drifted_features'])} "
                f"(shifted: {sorted(SHIFTED_NUMERIC | SHIFTED_CATEGORICAL)})"
            )
            summary[rows] = measured
    print("\nTargets (ratios to the pyarrow read of both files, same run):")
    for rows, measured in summary.items():
        end_to_end = measured["end_to_end"][0] / measured["read"][0]
        compare = measured["compare"][0] / measured["read"][0]
        command = measured["cli"][0] / measured["read"][0]
        target = "met" if end_to_end <= END_TO_END_TARGET else "MISSED"
        goal = "met" if end_to_end <= END_TO_END_GOAL else "missed"
        cpu = measured["end_to_end"][1] / measured["read"][1]
        print(f"  {rows:>11,} rows: end_to_end {end_to_end:.2f}x, CPU {cpu:.2f}x (target <= {END_TO_END_TARGET}: "
              f"{target}; goal {END_TO_END_GOAL}: {goal}); the command {command:.2f}x; "
              f"stored-baseline compare {compare:.2f}x")
    ours = ("build", "compare", "end_to_end", "cli")
    peaks = [max(measured[step][2] for step in ours) for measured in summary.values()]
    print(f"  peak MB of build/compare/end_to_end/cli per size: {', '.join(f'{peak:.0f}' for peak in peaks)} "
          f"(target < {MEMORY_TARGET_MB} and flat: {'met' if max(peaks) < MEMORY_TARGET_MB else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
