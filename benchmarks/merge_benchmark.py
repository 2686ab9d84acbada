"""Merge cost and peak memory against plain pyarrow (read everything once, write it once).

    .venv/bin/python benchmarks/merge_benchmark.py --original-gb 2 --new-gb 0.5 --scales 1,4

Generates synthetic interactions (cached under --workdir), then runs, each in a fresh process whose
peak RSS (VmHWM) is measured on its own: the baseline (``ParquetFile.iter_batches`` into one ``ParquetWriter``)
and ``merge_datasets``. Prints a table; the targets are merge/baseline time <= 1.5 and a merge peak
RSS under 1 GB that does not grow with the scale.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_FILE = 2_000_000
DAY_US = 86_400_000_000


USERS = pa.array(np.char.add("u", np.arange(2_000_000).astype(str)))
ITEMS = pa.array(np.char.add("i", np.arange(50_000).astype(str)))


def _events(rows: int, rng: np.random.Generator, days: int) -> pa.Table:
    def pick(dictionary: pa.Array) -> pa.Array:
        return dictionary.take(pa.array(rng.integers(0, len(dictionary), rows)))

    def choice(values: list[str]) -> pa.Array:
        return pick(pa.array(values))

    times = np.datetime64("2026-01-01", "us") + rng.integers(0, days * DAY_US, rows).astype("timedelta64[us]")
    return pa.table(
        {
            "user_id": pick(USERS),
            "item_id": pick(ITEMS),
            "event_type": choice(["view", "cart", "purchase"]),
            "event_time": pa.array(np.sort(times), pa.timestamp("us", tz="UTC")),
            "age_band": choice(["18-24", "25-34", "35-44", "45-54", "55+"]),
            "region": choice(["north", "south", "east", "west", "centre"]),
            "device": choice(["mobile", "desktop", "tablet"]),
            "item_category": choice([f"category-{n}" for n in range(40)]),
            "price": pa.array(rng.gamma(2.0, 20.0, rows)),
            "discount": pa.array(rng.uniform(0, 0.5, rows)),
            "session_minutes": pa.array(rng.exponential(8.0, rows)),
            "user_tenure_days": pa.array(rng.integers(0, 2000, rows).astype(np.float64)),
        }
    )


def _generate(folder: Path, target_bytes: float, seed: int, days: int, duplicates_from: Path | None) -> None:
    """Files of ROWS_PER_FILE rows until ``target_bytes``; a new set repeats 5% of an original file."""
    if folder.exists():
        return
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written, number = 0, 0
    while written < target_bytes:
        table = _events(ROWS_PER_FILE, rng, days)
        if duplicates_from is not None and number == 0:
            repeated = pq.read_table(next(iter(sorted(duplicates_from.glob("*.parquet"))))).slice(
                0, ROWS_PER_FILE // 20
            )
            table = pa.concat_tables([table.slice(0, ROWS_PER_FILE - repeated.num_rows), repeated])
        path = partial / f"part-{number:04d}.parquet"
        pq.write_table(table, path)
        written += path.stat().st_size
        number += 1
    partial.rename(folder)


BASELINE = """
import json, sys, time
def peak_mb():  # VmHWM: this process image only (ru_maxrss would include the parent before exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
import pyarrow.parquet as pq
paths, out = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
writer = None
for path in paths:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        if writer is None:
            writer = pq.ParquetWriter(out, batch.schema, compression="snappy")
        writer.write_batch(batch)
writer.close()
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": peak_mb()}))
"""

MERGE = """
import json, sys, time
def peak_mb():  # VmHWM: this process image only (ru_maxrss would include the parent before exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
import pyarrow.fs as pafs
from driftloop.data.merge import merge_datasets
from driftloop.storage import local_source
original, new, out = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
manifest = merge_datasets(local_source(original), [local_source(new)], pafs.LocalFileSystem(), out)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": peak_mb(),
                  "rows_in": manifest.rows_in, "rows_out": manifest.rows_out,
                  "duplicates": manifest.duplicates_dropped}))
"""


def _run(script: str, *args: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*.parquet"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original-gb", type=float, default=2.0)
    parser.add_argument("--new-gb", type=float, default=0.5)
    parser.add_argument("--scales", default="1,4", help="comma-separated multiples of the sizes")
    parser.add_argument("--days", type=int, default=180, help="event dates spanned (at scale 1)")
    parser.add_argument("--workdir", default="/tmp/driftloop-merge-benchmark")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    rows = []
    for scale in (float(value) for value in args.scales.split(",")):
        data = workdir / f"x{scale:g}"
        _generate(data / "original", args.original_gb * scale * 1e9, seed=1, days=args.days, duplicates_from=None)
        _generate(data / "new", args.new_gb * scale * 1e9, seed=2, days=args.days, duplicates_from=data / "original")
        paths = sorted(str(path) for folder in ("original", "new") for path in (data / folder).glob("*.parquet"))
        output = workdir / "out"
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        baseline = _run(BASELINE, json.dumps(paths), str(output / "baseline.parquet"))
        (output / "baseline.parquet").unlink()
        merged = _run(MERGE, str(data / "original"), str(data / "new"), str(output / "v=bench"))
        shutil.rmtree(output)
        rows.append((scale, (_size(data / "original") + _size(data / "new")) / 1e9, baseline, merged))

    print(
        f"{'scale':>5} {'input GB':>8} {'rows in':>11} {'dups':>9} {'base s':>7} {'merge s':>8} "
        f"{'ratio':>6} {'base MB':>8} {'merge MB':>9}"
    )
    for scale, gigabytes, baseline, merged in rows:
        print(
            f"{scale:>5g} {gigabytes:>8.2f} {merged['rows_in']:>11,} {merged['duplicates']:>9,} "
            f"{baseline['seconds']:>7.1f} {merged['seconds']:>8.1f} {merged['seconds'] / baseline['seconds']:>6.2f} "
            f"{baseline['peak_mb']:>8.0f} {merged['peak_mb']:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
