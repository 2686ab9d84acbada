"""Reading Data Capture: one GET after another against ``fetch_in_order``, and an A/B test's looks with and
without the capture digest.

    PYTHONPATH=src .venv/bin/python benchmarks/capture_read_benchmark.py [--files 1000] [--latency-ms 20]

What AnalyseAB, the concept-drift check and the report do with each file: fetch it, then parse its
records (``CaptureReader``). The fetch is simulated: it waits ``--latency-ms`` (an S3 GET from Lambda
in the same region takes tens of milliseconds, more for the first bytes of a cold object) and returns
a real capture file of ``--records`` lines, the format the simulated endpoint writes. No AWS: this
measures the overlap of waits and the parsing, not S3.

The first table: seconds and the speed-up against the sequential read, per worker count; every way
reads the same records. The second: an A/B test of K looks whose window grows until ``--files`` files
have arrived, evenly over a week of hour folders. Each look runs the real ``read_captured`` against an
in-memory bucket whose GETs, PUTs and listing pages each wait ``--latency-ms``: from scratch (every
file of the window, every look) and with the capture digest (the previous look's digest read, only the
new files fetched, this look's digest written). Requests, seconds and their ratios are measured in the
same run, and every look's rows and counts are checked to be the same both ways.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from driftloop.capture import CaptureReader, capture_record
from driftloop.fetching import fetch_in_order
from driftloop.layout import ab_capture_digest_key, capture_key
from driftloop.pipeline.capture_digest import load_digest, save_digest
from driftloop.pipeline.feedback import read_captured

BUCKET, ENDPOINT, VARIANTS = "bucket", "endpoint", ("champion", "challenger")
WEEK_START = datetime(2026, 1, 5, tzinfo=UTC)


def capture_file(index: int, records: int, start: datetime | None = None) -> bytes:
    start = start or datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)
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


class SlowBucket:
    """The part of an S3 client ``read_captured`` and the digest use, in memory; every request waits
    ``latency`` seconds and is counted by operation."""

    def __init__(self, latency: float) -> None:
        self.objects: dict[str, bytes] = {}
        self.latency = latency
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _request(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] += 1
        time.sleep(self.latency)

    def get_paginator(self, operation: str) -> SlowBucket:
        return self

    def paginate(self, Bucket: str, Prefix: str, Delimiter: str | None = None,  # noqa: N803 - boto3's names
                 StartAfter: str = "") -> list[dict[str, Any]]:
        keys = sorted(key for key in self.objects if key.startswith(Prefix) and key > StartAfter)
        if Delimiter:
            self._request("ListObjectsV2")
            folders = sorted({Prefix + key[len(Prefix):].split(Delimiter, 1)[0] + Delimiter for key in keys})
            return [{"CommonPrefixes": [{"Prefix": folder} for folder in folders]}]
        pages = [keys[start:start + 1000] for start in range(0, max(len(keys), 1), 1000)]
        for _ in pages:
            self._request("ListObjectsV2")
        return [{"Contents": [{"Key": key, "ETag": f'"{hash(self.objects[key])}"'} for key in page]} for page in pages]

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self._request("GetObject")
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": Key}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:  # noqa: N803
        self._request("PutObject")
        self.objects[Key] = Body
        return {}


def ab_test(files: int, records: int, looks: int, latency: float,
            with_digest: bool) -> tuple[dict[str, int], list[float], list[Any]]:
    """Requests, each look's seconds and each look's (rows, counts) of an A/B test of ``looks`` looks while
    ``files`` capture files arrive evenly over a week."""
    bucket = SlowBucket(latency)
    services = SimpleNamespace(s3=bucket, settings=SimpleNamespace(data_bucket=BUCKET, endpoint_name=ENDPOINT))
    hours = [WEEK_START + timedelta(hours=168 * index // files) for index in range(files)]
    contents = [capture_file(index, records, hours[index]) for index in range(files)]
    seen, seconds, arrived = [], [], 0
    for look in range(looks):
        while arrived < files * (look + 1) // looks:
            key = capture_key(ENDPOINT, VARIANTS[arrived % 2], hours[arrived], f"part-{arrived:05d}")
            bucket.objects[key] = contents[arrived]
            arrived += 1
        reader = CaptureReader(known_variants=set(VARIANTS))
        started = time.perf_counter()
        previous = None
        if with_digest and look:
            previous, _ = load_digest(bucket, BUCKET, ab_capture_digest_key("run", 0, look - 1), reader.known_variants)
        captured = read_captured(services, reader, WEEK_START, None, previous)
        if with_digest:
            save_digest(bucket, BUCKET, ab_capture_digest_key("run", 0, look), captured.digest)
        seconds.append(time.perf_counter() - started)
        seen.append((captured.rows, reader.evidence()))
    return dict(bucket.requests), seconds, seen


def looks_table(files: int, records: int, latency_ms: float, looks: list[int]) -> bool:
    print(f"\nAn A/B test's looks: {files} files x {records} records arriving evenly over a week, "
          f"{latency_ms:g} ms per request (GET, PUT, LIST page)\n")
    print("| looks | from scratch: GETs | s | last look s | digest: GETs | PUTs | s | last look s | GETs saved "
          "| x faster | same |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    same = True
    for count in looks:
        full_requests, full_seconds, full_seen = ab_test(files, records, count, latency_ms / 1000, False)
        digest_requests, digest_seconds, digest_seen = ab_test(files, records, count, latency_ms / 1000, True)
        equal = full_seen == digest_seen
        same &= equal
        full_gets, digest_gets = full_requests["GetObject"], digest_requests["GetObject"]
        print(f"| {count} | {full_gets} | {sum(full_seconds):.2f} | {full_seconds[-1]:.2f} | {digest_gets} "
              f"| {digest_requests.get('PutObject', 0)} | {sum(digest_seconds):.2f} | {digest_seconds[-1]:.2f} "
              f"| {full_gets / digest_gets:.1f}x | {sum(full_seconds) / sum(digest_seconds):.1f} | {equal} |")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000, help="capture files in the window")
    parser.add_argument("--records", type=int, default=20, help="requests per file")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated wait of one GET")
    parser.add_argument("--workers", default="4,16,32", help="worker counts to compare with the sequential read")
    parser.add_argument("--looks", default="1,6,24", help="A/B looks over the window, to compare with the digest")
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
    same_looks = looks_table(args.files, args.records, args.latency_ms, [int(value) for value in args.looks.split(",")])
    print("\n" + json.dumps({"same_records": same, "same_looks": same_looks}))
    return 0 if same and same_looks else 1


if __name__ == "__main__":
    sys.exit(main())
