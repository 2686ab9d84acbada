"""The local runtime's commands: ``replay``, ``runs``, ``seed``, ``upload``, ``endpoint`` and ``demo``.

They register with ``driftloop`` through the ``driftloop.commands`` entry point (pyproject.toml), so the core
command line never imports the local runtime.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from driftloop.console import (
    ExitCode,
    add_json_option,
    add_quiet_option,
    add_scenario_option,
    fail,
    json_on_stdout,
    positive_float,
    positive_int,
    require_workspace,
    write_json,
)
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.layout import DEFAULT_WORKSPACE

SCENARIOS = ("seasonal", "no-drift", "worse-challenger", "online-loser", "failure")  # driftloop.local.demo
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


def parameter_assignment(text: str) -> str:
    """``Name=Value`` of ``--parameter``."""
    name, equals, _ = text.partition("=")
    if not equals or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. PsiThreshold=0.3)")
    return text


def _local(args: argparse.Namespace, *, existing: bool = True):  # noqa: ANN202 - the local runtime's context manager
    from driftloop.application import find_project_dir
    from driftloop.local.parameters import parameter_overrides
    from driftloop.local.runtime import LocalAWS, Profile

    project = Path(args.project).resolve() if args.project else find_project_dir()
    overrides = parameter_overrides(project / "template.yaml", args.parameter)
    workspace = Path(args.workspace)
    if existing:
        require_workspace(workspace)
    return LocalAWS(project, workspace, Profile.load(project, overrides))


def _printer(args: argparse.Namespace):  # noqa: ANN202
    return None if args.quiet else print


def cmd_replay(args: argparse.Namespace) -> int:
    from driftloop.local.runner import Runner

    events = []
    for path in args.events:  # every file is read before anything is delivered
        try:
            events.append((path, json.loads(Path(path).read_text())))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            return fail("replay", f"{path}: cannot read event JSON: {error}", ExitCode.BAD_INPUT)
    unmatched = 0
    with _local(args) as world:
        runner = Runner(world, _printer(args))
        for path, event in events:
            print(f"replaying {path}")
            delivery = runner.replay(event)
            unmatched += not delivery.executions
        failed = _print_outcomes(world, runner.wait(timeout=args.timeout))
    if failed:
        return ExitCode.FAILED
    return ExitCode.NO_RULE if unmatched and not args.allow_unmatched else ExitCode.OK


def _print_outcomes(world: Any, results: dict[str, Any]) -> int:
    """Print each finished run's outcome; return how many failed."""
    from driftloop.local.shop import ledger, model_name

    runs = {run.get("execution"): run for run in ledger(world).runs(model_name(world))}
    failed = 0
    for arn, result in results.items():
        run = runs.get(arn, {})
        failed += run.get("outcome") == "failed" or result.status in FAILED_STATUSES
        print(f"run {run.get('run_id', '?')}: outcome {run.get('outcome', result.status)}"
              + (f" — {run['error']['error']}: {run['error']['cause']}" if run.get("error") else ""))
        if run.get("record_uri"):
            print(f"  run record: {run['record_uri']}  (workspace {world.workspace.root})")
    return failed


def cmd_runs(args: argparse.Namespace) -> int:
    from driftloop.local.shop import ledger, model_name

    with _local(args) as world:
        runs = sorted(ledger(world).runs(model_name(world)), key=lambda run: run["started_at"])
    if args.json_out:
        write_json(args.json_out, runs)
        if not json_on_stdout(args):
            print(f"{len(runs)} run record(s) written to {args.json_out}")
        return ExitCode.OK
    if not runs:
        print("no runs recorded yet")
    for run in runs:
        decision = run.get("evidence", {}).get("drift", {}).get("decision", "-")
        print(f"{run['started_at'][:19]}  {run['run_id']:<48} {run['trigger']['type']:<14} "
              f"drift={decision:<8} outcome={run['outcome']}")
    return ExitCode.OK


def cmd_seed(args: argparse.Namespace) -> int:
    from driftloop.local.runner import Runner
    from driftloop.local.samples import DRIFTED_MONTH, stage_sample_objects
    from driftloop.local.shop import Shop, move_to_month, reset_workspace, seed
    from driftloop.simulate import Scenario, SimulatorConfig

    config = SimulatorConfig(seed=args.seed, n_users=args.users, n_items=args.items,
                             events_per_month=args.events_per_month)
    world_context = _local(args, existing=False)  # the parameters are checked before --reset removes anything
    workspace = Path(args.workspace)
    if workspace.is_dir() and any(workspace.iterdir()) and not (workspace / "s3").exists():
        raise InvalidInputError(f"{workspace} holds other files and is not a driftloop workspace: choose another "
                                "--workspace")
    if args.reset:
        reset_workspace(Path(args.workspace))
    with world_context as world:
        shop = Shop(config, Scenario(args.scenario.replace("-", "_")), 0)
        run = seed(world, Runner(world, _printer(args)), shop, print)
        staged = stage_sample_objects(world, shop.simulator())
        move_to_month(world, shop, DRIFTED_MONTH)
    print(f"seeded: first deployment run {run.get('run_id')} ended {run.get('outcome')}")
    print("staged for the sample events (replay events/*.json to deliver them): " + ", ".join(staged))
    print(f"the simulated customers now live in month {DRIFTED_MONTH}, the month of the staged upload")
    return ExitCode.OK if run.get("outcome") == "promoted" else ExitCode.FAILED


