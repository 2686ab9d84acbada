"""``driftloop merge``: merge local Parquet into a new dataset version folder."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from driftloop.console import ExitCode, Progress, add_json_option, add_quiet_option, fail, json_on_stdout, write_json
from driftloop.data.manifest import find_manifest
from driftloop.data.merge import DEFAULT_KEY, MergeConfig, dataset_source, merge_datasets
from driftloop.errors import DriftloopError, InvalidInputError
from driftloop.layout import manifest_key, version_dir
from driftloop.storage import ParquetSource, local_source


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "merge",
        help="merge the current training set with new uploads into a new dataset version",
        description="Writes DIR/v=<run id>/ (partitioned Parquet, then _manifest.json) and prints the "
        "manifest path. PATH is a Parquet file, a folder of Parquet files, or a committed version folder.",
    )
    parser.add_argument("--original", required=True, metavar="PATH", help="the current training set")
    parser.add_argument("--new", required=True, action="append", metavar="PATH", help="new data (repeatable)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder that holds the versions")
    parser.add_argument(
        "--key",
        default=",".join(DEFAULT_KEY),
        metavar="COL,...",
        help="de-duplication key (default: %(default)s)",
    )
    parser.add_argument(
        "--run-id",
        help="version name: letters, digits, '.', '_', '-' (default: the current UTC time); "
        "the same name with other inputs is refused",
    )
    parser.add_argument(
        "--max-bad-share",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="a bad file (not Parquet, unreadable, missing key columns) is quarantined and skipped; the merge "
        "fails, writing nothing, when more than this share (0 to 1) of the --original files, or of the --new "
        "files, is bad (default: %(default)s)",
    )
    add_json_option(parser, "the manifest")
    add_quiet_option(parser)
    parser.set_defaults(run=run)
    return parser


def _source(path: str) -> ParquetSource:
    filesystem = pafs.LocalFileSystem()
    if find_manifest(filesystem, path) is not None:
        return dataset_source(filesystem, path)
    source = local_source(path)
    if not source.paths:
        raise InvalidInputError(f"{path}: no Parquet files there")
    return source


def run(args: argparse.Namespace) -> int:
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") if args.run_id is None else args.run_id
    key = tuple(column.strip() for column in args.key.split(",") if column.strip())
    try:
        out_dir = version_dir(args.out, run_id)
        partition_by = "event_date" if "event_time" in key else None
        config = MergeConfig(key=key, partition_by=partition_by, max_bad_share=args.max_bad_share)
    except (DriftloopError, ValueError) as error:
        return fail("merge", error, ExitCode.USAGE)
    try:
        with Progress("merge", quiet=args.quiet):
            manifest = merge_datasets(
                _source(args.original), [_source(path) for path in args.new], pafs.LocalFileSystem(), out_dir, config
            )
    except (DriftloopError, ValueError, OSError, pa.ArrowException) as error:
        return fail("merge", error, ExitCode.BAD_INPUT)
    for entry in manifest.quarantined:
        print(f"quarantined {entry['source']}: {entry['reason']}", file=sys.stderr)
    if args.json_out:
        write_json(args.json_out, manifest.to_dict())
        if json_on_stdout(args):
            return ExitCode.OK
    print(manifest_key(manifest.version_dir))
    return ExitCode.OK
