"""``driftloop backtest --data synthetic|movielens-100k|PATH [--strategies never,every,...,oracle] [--json OUT]``."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

import pyarrow.compute as pc

from driftloop.backtest.config import EXCLUSIONS, STRATEGIES, BacktestConfig
from driftloop.backtest.datasets import History, movielens_history, read_parquet_history, simulated_history
from driftloop.backtest.periods import PeriodSpec
from driftloop.backtest.report import format_result
from driftloop.backtest.runner import run_backtest, split_history
from driftloop.console import (
    ExitCode,
    Progress,
    add_json_option,
    add_quiet_option,
    add_scenario_option,
    fail,
    json_on_stdout,
    positive_int,
    scenario_name,
    write_json,
)
from driftloop.errors import DriftloopError, InvalidInputError
from driftloop.model.data import USER, ColumnMapping
from driftloop.simulate import Scenario, SimulatorConfig

SYNTHETIC, MOVIELENS = "synthetic", "movielens-100k"
SCENARIO_NAMES = tuple(scenario_name(scenario.value) for scenario in Scenario)
_SIMULATOR = SimulatorConfig()
_DEFAULTS = BacktestConfig()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "backtest",
        help="replay history under retraining strategies and compare NDCG@10, HitRate@10, retrains and cost",
        description="Split history into periods; the first --initial-periods are the original training data "
        "(by default the fewest that hold the 2 users a recommender needs). "
        "Each later period scores every strategy's model in force, then each strategy decides whether to "
        "retrain. Strategies: " + "; ".join(f"{name}: {text}" for name, text in STRATEGIES.items()),
    )
    parser.add_argument("--data", required=True, help=f"{SYNTHETIC}, {MOVIELENS}, or a Parquet file or folder")
    parser.add_argument("--user-col", default="user_id", help="user column of PATH (default user_id)")
    parser.add_argument("--item-col", default="item_id", help="item column of PATH (default item_id)")
    parser.add_argument(
        "--time-col", default="event_time", help="time column of PATH: timestamp, date, epoch seconds or ISO string"
    )
    parser.add_argument(
        "--event-type-col",
        default="event_type",
        help="event type column of PATH ('purchase' rows are the targets); 'none': every row is a purchase",
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated, from the list above")
    add_json_option(parser, "the full result")
    add_quiet_option(parser)
    parser.add_argument("--period", default=str(_DEFAULTS.period), help="month (default), week or N-days")
    parser.add_argument(
        "--initial-periods",
        type=positive_int,
        metavar="N",
        help="how many leading periods are the original training data; the rest are evaluated (default: the "
        "fewest that hold at least 2 users, usually 1; the choice is printed)",
    )
    parser.add_argument(
        "--every-k", type=int, default=_DEFAULTS.every_k, help="how often A, B, C and schedule act (periods)"
    )
    parser.add_argument(
        "--exclude",
        choices=EXCLUSIONS,
        help="what is never recommended again nor scored: a user's purchases (default), or every item the user "
        f"interacted with (default for {MOVIELENS}: a rating means the film was watched)",
    )
    parser.add_argument("--instance-type", default=_DEFAULTS.instance_type, help="priced training instance")
    parser.add_argument("--hourly-price", type=float, help="USD per instance-hour instead of the list price")
    parser.add_argument(
        "--value-per-point",
        type=float,
        default=_DEFAULTS.value_per_point,
        help="USD lost per NDCG@10 point (0.01) of shortfall per day of traffic (prices staleness; auto decides by it)",
    )
    parser.add_argument(
        "--startup-seconds", type=float, default=_DEFAULTS.startup_seconds, help="billed start-up per training job"
    )
    parser.add_argument(
        "--ab-exposure-cost", type=float, default=_DEFAULTS.ab_exposure_cost, help="USD of expected loss per A/B test"
    )
    synthetic = parser.add_argument_group(f"--data {SYNTHETIC}")
    add_scenario_option(synthetic, SCENARIO_NAMES, "what the simulated shop does (see driftloop simulate --help)")
    synthetic.add_argument("--seed", type=int, default=_SIMULATOR.seed, help="simulator seed (default %(default)s)")
    synthetic.add_argument("--users", type=int, default=_SIMULATOR.n_users, help="customers at launch")
    synthetic.add_argument("--items", type=int, default=_SIMULATOR.n_items, help="items at launch")
    synthetic.add_argument("--events-per-month", type=int, default=_SIMULATOR.events_per_month,
                           help="simulated events per month (default %(default)s)")
    synthetic.add_argument("--months", type=int, default=_SIMULATOR.horizon_months, help="months after month 0")
    parser.set_defaults(run=run)
    return parser


def load_history(args: argparse.Namespace) -> History:
    if args.data == SYNTHETIC:
        config = SimulatorConfig(
            seed=args.seed,
            n_users=args.users,
            n_items=args.items,
            events_per_month=args.events_per_month,
            horizon_months=args.months,
        )
        return simulated_history(config, Scenario(args.scenario.replace("-", "_")))
    if args.data == MOVIELENS:
        return movielens_history()
    event_type_col = None if args.event_type_col.lower() == "none" else args.event_type_col
    columns = ColumnMapping(
        user_col=args.user_col, item_col=args.item_col, time_col=args.time_col, event_type_col=event_type_col
    )
    return read_parquet_history(args.data, columns)


def backtest_config(args: argparse.Namespace) -> BacktestConfig:
    return BacktestConfig(
        strategies=tuple(name.strip() for name in args.strategies.split(",") if name.strip()),
        period=PeriodSpec.parse(args.period),
        initial_periods=args.initial_periods or _DEFAULTS.initial_periods,
        every_k=args.every_k,
        instance_type=args.instance_type,
        hourly_price_usd=args.hourly_price,
        exclude=args.exclude or ("interactions" if args.data == MOVIELENS else "purchases"),
        value_per_point=args.value_per_point,
        startup_seconds=args.startup_seconds,
        ab_exposure_cost=args.ab_exposure_cost,
    )


def choose_initial_periods(history: History, config: BacktestConfig) -> int:
    """The fewest leading periods that hold the 2 distinct users a recommender needs to train, leaving at
    least one period to evaluate."""
    periods = split_history(history, replace(config, initial_periods=1))
    users: set[str] = set()
    for count, period in enumerate(periods[:-1], start=1):
        users.update(pc.unique(period.interactions.column(USER)).to_pylist()[:2])
        if len(users) >= 2:
            return count
    raise InvalidInputError(
        f"{history.name}: all {len(periods)} {config.period} periods but the last hold {len(users)} distinct "
        "user(s): the first model needs 2 users and one period must remain to evaluate it; a shorter --period "
        "(week, N-days) splits the history finer"
    )


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        config = backtest_config(args)
    except DriftloopError as error:
        return fail("backtest", error, ExitCode.USAGE)
    try:
        history = load_history(args)
        needed = choose_initial_periods(history, config)
        if args.initial_periods is None:
            config = replace(config, initial_periods=needed)
        elif args.initial_periods < needed:
            return fail("backtest", f"--initial-periods {args.initial_periods}: the first {args.initial_periods} "
                        f"{config.period} period(s) hold 1 distinct user and a recommender needs 2: use "
                        f"--initial-periods {needed}, or leave the option out to choose it", ExitCode.USAGE)
        periods = split_history(history, config)
        if not args.quiet:
            chosen = "--initial-periods" if args.initial_periods else "chosen: the fewest holding 2 users"
            labels = [period.label for period in periods[: config.initial_periods]]
            print(f"backtest: original training data: {config.initial_periods} {config.period} period(s) "
                  f"{labels[0]}..{labels[-1]} ({chosen}); {len(periods) - config.initial_periods} to evaluate",
                  file=sys.stderr)
        with Progress("backtest periods", total=len(periods) - config.initial_periods, quiet=args.quiet) as progress:
            result = run_backtest(history, config, progress.advance)
    except (DriftloopError, OSError) as error:
        return fail("backtest", error, ExitCode.BAD_INPUT)
    if args.json_out:
        write_json(args.json_out, result.to_dict())
        if json_on_stdout(args):
            return ExitCode.OK
    print(format_result(result))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    if args.json_out:
        print(f"JSON written to {args.json_out}")
    return ExitCode.OK