def cmd_upload(args: argparse.Namespace) -> int:
    from driftloop.local.runner import Runner
    from driftloop.local.shop import Shop, incoming_key, upload_bytes, upload_month

    body = None
    if args.file is not None:
        if not Path(args.file).is_file():
            what = "a folder, not a file" if Path(args.file).is_dir() else "no such file"
            raise InvalidInputError(f"--file {args.file}: {what}")
        body = Path(args.file).read_bytes()
    with _local(args) as world:
        runner = Runner(world, _printer(args))
        if body is None:
            shop = Shop.load(world.workspace.root)
            if shop is None:
                raise NotFoundError(f"workspace {args.workspace} has no simulated shop: run `driftloop seed` first")
            key = upload_month(world, shop, args.month)
        else:
            key = args.key or incoming_key(world, Path(args.file).name)
            upload_bytes(world, key, body)
        print(f"uploaded {key}")
        failed = _print_outcomes(world, runner.wait(timeout=args.timeout))
    return ExitCode.FAILED if failed else ExitCode.OK


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
    if state is None:
        raise NotFoundError(f"workspace {args.workspace} has no endpoint yet: `driftloop seed` deploys the "
                            "first champion")
    if args.json_out:
        write_json(args.json_out, state.to_dict())
        if json_on_stdout(args):
            return ExitCode.OK
    print(f"endpoint {state.name}: {state.status}, config {state.config_name}")
    weights = state.weights()
    for variant in state.variants:
        print(f"  {variant.name:<12} {weights[variant.name]:6.1f} %  model {variant.model_name}  "
              f"({variant.instance_count} x {variant.instance_type})")
    return ExitCode.OK


def add_parsers(subparsers: Any) -> None:
    """Add the local runtime's commands to ``driftloop``'s subparsers."""

    def local_command(name: str, help_text: str, *, workspace: str = DEFAULT_WORKSPACE,
                      quiet: str | None = None, reads_workspace: bool = True) -> argparse.ArgumentParser:
        command = subparsers.add_parser(name, help=help_text, description=help_text)
        must_exist = " (must exist: `driftloop seed` creates one)" if reads_workspace else ""
        command.add_argument("--workspace", default=workspace,
                             help=f"folder holding the local AWS state (default {workspace}){must_exist}")
        command.add_argument("--project", help="folder with template.yaml (default: found from here)")
        command.add_argument("--parameter", action="append", metavar="NAME=VALUE", type=parameter_assignment,
                             help="override a template parameter for this command (after local.toml); the "
                             "value is checked against the template's definition like CloudFormation would")
        if quiet:
            add_quiet_option(command, quiet)
        return command

    replay = local_command("replay", "deliver sample EventBridge events through the template's rules",
                           quiet="state lines")
    replay.add_argument("events", nargs="+", metavar="EVENT.json")
    replay.add_argument("--timeout", type=positive_float, default=900.0,
                        help="seconds to wait for the runs to finish (default %(default)s); exit 1 after it")
    replay.add_argument("--allow-unmatched", action="store_true", help="exit 0 even if an event matched no rule")
    replay.set_defaults(run=cmd_replay)

    runs = local_command("runs", "list the recorded runs")
    add_json_option(runs, "the full run records")
    runs.set_defaults(run=cmd_runs)

    seed = local_command("seed", "simulate month 0 and launch the first champion through the pipeline",
                         quiet="state lines", reads_workspace=False)
    add_scenario_option(seed, ("seasonal", "no-drift", "population-shift"), "what the simulated shop does")
    seed.add_argument("--seed", type=int, default=7, help="simulator seed (default %(default)s)")
    seed.add_argument("--users", type=positive_int, default=2000, help="simulated customers (default %(default)s)")
    seed.add_argument("--items", type=positive_int, default=400, help="simulated products (default %(default)s)")
    seed.add_argument("--events-per-month", type=positive_int, default=20_000,
                      help="simulated events per month (default %(default)s)")
    seed.add_argument("--reset", action="store_true", help="start from an empty workspace")
    seed.set_defaults(run=cmd_seed)

    upload = local_command("upload", "put a Parquet file (or a simulated month) under the incoming prefix",
                           quiet="state lines")
    source = upload.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="a Parquet file to upload")
    source.add_argument("--month", type=int, choices=range(1, 13), metavar="1..12",
                        help="a month of the seeded simulator")
    upload.add_argument("--key", help="object key (default: incoming prefix + file name)")
    upload.add_argument("--timeout", type=positive_float, default=900.0,
                        help="seconds to wait for the runs the upload starts (default %(default)s); exit 1 after it")
    upload.set_defaults(run=cmd_upload)

    endpoint = local_command("endpoint", "show the simulated endpoint's variants and weights")
    add_json_option(endpoint, "the endpoint's state")
    endpoint.set_defaults(run=cmd_endpoint)

    demo = local_command("demo", "a fresh workspace: the first champion on month 0, then monthly uploads "
                         "through S3 events, each run's decision, and the report",
                         workspace=f"{DEFAULT_WORKSPACE}/demo", quiet="state lines nor progress",
                         reads_workspace=False)
    add_scenario_option(demo, SCENARIOS, "seasonal (a year, ends promoted), no-drift (promoted), worse-challenger "
                        "(challenger_rejected), online-loser (rolled_back), failure (failed)")
    demo.add_argument("--months", type=positive_int,
                      help="upload only the scenario's first N months (a shorter story may end otherwise: "
                      "the demo says so and still exits 0)")
    demo.set_defaults(run=cmd_demo)

