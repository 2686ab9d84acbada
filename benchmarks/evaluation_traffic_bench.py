"""Speed and peak memory of the offline gate's bootstrap (B=2000) and the feedback summary.

Each row is measured against a straightforward baseline in the same run, so the ratios hold on any
machine:
- ``paired_bootstrap`` vs a loop drawing one resample of user indices per replicate;
- ``summarise_feedback`` vs the same summary with a pandas group-by.

Run: .venv/bin/python benchmarks/evaluation_traffic_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.evaluation.offline import paired_bootstrap
from driftloop.traffic.online import summarise_feedback

N_BOOTSTRAP = 2000
HIT_RATE, NDCG, SPARSE_NDCG, CONTINUOUS = "hit rate", "ndcg@10 35% hit", "ndcg@10 15% hit", "continuous"
NOW = datetime(2025, 3, 10, tzinfo=UTC)
WINDOW = timedelta(hours=24)


def measure(function: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """CPU seconds (best of 2 untraced calls; steadier than wall time on a shared machine) and the
    peak traced MiB of one call."""
    tracemalloc.start()
    result = function(*args)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best = min(_timed(function, *args) for _ in range(2))
    return best, peak, result


def _timed(function: Callable[..., Any], *args: Any) -> float:
    start = time.process_time()
    function(*args)
    return time.process_time() - start


def loop_bootstrap(champion: np.ndarray, challenger: np.ndarray) -> tuple[float, float]:
    differences = challenger - champion
    rng = np.random.default_rng(0)
    means = np.array(
        [differences[rng.integers(0, differences.size, differences.size)].mean() for _ in range(N_BOOTSTRAP)]
    )
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def simulated_ndcg_at_10(n_users: int, hit_probability: float, rng: np.random.Generator) -> np.ndarray:
    """Binary-relevance NDCG@10 of users with 1..5 relevant items, each rank a hit at random."""
    relevant = rng.integers(1, 6, n_users)
    hits = rng.random((n_users, 10)) < hit_probability
    hits &= np.cumsum(hits, axis=1) <= relevant[:, None]
    discounts = 1.0 / np.log2(np.arange(2, 12))
    return (hits * discounts).sum(axis=1) / np.cumsum(discounts)[np.minimum(relevant, 10) - 1]


def per_user_values(kind: str, n_users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == HIT_RATE:
        return (rng.random(n_users) < 0.30) * 1.0, (rng.random(n_users) < 0.32) * 1.0
    if kind == NDCG:
        return simulated_ndcg_at_10(n_users, 0.04, rng), simulated_ndcg_at_10(n_users, 0.045, rng)
    if kind == SPARSE_NDCG:
        return simulated_ndcg_at_10(n_users, 0.015, rng), simulated_ndcg_at_10(n_users, 0.018, rng)
    champion = np.where(rng.random(n_users) < 0.3, rng.beta(2, 3, n_users), 0.0)
    challenger = np.where(rng.random(n_users) < 0.32, rng.beta(2, 3, n_users), 0.0)
    return champion, challenger


def feedback_table(rows: int, rng: np.random.Generator) -> pa.Table:
    now_us = np.datetime64(NOW.replace(tzinfo=None), "us")
    served = now_us - rng.integers(0, 7 * 86_400_000_000, rows).astype("timedelta64[us]")
    return pa.table(
        {
            "variant": pa.array(rng.choice(["champion", "challenger"], rows, p=[0.9, 0.1])),
            "served_at": pa.array(served, pa.timestamp("us", tz="UTC")),
            "converted": rng.random(rows) < 0.05,
            "latency_ms": rng.gamma(4, 20, rows),
            "error": rng.random(rows) < 0.005,
        }
    )


def pandas_summary(table: pa.Table) -> dict[str, tuple[int, int, int, int, float]]:
    frame = table.to_pandas()
    frame["matured"] = frame["served_at"] <= NOW - WINDOW
    frame["matured_conversion"] = frame["matured"] & frame["converted"]
    grouped = frame.groupby("variant").agg(
        served=("variant", "size"),
        matured=("matured", "sum"),
        conversions=("matured_conversion", "sum"),
        errors=("error", "sum"),
        latency_p95_ms=("latency_ms", lambda values: values.quantile(0.95)),
    )
    return {name: tuple(row) for name, row in grouped.iterrows()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    user_counts = (10_000,) if args.quick else (10_000, 100_000)
    feedback_rows = (100_000,) if args.quick else (100_000, 1_000_000)

    header = f"{'case':<56}{'ours cpu s':>11}{'base cpu s':>11}{'speedup':>9}"
    header += f"{'ours MiB':>10}{'base MiB':>10}{'mem ratio':>10}"
    print(header)
    print("-" * len(header))
    for kind in (HIT_RATE, NDCG, SPARSE_NDCG, CONTINUOUS):
        for n_users in user_counts:
            champion, challenger = per_user_values(kind, n_users, rng)
            ours_s, ours_mib, ours = measure(paired_bootstrap, champion, challenger, N_BOOTSTRAP)
            base_s, base_mib, base = measure(loop_bootstrap, champion, challenger)
            width = base[1] - base[0]
            assert abs(ours.ci_low - base[0]) < 0.1 * width and abs(ours.ci_high - base[1]) < 0.1 * width
            distinct = np.unique(challenger - champion).size
            _row(f"bootstrap {kind}, {n_users} users ({distinct} distinct)", ours_s, base_s, ours_mib, base_mib)
    for rows in feedback_rows:
        table = feedback_table(rows, rng)
        ours_s, ours_mib, ours = measure(summarise_feedback, table, WINDOW, NOW)
        base_s, base_mib, base = measure(pandas_summary, table)
        for name, counts in ours.items():
            assert (counts.served, counts.matured, counts.conversions, counts.errors) == base[name][:4]
        _row(f"summarise_feedback, {rows} rows", ours_s, base_s, ours_mib, base_mib)


def _row(case: str, ours_s: float, base_s: float, ours_mib: float, base_mib: float) -> None:
    print(
        f"{case:<56}{ours_s:>11.3f}{base_s:>11.3f}{base_s / ours_s:>8.1f}x"
        f"{ours_mib:>10.1f}{base_mib:>10.1f}{base_mib / ours_mib:>9.2f}x"
    )


if __name__ == "__main__":
    main()
