"""Backtest benchmark: what every strategy scores and costs, and issue 11's targets for ``auto``, on
MovieLens 100K and the simulator, all with the default parameters (one set for every history).

Targets for ``auto`` (issue 11), checked per case: >= 95% of ``every``'s mean NDCG@10 with <= 75% of its
retrains; NDCG within 3% of the frontier at its own number of retrains (goal: 1%); total cost within
10% of the oracle's; NDCG never more than 1% below D's.

Cases (each also run with ``never`` alone, in the same process, as the time baseline: loading,
splitting, the hindsight score matrix that prices staleness, no strategy's own work; the ratio shows
what the strategies' trainings, drift checks and decisions add):
- ``ml-100k month`` / ``ml-100k week``: MovieLens 100K from the installed ``recbole`` wheel (skipped when
  absent: ``pip install --no-deps recbole==1.2.1``); target: all strategies under 300 s;
- ``synthetic seasonal`` / ``synthetic no_drift``: the simulator's default shop, months 0..12.

    .venv/bin/python benchmarks/backtest_benchmark.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from driftloop.backtest import BacktestConfig, BacktestResult, History, PeriodSpec, run_backtest
from driftloop.backtest.datasets import movielens_history, simulated_history
from driftloop.decision.cost import DEFAULT_VALUE_PER_POINT
from driftloop.simulate import Scenario, SimulatorConfig

MOVIELENS_LIMIT_SECONDS = 300.0


def measured(action: Callable[[], Any]) -> tuple[Any, float, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - started, time.process_time() - cpu_started


def cases(quick: bool, value_per_point: float) -> list[tuple[str, Callable[[], History], BacktestConfig]]:
    simulator = (
        SimulatorConfig(n_users=500, n_items=120, events_per_month=5_000, horizon_months=6)
        if quick
        else SimulatorConfig()
    )
    found: list[tuple[str, Callable[[], History], BacktestConfig]] = []
    if importlib.util.find_spec("recbole") is not None:
        movielens = BacktestConfig(exclude="interactions", value_per_point=value_per_point)
        found.append(("ml-100k month", movielens_history, movielens))
        if not quick:
            weekly = replace(movielens, period=PeriodSpec("week"), every_k=4)
            found.append(("ml-100k week", movielens_history, weekly))
    else:
        print("ml-100k: skipped (recbole is not installed: pip install --no-deps recbole==1.2.1)")
    for scenario in (Scenario.SEASONAL, Scenario.NO_DRIFT):
        found.append(
            (
                f"synthetic {scenario.value}",
                lambda scenario=scenario: simulated_history(simulator, scenario),
                BacktestConfig(value_per_point=value_per_point),
            )
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="monthly MovieLens and a small simulator only")
    parser.add_argument(
        "--value-per-point",
        type=float,
        default=DEFAULT_VALUE_PER_POINT,
        help="USD per NDCG@10 point per day for every case (default: the decision's default)",
    )
    parser.add_argument("--targets-only", action="store_true", help="only the targets table (no timing baseline)")
    args = parser.parse_args()
    timings, results = [], []
    for name, load, config in cases(args.quick, args.value_per_point):
        result, seconds, cpu = measured(lambda load=load, config=config: run_backtest(load(), config))
        if args.targets_only:
            results.append((name, result))
            continue
        _, never_seconds, never_cpu = measured(
            lambda load=load, config=config: run_backtest(
                load(), BacktestConfig(strategies=("never",), period=config.period, exclude=config.exclude)
            )
        )
        timings.append((name, result, seconds, cpu, never_seconds, never_cpu))
        results.append((name, result))
    if timings:
        print("| case | periods | all strategies wall s | CPU s | `never` alone wall s | ratio | target |")
        print("|---|---|---|---|---|---|---|")
    for name, result, seconds, cpu, never_seconds, _ in timings:
        target = ""
        if name.startswith("ml-100k"):
            target = f"< {MOVIELENS_LIMIT_SECONDS:.0f} s {'PASS' if seconds < MOVIELENS_LIMIT_SECONDS else 'FAIL'}"
        print(
            f"| {name} | {len(result.periods)} | {seconds:.1f} | {cpu:.1f} | {never_seconds:.1f} | "
            f"{seconds / never_seconds:.1f}x | {target} |"
        )
    print(f"value per point: ${args.value_per_point:g} per NDCG@10 point per day")
    print_targets(results)
    print_held_out(results)
    if args.targets_only:
        return 0
    for name, result in results:
        print_result(name, result)
    print(f"\nload average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


def _mark(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_targets(results: list[tuple[str, BacktestResult]]) -> None:
    print("\n`auto` against issue 11's targets (one set of parameters for every case)")
    print(
        "| case | auto NDCG / every | auto retrains / every | frontier at auto's retrains | auto / frontier | "
        "auto total cost / oracle | auto NDCG / D | oracle retrains |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, result in results:
        auto, every, drift, oracle = (result.strategies[key] for key in ("auto", "every", "D", "oracle"))
        ndcg, every_ndcg, drift_ndcg = auto.mean_ndcg_at_10 or 0.0, every.mean_ndcg_at_10 or 0.0, drift.mean_ndcg_at_10
        frontier = result.frontier.get(auto.retrains, float("nan"))
        share, retrains = ndcg / every_ndcg, auto.retrains / max(every.retrains, 1)
        cost_ratio = (auto.total_cost or 0.0) / (oracle.total_cost or float("nan"))
        versus_drift = ndcg / drift_ndcg if drift_ndcg else float("nan")
        print(
            f"| {name} | {share:.3f} {_mark(share >= 0.95)} | {auto.retrains}/{every.retrains} = {retrains:.2f} "
            f"{_mark(retrains <= 0.75)} | {frontier:.4f} | {ndcg / frontier:.3f} {_mark(ndcg >= 0.97 * frontier)} | "
            f"{cost_ratio:.2f} {_mark(cost_ratio <= 1.10)} | {versus_drift:.3f} {_mark(versus_drift >= 0.99)} | "
            f"{oracle.retrains} |"
        )


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_held_out(results: list[tuple[str, BacktestResult]]) -> None:
    """How much of the oracle's and the frontier's margins is hindsight on which users each period had."""
    costs, frontiers = [], []
    for name, result in results:
        held_out, auto = result.held_out, result.strategies["auto"]
        if held_out is None:
            continue
        auto_cost, oracle = held_out.strategies["auto"], result.strategies["oracle"]
        costs.append([
            name, f"{oracle.total_cost or 0.0:.2f}", f"{held_out.oracle_in_sample:.2f}",
            f"{held_out.oracle_held_out:.2f}", f"{held_out.oracle_held_out_retrains:.1f}", f"{auto_cost:.2f}",
            f"{auto_cost / held_out.oracle_held_out:.2f}", f"{held_out.strategies['every']:.2f}",
            f"{held_out.strategies['D']:.2f}",
        ])  # fmt: skip
        if auto.retrains in held_out.frontier_held_out:
            ndcg, outside = auto.mean_ndcg_at_10 or 0.0, held_out.frontier_held_out[auto.retrains]
            frontiers.append([
                name, str(auto.retrains), f"{result.frontier.get(auto.retrains, float('nan')):.4f}",
                f"{held_out.frontier_in_sample[auto.retrains]:.4f}", f"{outside:.4f}", f"{ndcg:.4f}",
                f"{ndcg / outside:.3f}", f"{result.strategies['every'].mean_ndcg_at_10 or 0.0:.4f}",
            ])  # fmt: skip
    print_table(
        "Total cost (USD) on random halves of each period's users (`held_out`, mean over 100 halves)",
        ["case", "oracle (all users)", "oracle chosen and priced on a half", "oracle chosen on the other half",
         "its retrains", "auto", "auto / held-out oracle", "every", "D"],
        costs,
    )  # fmt: skip
    print_table(
        "Mean NDCG@10 at `auto`'s retrains: the frontier's schedule chosen on a half (mean over 100 halves)",
        ["case", "auto's retrains", "frontier (all users)", "on the half it was chosen on", "on the other half",
         "auto", "auto / held-out frontier", "every"],
        frontiers,
    )  # fmt: skip


def print_periods(result: BacktestResult) -> None:
    """NDCG@10 per evaluated period and strategy; * = retrained right before the period."""
    columns = [*result.strategies.values(), result.popularity]
    print("\n| period | users | " + " | ".join(column.name for column in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for row, score in enumerate(result.popularity.per_period):
        cells = []
        for column in columns:
            period = column.per_period[row]
            value = "-" if period.ndcg_at_10 is None else f"{period.ndcg_at_10:.3f}"
            cells.append(value + ("*" if period.retrained else ""))
        print(f"| {score.period} | {score.users} | " + " | ".join(cells) + " |")


def print_result(name: str, result: BacktestResult) -> None:
    print(f"\n{name}: evaluated {result.periods[result.initial_periods]} .. {result.periods[-1]}")
    print(
        "| strategy | mean NDCG@10 | mean HitRate@10 | NDCG vs never | retrains | training s | training $ | "
        "staleness $ | total $ | regret $ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    never = result.strategies["never"].mean_ndcg_at_10 or 0.0
    for strategy in [*result.strategies.values(), result.popularity]:
        ndcg, hit_rate = strategy.mean_ndcg_at_10 or 0.0, strategy.mean_hit_rate_at_10 or 0.0
        priced = strategy.training_cost is not None
        money = (
            f"{strategy.training_cost:.2f} | {strategy.staleness_cost:.2f} | {strategy.total_cost:.2f} | "
            f"{strategy.regret:.2f}"
            if priced
            else "- | - | - | -"
        )
        print(
            f"| {strategy.name} | {ndcg:.4f} | {hit_rate:.4f} | {ndcg / never if never else float('nan'):.2f}x | "
            f"{strategy.retrains} | {strategy.training_seconds:.1f} | {money} |"
        )
    print("frontier: " + ", ".join(f"{retrains}: {value:.4f}" for retrains, value in result.frontier.items()))
    print_periods(result)
    auto = result.strategies["auto"]
    print("auto: " + ", ".join(f"{d['period']} {'retrain' if d['retrain'] else 'keep'}" for d in auto.decisions))
    drift = result.strategies["D"]
    decisions = ", ".join(f"{check['period']} {check['decision']}" for check in drift.drift_checks)
    print(f"D drift decisions: {decisions}")
    others = [other for other_name, other in result.strategies.items() if other_name != "D"]
    best, behind = [], []
    for row, score in enumerate(drift.per_period):
        if score.ndcg_at_10 is None:
            continue
        rivals = {other.name: other.per_period[row].ndcg_at_10 or 0.0 for other in others}
        if all(value <= score.ndcg_at_10 for value in rivals.values()):
            best.append(score.period)
        else:
            leader = max(rivals, key=lambda name: rivals[name])
            behind.append(f"{score.period} ({leader} {rivals[leader]:.4f} vs {score.ndcg_at_10:.4f})")
    print(
        f"D best or tied on NDCG@10 in {len(best)} of {len(drift.per_period)} periods; "
        f"behind in: {', '.join(behind) or 'none'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
