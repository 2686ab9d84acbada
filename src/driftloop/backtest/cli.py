"""``driftloop backtest --data synthetic|movielens-100k|PATH [--strategies never,every,...,oracle] [--json OUT]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from driftloop.backtest.config import EXCLUSIONS, STRATEGIES, BacktestConfig
from driftloop.backtest.datasets import History, movielens_history, read_parquet_history, simulated_history
from driftloop.backtest.periods import PeriodSpec
from driftloop.backtest.report import format_result
from driftloop.backtest.runner import run_backtest
from driftloop.errors import DriftloopError
from driftloop.model.data import ColumnMapping
from driftloop.simulate import Scenario, SimulatorConfig

SYNTHETIC, MOVIELENS = "synthetic", "movielens-100k"
EXIT_ERROR = 2
_SIMULATOR = SimulatorConfig()
_DEFAULTS = BacktestConfig()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "backtest",
        help="replay history under retraining strategies and compare NDCG@10, HitRate@10, retrains and cost",
        description="Split history into periods; the first --initial-periods are the original training data. "
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
    parser.add_argument("--json", dest="json_out", help="write the full result as JSON to this file")
    parser.add_argument("--period", default=str(_DEFAULTS.period), help="month (default), week or N-days")
    parser.add_argument("--initial-periods", type=int, default=_DEFAULTS.initial_periods)
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
    synthetic.add_argument("--scenario", choices=[scenario.value for scenario in Scenario], default="seasonal")
    synthetic.add_argument("--seed", type=int, default=_SIMULATOR.seed)
    synthetic.add_argument("--users", type=int, default=_SIMULATOR.n_users, help="customers at launch")
    synthetic.add_argument("--items", type=int, default=_SIMULATOR.n_items, help="items at launch")
    synthetic.add_argument("--events-per-month", type=int, default=_SIMULATOR.events_per_month)
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
        return simulated_history(config, Scenario(args.scenario))
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
        initial_periods=args.initial_periods,
        every_k=args.every_k,
        instance_type=args.instance_type,
        hourly_price_usd=args.hourly_price,
        exclude=args.exclude or ("interactions" if args.data == MOVIELENS else "purchases"),
        value_per_point=args.value_per_point,
        startup_seconds=args.startup_seconds,
        ab_exposure_cost=args.ab_exposure_cost,
    )


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        config = backtest_config(args)
        result = run_backtest(load_history(args), config)
    except (DriftloopError, FileNotFoundError) as error:
        print(f"driftloop backtest: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(format_result(result))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(result.to_dict(), handle, indent=2)
        print(f"JSON written to {args.json_out}")
    return 0
