"""``driftloop drift --baseline PATH --current PATH [--json OUT] [--html OUT]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from driftloop.drift.baseline import Baseline, build_baseline
from driftloop.drift.compare import compare_to_baseline
from driftloop.drift.model_monitor import baseline_from_model_monitor
from driftloop.drift.policy import DriftPolicy
from driftloop.errors import DriftloopError
from driftloop.storage import local_source

EXIT_ERROR = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "drift",
        help="compare current data with a baseline and decide none/warn/retrain",
        description="PATH is a Parquet file, a folder of Parquet files, a saved baseline (.json), "
        "or a Model Monitor statistics.json.",
    )
    parser.add_argument("--baseline", required=True, help="reference data or saved baseline")
    parser.add_argument("--current", required=True, help="current data (Parquet file or folder)")
    parser.add_argument("--json", dest="json_out", help="write the JSON report here")
    parser.add_argument("--html", dest="html_out", help="write the HTML report here")
    parser.add_argument("--policy", help="JSON file with DriftPolicy fields (thresholds, overrides...)")
    parser.add_argument("--save-baseline", help="also write the baseline summary built from --baseline")
    parser.add_argument(
        "--fail-on",
        choices=("never", "warn", "retrain"),
        default="never",
        help="exit with 1 when the decision is at least this (for CI); default never",
    )
    parser.set_defaults(run=run)
    return parser


def load_baseline(path: str) -> Baseline:
    """A saved driftloop baseline or Model Monitor statistics (JSON), else Parquet data to profile."""
    if path.endswith(".json"):
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DriftloopError(f"{path}: cannot read baseline JSON ({error})") from error
        if isinstance(document, dict) and document.get("format") == "driftloop-baseline":
            return Baseline.from_dict(document)
        return baseline_from_model_monitor(document)
    return build_baseline(local_source(path))


def run(args: argparse.Namespace) -> int:
    try:
        baseline = load_baseline(args.baseline)
        policy = DriftPolicy.from_dict(json.loads(Path(args.policy).read_text())) if args.policy else DriftPolicy()
        report = compare_to_baseline(baseline, local_source(args.current), policy)
    except (DriftloopError, FileNotFoundError, ValueError) as error:
        print(f"driftloop drift: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.save_baseline:
        Path(args.save_baseline).write_text(json.dumps(baseline.to_dict()))
    document = report.to_dict()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(document, indent=2))
    if args.html_out:
        Path(args.html_out).write_text(report.to_html())
    print(f"decision: {report.decision}")
    for reason in report.reasons:
        print(f"  - {reason}")
    severity = {"none": 0, "warn": 1, "retrain": 2}
    threshold = {"never": 3, "warn": 1, "retrain": 2}[args.fail_on]
    return 1 if severity[report.decision] >= threshold else 0
