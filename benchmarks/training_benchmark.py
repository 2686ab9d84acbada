"""Training benchmark: fit time, peak memory and Recall/NDCG/HitRate@10 against popularity.

Datasets:
- ``synthetic``: ``driftloop.simulate`` (50k users, 5k items, ~2.2M events over 4 months);
- ``ml-100k``: MovieLens 100K read from the installed ``recbole`` wheel (never committed; skipped
  when recbole is absent: ``pip install --no-deps recbole==1.2.1``).

Each dataset is split by time (the last 10% of events held out); every algorithm is fitted on the
rest and scored on the users it knows, next to the popularity baseline of the same run. The last
rows time the whole script-mode training (evaluation fit + refit on everything, as the SageMaker
job runs it). Targets: training under 120 s on 2 cores, NDCG@10 at least 1.3x popularity's.

    .venv/bin/python benchmarks/training_benchmark.py [--quick] [--algorithms ease,item_knn]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from driftloop.model.data import ColumnMapping, at_or_after, before, normalise_interactions, time_quantile
from driftloop.model.metrics import evaluate
from driftloop.model.recommender import ALGORITHMS, Recommender, RecommenderConfig
from driftloop.model.train import TrainingParameters, train
from driftloop.simulate import Simulator, SimulatorConfig

TIME_LIMIT_SECONDS = 120.0
NDCG_RATIO_TARGET = 1.3


def synthetic(quick: bool) -> pa.Table:
    config = (
        SimulatorConfig(n_users=5_000, n_items=1_000, events_per_month=60_000, horizon_months=4)
        if quick
        else SimulatorConfig(n_users=50_000, n_items=5_000, events_per_month=550_000, horizon_months=4)
    )
    simulator = Simulator(config)
    return pa.concat_tables(simulator.month(month) for month in simulator.months)


def movielens_100k() -> pa.Table | None:
    try:
        import recbole
    except ImportError:
        return None
    path = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    raw = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t"))
    raw = raw.rename_columns([name.split(":")[0] for name in raw.column_names])
    return normalise_interactions(
        raw, ColumnMapping(user_col="user_id", item_col="item_id", time_col="timestamp", event_type_col=None)
    )


def measured(action: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, wall seconds, process CPU seconds, peak traced MB) of one call. CPU seconds show the
    work done when the machine is shared (wall time then overstates it)."""
    tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = action()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, cpu, peak


def benchmark(name: str, table: pa.Table, algorithms: list[str]) -> list[dict[str, Any]]:
    table = normalise_interactions(table, ColumnMapping())
    cutoff = time_quantile(table, 0.9)
    fit_rows, test = before(table, cutoff), at_or_after(table, cutoff)
    rows = []
    for algorithm in algorithms:
        config = RecommenderConfig(algorithm=algorithm)
        model, fit_seconds, fit_cpu, peak = measured(lambda config=config: Recommender.fit(fit_rows, config))
        result, eval_seconds, _, _ = measured(lambda model=model: evaluate(model, fit_rows, test))
        rows.append(
            {
                "dataset": name,
                "what": f"fit {algorithm}",
                "rows": fit_rows.num_rows,
                "users": model.n_users,
                "items": model.n_items,
                "seconds": fit_seconds,
                "cpu_seconds": fit_cpu,
                "eval_seconds": eval_seconds,
                "peak_mb": peak,
                **{key: result.model[key] for key in ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")},
                "pop_ndcg": result.baseline_popularity["ndcg_at_10"],
                "eval_users": result.model["users_evaluated"],
            }
        )
    outcome, seconds, cpu, peak = measured(lambda: train(table, TrainingParameters()))
    metrics = outcome.metrics
    rows.append(
        {
            "dataset": name,
            "what": f"train() {metrics['algorithm']}",
            "rows": table.num_rows,
            "users": metrics["model"]["users"],
            "items": metrics["model"]["items"],
            "seconds": seconds,
            "cpu_seconds": cpu,
            "eval_seconds": float("nan"),
            "peak_mb": peak,
            **{key: metrics[key] for key in ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")},
            "pop_ndcg": metrics["baseline_popularity"]["ndcg_at_10"],
            "eval_users": metrics["users_evaluated"],
        }
    )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'dataset':<10}{'what':<18}{'rows':>10}{'users':>8}{'items':>7}{'train s':>9}{'cpu s':>7}{'eval s':>8}"
        f"{'peak MB':>9}{'NDCG@10':>9}{'Rec@10':>8}{'HR@10':>8}{'pop NDCG':>9}{'x pop':>7}{'users':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row["ndcg_at_10"] / row["pop_ndcg"] if row["pop_ndcg"] else float("inf")
        print(
            f"{row['dataset']:<10}{row['what']:<18}{row['rows']:>10}{row['users']:>8}{row['items']:>7}"
            f"{row['seconds']:>9.1f}{row['cpu_seconds']:>7.1f}{row['eval_seconds']:>8.1f}{row['peak_mb']:>9.0f}{row['ndcg_at_10']:>9.4f}"
            f"{row['recall_at_10']:>8.4f}{row['hit_rate_at_10']:>8.4f}{row['pop_ndcg']:>9.4f}{ratio:>7.2f}"
            f"{row['eval_users']:>7}"
        )


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        if row["what"].startswith("train()"):
            ratio = row["ndcg_at_10"] / row["pop_ndcg"] if row["pop_ndcg"] else float("inf")
            fast = "PASS" if row["seconds"] < TIME_LIMIT_SECONDS else "FAIL"
            good = "PASS" if ratio >= NDCG_RATIO_TARGET else "FAIL"
            lines.append(
                f"{row['dataset']}: training {row['seconds']:.1f} s wall ({row['cpu_seconds']:.1f} s CPU) "
                f"< {TIME_LIMIT_SECONDS:.0f} s {fast}; "
                f"NDCG@10 {ratio:.2f}x popularity >= {NDCG_RATIO_TARGET} {good}"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small synthetic dataset (seconds, for smoke runs)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated algorithms to fit")
    args = parser.parse_args()
    algorithms = [name for name in args.algorithms.split(",") if name]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    table = synthetic(args.quick)
    print(
        f"synthetic: {table.num_rows} events, {pc.count_distinct(table.column('user_id')).as_py()} users, "
        f"{pc.count_distinct(table.column('item_id')).as_py()} items, generated in "
        f"{time.perf_counter() - started:.1f} s"
    )
    rows += benchmark("synthetic", table, algorithms)
    movielens = movielens_100k()
    if movielens is None:
        print("ml-100k: skipped (recbole is not installed: pip install --no-deps recbole==1.2.1)")
    else:
        rows += benchmark("ml-100k", movielens, algorithms)
    print()
    print_table(rows)
    print()
    print("\n".join(verdicts(rows)))
    print("peak MB: peak memory traced by tracemalloc (numpy + Python) during the call")
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
