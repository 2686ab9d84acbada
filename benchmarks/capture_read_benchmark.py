"""Reading a window of Data Capture files: one GET after another against ``fetch_in_order``.

    PYTHONPATH=src .venv/bin/python benchmarks/capture_read_benchmark.py [--files 1000] [--latency-ms 20]

What AnalyseAB, the concept-drift check and the report do with each file: fetch it, then parse its
records (``CaptureReader``). The fetch is simulated: it waits ``--latency-ms`` (an S3 GET from Lambda
in the same region takes tens of milliseconds, more for the first bytes of a cold object) and returns
a real capture file of ``--records`` lines, the format the simulated endpoint writes. Prints seconds and
the speed-up against the sequential read, measured in the same run, per worker count; every way reads
the same records. No AWS: this measures the overlap of waits, not S3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

from driftloop.capture import CaptureReader, capture_record
from driftloop.fetching import fetch_in_order


def capture_file(index: int, records: int) -> bytes:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)
    lines = [capture_record(f"e-{index}-{record}", start + timedelta(seconds=record),
                            {"user_id": f"u{record}", "k": 10},
                            {"user_id": f"u{record}", "items": [f"i{item}" for item in range(10)]})
             for record in range(records)]
    return ("\n".join(lines) + "\n").encode()


def read_window(files: int, content: bytes, latency: float, workers: int | None) -> tuple[float, int]:
    def fetch(key: int) -> bytes:
        time.sleep(latency)
        return content

    reader = CaptureReader()
    started = time.perf_counter()
    fetched = ((key, fetch(key)) for key in range(files)) if workers is None else \
        fetch_in_order(fetch, range(files), workers=workers)
    records = sum(len(reader.read(body, "champion", f"file-{key}")) for key, body in fetched)
    return time.perf_counter() - started, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000, help="capture files in the window")
    parser.add_argument("--records", type=int, default=20, help="requests per file")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated wait of one GET")
    parser.add_argument("--workers", default="4,16,32", help="worker counts to compare with the sequential read")
    args = parser.parse_args(argv)
    content = capture_file(0, args.records)
    sequential, expected = read_window(args.files, content, args.latency_ms / 1000, None)
    rows = [("sequential", sequential, expected)]
    for workers in (int(value) for value in args.workers.split(",")):
        rows.append((f"{workers} workers", *read_window(args.files, content, args.latency_ms / 1000, workers)))
    print(f"{args.files} files x {args.records} records, {args.latency_ms:g} ms per GET, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| read | seconds | x faster than sequential | records |\n|---|---:|---:|---:|")
    for name, seconds, records in rows:
        print(f"| {name} | {seconds:.2f} | {sequential / seconds:.1f} | {records} |")
    same = all(records == expected for *_, records in rows)
    print("\n" + json.dumps({"same_records": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
