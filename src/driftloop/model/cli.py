"""``driftloop train --data PATH --out DIR``: the training entry point on any interactions Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pyarrow as pa

from driftloop.console import ExitCode, Progress, add_json_option, add_quiet_option, fail, json_on_stdout, write_json
from driftloop.errors import DriftloopError
from driftloop.model.train import REPORTED_K
from driftloop.model.train import run as run_training

_OPTIONAL = {
    "user_col": "user column (default user_id)",
    "item_col": "item column (default item_id)",
    "time_col": "event time column: timestamp, date, epoch seconds or ISO string (default event_time)",
    "event_type_col": "event type column, 'none' if there is none (default event_type)",
    "algorithm": "ease (default; sparse item_knn when more than max_items items), item_knn or popularity",
    "max_items": "largest catalog fitted by EASE (default 10000); larger ones use sparse item-kNN",
    "memory_limit_gb": "fail before fitting when the estimated peak memory exceeds this (default 12)",
    "train_until": "ISO instant: rows at/after it are held out for the metrics and never fitted",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train the recommender on a Parquet file or folder",
        description="Train the recommender exactly as the SageMaker job does; write the model and "
        "metrics.json into --out and print model vs popularity metrics.",
    )
    parser.add_argument("--data", required=True, help="interactions Parquet file or folder (searched recursively)")
    parser.add_argument("--out", required=True, help="folder for the model and metrics.json")
    add_json_option(parser, "the metrics (metrics.json)")
    add_quiet_option(parser)
    for name, help_text in _OPTIONAL.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=help_text)
    parser.set_defaults(run=run)
    return parser


def format_metrics_table(metrics: dict[str, Any]) -> str:
    baseline = metrics["baseline_popularity"]
    rows = [f"{'metric':<16}{'model':>10}{'popularity':>12}{'ratio':>8}"]
    for name in ("ndcg", "recall", "hit_rate"):
        key = f"{name}_at_{REPORTED_K}"
        ratio = metrics[key] / baseline[key] if baseline[key] else float("inf")
        rows.append(f"{key:<16}{metrics[key]:>10.4f}{baseline[key]:>12.4f}{ratio:>8.2f}")
    rows.append(
        f"users evaluated: {metrics['users_evaluated']}, cold users skipped: {metrics['cold_users_skipped']}, "
        f"training time: {metrics['training_seconds']:.1f} s"
    )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    if not Path(args.data).exists():
        return fail("train", f"--data {args.data}: no such file or folder", ExitCode.BAD_INPUT)
    environ = {"SM_CHANNEL_TRAIN": args.data, "SM_MODEL_DIR": args.out, "SM_OUTPUT_DATA_DIR": args.out}
    hyperparameters = [
        token
        for name in _OPTIONAL
        if getattr(args, name, None) is not None
        for token in (f"--{name}", getattr(args, name))
    ]
    try:
        with Progress("train", quiet=args.quiet):
            outcome = run_training(environ, hyperparameters)
    except (DriftloopError, OSError, pa.ArrowException) as error:
        return fail("train", error, ExitCode.BAD_INPUT)
    if args.json_out:
        write_json(args.json_out, outcome.metrics)
        if json_on_stdout(args):
            return ExitCode.OK
    print(format_metrics_table(outcome.metrics))
    print(f"model and metrics.json written to {args.out}")
    return ExitCode.OK
