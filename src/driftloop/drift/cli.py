"""``driftloop drift --baseline PATH --current PATH [--json OUT] [--html OUT]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from driftloop.console import ExitCode, add_json_option, fail, json_on_stdout, write_json
from driftloop.drift.baseline import Baseline, build_baseline
from driftloop.drift.compare import compare_to_baseline
from driftloop.drift.model_monitor import baseline_from_model_monitor
from driftloop.drift.policy import DriftPolicy
from driftloop.errors import DriftloopError
from driftloop.storage import local_source


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "drift",
        help="compare current data with a baseline and decide none/warn/retrain",
        description="PATH is a Parquet file, a folder of Parquet files, a saved baseline (.json), "
        "or a Model Monitor statistics.json.",
    )
    parser.add_argument("--baseline", required=True, help="reference data or saved baseline")
    parser.add_argument("--current", required=True, help="current data (Parquet file or folder)")
    add_json_option(parser, "the drift report")
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


def load_policy(path: str) -> DriftPolicy:
    """A ``DriftPolicy`` from a JSON object of its fields."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise DriftloopError(f"{path}: cannot read policy JSON ({error})") from error
    if not isinstance(document, dict):
        raise DriftloopError(f"{path}: a policy is a JSON object of DriftPolicy fields")
    try:
        return DriftPolicy.from_dict(document)
    except TypeError as error:
        raise DriftloopError(f"{path}: not a DriftPolicy ({error})") from error


def check_outputs(outputs: dict[str, str | None], inputs: list[str | None]) -> None:
    """Refuse outputs that would overwrite an input, land inside an input folder, or each other."""
    sources = [Path(path).resolve() for path in inputs if path]
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if not path:
            continue
        target = Path(path).resolve()
        for source in sources:
            if target == source or source in target.parents:
                raise DriftloopError(f"{option} {path} would write over or into the input {source}: "
                                     "choose another path")
        if target in seen:
            raise DriftloopError(f"{seen[target]} and {option} name the same file {path}")
        seen[target] = option


def _write(path: str, text: str) -> None:
    """Write ``text`` to ``path``, creating its folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def run(args: argparse.Namespace) -> int:
    try:
        check_outputs(
            {"--json": None if json_on_stdout(args) else args.json_out, "--html": args.html_out,
             "--save-baseline": args.save_baseline},
            [args.baseline, args.current, args.policy],
        )
    except DriftloopError as error:
        return fail("drift", error, ExitCode.USAGE)
    try:
        baseline = load_baseline(args.baseline)
        policy = load_policy(args.policy) if args.policy else DriftPolicy()
        report = compare_to_baseline(baseline, local_source(args.current), policy)
        if args.save_baseline:
            _write(args.save_baseline, json.dumps(baseline.to_dict()))
        if args.json_out:
            write_json(args.json_out, report.to_dict())
        if args.html_out:
            _write(args.html_out, report.to_html())
    except (DriftloopError, OSError, ValueError) as error:
        return fail("drift", error, ExitCode.BAD_INPUT)
    if not json_on_stdout(args):
        print(f"decision: {report.decision}")
        for reason in report.reasons:
            print(f"  - {reason}")
    severity = {"none": 0, "warn": 1, "retrain": 2}
    threshold = {"never": 3, "warn": 1, "retrain": 2}[args.fail_on]
    return ExitCode.FAILED if severity[report.decision] >= threshold else ExitCode.OK
