"""``driftloop simulate --out DIR [--ground-truth DIR] [--scenario S] [--months 0-12] [--seed N] ...``."""

from __future__ import annotations

import argparse
from typing import Any

from driftloop.console import (
    ExitCode,
    Progress,
    add_quiet_option,
    add_scenario_option,
    fail,
    scenario_name,
)
from driftloop.errors import DriftloopError, InvalidInputError
from driftloop.simulate.config import Scenario, SimulatorConfig
from driftloop.simulate.simulator import Simulator

_DEFAULTS = SimulatorConfig()
SCENARIO_NAMES = tuple(scenario_name(scenario.value) for scenario in Scenario)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate",
        help="write simulated monthly uploads (<YYYY-MM>.parquet) and optionally their ground truth",
        description="Month 0 is the original training data, months 1.. the monthly uploads.",
    )
    parser.add_argument("--out", required=True, help="folder for the monthly interaction files")
    parser.add_argument("--ground-truth", help="folder for the per-user ground truth of the same months")
    add_scenario_option(parser, SCENARIO_NAMES, "no-drift: every distribution stays as in month 0; seasonal: "
                        "tastes, population, devices, catalogue and prices move; population-shift: only the "
                        "population and catalogue move")
    parser.add_argument("--months", default=f"0-{_DEFAULTS.horizon_months}", help="e.g. 0-12 or 0,3,6")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                        help="random seed: the same seed and settings write the same files (default %(default)s)")
    parser.add_argument("--users", type=int, default=_DEFAULTS.n_users, help="customers at launch")
    parser.add_argument("--items", type=int, default=_DEFAULTS.n_items, help="items at launch")
    parser.add_argument("--events-per-month", type=int, default=_DEFAULTS.events_per_month,
                        help="interaction events (views, carts, purchases) per month (default %(default)s)")
    parser.add_argument("--start-month", default=_DEFAULTS.start_month, help="calendar month of month 0")
    parser.add_argument("--horizon", type=int, default=_DEFAULTS.horizon_months, help="last month simulated")
    add_quiet_option(parser)
    parser.set_defaults(run=run)
    return parser


def parse_months(text: str) -> list[int]:
    """``"0-12"`` or ``"0,3,6"`` (or a mix) to a sorted list of distinct months."""
    months: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            months.update(range(int(first), int(last or first) + 1))
    except ValueError as error:
        raise InvalidInputError(f"--months {text!r}: expected e.g. 0-12 or 0,3,6") from error
    if not months:
        raise InvalidInputError(f"--months {text!r} names no month")
    return sorted(months)


def run(args: argparse.Namespace) -> int:
    try:
        config = SimulatorConfig(
            seed=args.seed,
            n_users=args.users,
            n_items=args.items,
            events_per_month=args.events_per_month,
            start_month=args.start_month,
            horizon_months=args.horizon,
        )
        simulator = Simulator(config, Scenario(args.scenario.replace("-", "_")))
        months = parse_months(args.months)
        outside = [month for month in months if not 0 <= month <= config.horizon_months]
        if outside:
            raise InvalidInputError(f"--months {args.months}: {outside} outside 0..{config.horizon_months} (--horizon)")
    except DriftloopError as error:
        return fail("simulate", error, ExitCode.USAGE)
    written = (("", args.out), ("ground truth ", args.ground_truth)) if args.ground_truth else (("", args.out),)
    try:
        with Progress("simulate", total=len(months) * len(written), quiet=args.quiet) as progress:
            for what, out in written:
                write = simulator.write_ground_truth if what else simulator.write_months
                for month in months:
                    (path,) = write(out, [month])
                    print(path)
                    progress.advance(f"{what}month {month}")
    except (DriftloopError, OSError) as error:
        return fail("simulate", error, ExitCode.BAD_INPUT)
    return ExitCode.OK
