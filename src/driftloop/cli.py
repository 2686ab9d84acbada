"""``driftloop``: the local runtime and the core tools, from one command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from driftloop import __version__
from driftloop.backtest import cli as backtest_cli
from driftloop.data import cli as merge_cli
from driftloop.drift import cli as drift_cli
from driftloop.errors import DriftloopError
from driftloop.model import cli as train_cli
from driftloop.report import cli as report_cli
from driftloop.simulate import cli as simulate_cli
from driftloop.traffic import cli as ab_cli

DEFAULT_WORKSPACE = ".driftloop"
SCENARIOS = ("seasonal", "no-drift", "worse-challenger", "online-loser", "failure")  # driftloop.local.demo


def _local(args: argparse.Namespace, **kwargs: Any):  # noqa: ANN202 - a context manager from the local runtime
    from driftloop.local.runtime import FaultPlan, LocalAWS, Profile, find_project_dir

    project = Path(args.project).resolve() if args.project else find_project_dir()
    overrides = dict(item.split("=", 1) for item in (args.parameter or []))
    return LocalAWS(project, Path(args.workspace), Profile.load(project, overrides), kwargs.get("faults", FaultPlan()))


def _printer(args: argparse.Namespace):  # noqa: ANN202
    return None if getattr(args, "quiet", False) else print


def cmd_replay(args: argparse.Namespace) -> int:
    from driftloop.local.runner import Runner

    unmatched = 0
    with _local(args) as world:
        runner = Runner(world, _printer(args))
        for path in args.events:
            try:
                event = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as error:
                print(f"{path}: cannot read event JSON: {error}", file=sys.stderr)
                return 2
            print(f"replaying {path}")
            delivery = runner.replay(event)
            unmatched += not delivery.executions
        results = runner.wait(timeout=args.timeout)
        _print_outcomes(world, results)
    return 0 if not unmatched or args.allow_unmatched else 3


def _print_outcomes(world: Any, results: dict[str, Any]) -> None:
    from driftloop.local.shop import ledger, model_name

    runs = {run.get("execution"): run for run in ledger(world).runs(model_name(world))}
    for arn, result in results.items():
        run = runs.get(arn, {})
        print(f"run {run.get('run_id', '?')}: outcome {run.get('outcome', result.status)}"
              + (f" — {run['error']['error']}: {run['error']['cause']}" if run.get("error") else ""))
        if run.get("record_uri"):
            print(f"  run record: {run['record_uri']}  (workspace {world.workspace.root})")


def cmd_runs(args: argparse.Namespace) -> int:
    from driftloop.local.shop import ledger, model_name

    with _local(args) as world:
        runs = sorted(ledger(world).runs(model_name(world)), key=lambda run: run["started_at"])
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    if not runs:
        print("no runs recorded yet")
    for run in runs:
        decision = run.get("evidence", {}).get("drift", {}).get("decision", "-")
        print(f"{run['started_at'][:19]}  {run['run_id']:<48} {run['trigger']['type']:<14} "
              f"drift={decision:<8} outcome={run['outcome']}")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from driftloop.local.runner import Runner
    from driftloop.local.samples import DRIFTED_MONTH, stage_sample_objects
    from driftloop.local.shop import Shop, move_to_month, reset_workspace, seed
    from driftloop.simulate import Scenario, SimulatorConfig

    if args.reset:
        reset_workspace(Path(args.workspace))
    with _local(args) as world:
        config = SimulatorConfig(seed=args.seed, n_users=args.users, n_items=args.items,
                                 events_per_month=args.events_per_month)
        shop = Shop(config, Scenario(args.scenario.replace("-", "_")), 0)
        run = seed(world, Runner(world, _printer(args)), shop, print)
        staged = stage_sample_objects(world, shop.simulator())
        move_to_month(world, shop, DRIFTED_MONTH)
    print(f"seeded: first deployment run {run.get('run_id')} ended {run.get('outcome')}")
    print("staged for the sample events (replay events/*.json to deliver them): " + ", ".join(staged))
    print(f"the simulated customers now live in month {DRIFTED_MONTH}, the month of the staged upload")
    return 0 if run.get("outcome") == "promoted" else 1


def cmd_upload(args: argparse.Namespace) -> int:
    from driftloop.local.runner import Runner
    from driftloop.local.shop import Shop, incoming_key, upload_bytes, upload_month

    with _local(args) as world:
        runner = Runner(world, _printer(args))
        if args.month is not None:
            shop = Shop.load(world.workspace.root)
            if shop is None:
                print("this workspace has no simulated shop: run `driftloop seed` first", file=sys.stderr)
                return 2
            key = upload_month(world, shop, args.month)
        else:
            key = args.key or incoming_key(world, Path(args.file).name)
            upload_bytes(world, key, Path(args.file).read_bytes())
        print(f"uploaded {key}")
        results = runner.wait(timeout=args.timeout)
        _print_outcomes(world, results)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from driftloop.local.demo import run_demo

    started = time.time()
    code = run_demo(args)
    print(f"demo finished in {time.time() - started:.0f} s")
    return code


def cmd_endpoint(args: argparse.Namespace) -> int:
    from driftloop.local.adapters import SimulatedEndpoint

    with _local(args) as world:
        environment = world.app.environment
        state = SimulatedEndpoint(world.workspace.root, environment["ENDPOINT_NAME"], world.client("s3")).describe()
    print(json.dumps(state.to_dict() if state else None, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop",
        description="Keep a SageMaker recommender fresh. Local commands run template.yaml and the state "
        "machine against an embedded AWS (moto) kept in --workspace.",
    )
    parser.add_argument("--version", action="version", version=f"driftloop {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def local_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = subparsers.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--workspace", default=DEFAULT_WORKSPACE,
                             help=f"folder holding the local AWS state (default {DEFAULT_WORKSPACE})")
        command.add_argument("--project", help="folder with template.yaml (default: found from here)")
        command.add_argument("--parameter", action="append", metavar="NAME=VALUE",
                             help="override a template parameter for this command (after local.toml)")
        command.add_argument("--quiet", action="store_true", help="do not print each state")
        return command

    replay = local_command("replay", "deliver sample EventBridge events through the template's rules")
    replay.add_argument("events", nargs="+", metavar="EVENT.json")
    replay.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for runs to finish")
    replay.add_argument("--allow-unmatched", action="store_true", help="exit 0 even if an event matched no rule")
    replay.set_defaults(run=cmd_replay)

    runs = local_command("runs", "list the recorded runs")
    runs.add_argument("--json", action="store_true", help="print the full run records as JSON")
    runs.set_defaults(run=cmd_runs)

    seed = local_command("seed", "simulate month 0 and launch the first champion through the pipeline")
    seed.add_argument("--scenario", choices=("seasonal", "no-drift", "population-shift"), default="seasonal")
    seed.add_argument("--seed", type=int, default=7, help="simulator seed")
    seed.add_argument("--users", type=int, default=2000, help="simulated customers")
    seed.add_argument("--items", type=int, default=400, help="simulated products")
    seed.add_argument("--events-per-month", type=int, default=20_000, help="simulated events per month")
    seed.add_argument("--reset", action="store_true", help="start from an empty workspace")
    seed.set_defaults(run=cmd_seed)

    upload = local_command("upload", "put a Parquet file (or a simulated month) under the incoming prefix")
    source = upload.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="a Parquet file to upload")
    source.add_argument("--month", type=int, help="a month of the seeded simulator (1..12)")
    upload.add_argument("--key", help="object key (default: incoming prefix + file name)")
    upload.add_argument("--timeout", type=float, default=900.0)
    upload.set_defaults(run=cmd_upload)

    endpoint = local_command("endpoint", "show the simulated endpoint's variants and weights")
    endpoint.set_defaults(run=cmd_endpoint)

    demo = local_command("demo", "a fresh workspace: the first champion on month 0, then monthly uploads "
                         "through S3 events, each run's decision, and the report")
    demo.set_defaults(workspace=f"{DEFAULT_WORKSPACE}/demo")
    demo.add_argument("--scenario", choices=SCENARIOS, default="seasonal",
                      help="seasonal (a year, ends promoted), no-drift, worse-challenger (challenger_rejected), "
                      "online-loser (rolled_back), failure (failed)")
    demo.add_argument("--months", type=int, help="upload only the scenario's first N months")
    demo.set_defaults(run=cmd_demo)

    drift_cli.add_parser(subparsers)
    merge_cli.add_parser(subparsers)
    train_cli.add_parser(subparsers)
    simulate_cli.add_parser(subparsers)
    report_cli.add_parser(subparsers)
    backtest_cli.add_parser(subparsers)
    ab_cli.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (`| head`): nothing to say, and nothing left to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (DriftloopError, OSError, pa.ArrowException) as error:
        print(f"driftloop {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
