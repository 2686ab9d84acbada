"""``driftloop report [--workspace DIR | --aws-bucket NAME] [--out DIR]``: write the audit report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from driftloop.console import ExitCode, fail
from driftloop.errors import DriftloopError
from driftloop.layout import DEFAULT_WORKSPACE
from driftloop.report.build import build_report
from driftloop.report.reading import ObjectStore, S3Store, WorkspaceStore


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML page (and PNG charts) auditing every run",
        description="Reads run records (runs/), drift reports and A/B decisions (reports/) and the feedback "
        "(the feedback log under feedback/, else Data Capture under datacapture/ joined with the purchases "
        "under incoming/ and purchases/) of the data bucket: of a local workspace, or of a bucket in AWS with "
        "--aws-bucket.",
    )
    parser.add_argument("--workspace", default=DEFAULT_WORKSPACE,
                        help=f"local workspace to read (default {DEFAULT_WORKSPACE})")
    parser.add_argument("--bucket", help="which bucket of the workspace is the data bucket (default: the one "
                        "holding run records)")
    parser.add_argument("--aws-bucket", metavar="NAME",
                        help="read this data bucket in AWS (boto3's usual credentials) instead of a workspace")
    parser.add_argument("--out", help="output folder (default <workspace>/report, or driftloop-report with "
                        "--aws-bucket)")
    parser.set_defaults(run=run)
    return parser


def _store(args: argparse.Namespace) -> ObjectStore:
    if args.aws_bucket:
        import boto3

        return S3Store(boto3.client("s3"), args.aws_bucket)
    return WorkspaceStore(Path(args.workspace), args.bucket)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else (
        Path("driftloop-report") if args.aws_bucket else Path(args.workspace) / "report")
    try:
        report = build_report(_store(args), out)
    except (DriftloopError, OSError) as error:
        return fail("report", error, ExitCode.BAD_INPUT)
    charts = sorted(path.name for path in out.glob("*.png"))
    print(f"wrote {report}" + (f" and {', '.join(charts)}" if charts else ""))
    return ExitCode.OK
