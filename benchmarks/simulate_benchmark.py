"""Simulator benchmark: generation time and peak memory, against a trivial baseline of the same shape.

The baseline fills a table of the same rows and columns with independent random values (ids
taken from the same id lists, times sorted), so the ratio is what the behaviour model costs on
top of merely materialising the data. Targets: the default shop's 13 months in under 5 s and under
15x the baseline; one 2M-event month of the large shop (50k users, 5k items) in under 60 s.

    .venv/bin/python benchmarks/simulate_benchmark.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.simulate import INTERACTIONS_SCHEMA, Scenario, Simulator, SimulatorConfig

DEFAULT_YEAR_SECONDS = 5.0
DEFAULT_YEAR_RATIO = 15.0
LARGE_MONTH_SECONDS = 60.0


def measure(action: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak MiB traced by tracemalloc, result) of one call."""
    tracemalloc.start()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def random_table(rows: int, simulator: Simulator, rng: np.random.Generator) -> pa.Table:
    users, items = simulator.world.users.ids, simulator.world.items.ids
    words = pa.array(["a", "b", "c", "d", "e"])
    times = np.sort(rng.integers(1_735_689_600_000_000, 1_738_368_000_000_000, size=rows))
    columns = [
        users.take(pa.array(rng.integers(0, len(users), size=rows))),
        items.take(pa.array(rng.integers(0, len(items), size=rows))),
        *(words.take(pa.array(rng.integers(0, 5, size=rows))) for _ in range(1)),
        pa.array(times).cast(INTERACTIONS_SCHEMA.field("event_time").type),
        *(words.take(pa.array(rng.integers(0, 5, size=rows))) for _ in range(4)),
        *(pa.array(rng.random(rows)) for _ in range(4)),
    ]
    return pa.Table.from_arrays(columns, schema=INTERACTIONS_SCHEMA)


def year(simulator: Simulator) -> int:
    return sum(simulator.month(month).num_rows for month in simulator.months)


def baseline_year(simulator: Simulator, rows_per_month: list[int]) -> int:
    rng = np.random.default_rng(0)
    return sum(random_table(rows, simulator, rng).num_rows for rows in rows_per_month)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the large shop")
    args = parser.parse_args()

    lines: list[tuple[str, float, float, int, str]] = []
    verdicts: list[bool] = []

    Simulator(SimulatorConfig(n_users=10, n_items=12, events_per_month=10)).month(0)  # warm up lazy imports
    default = SimulatorConfig(seed=7)
    build_seconds, build_peak, simulator = measure(lambda: Simulator(default, Scenario.SEASONAL))
    lines.append(("default: build world (2k users, 400 items)", build_seconds, build_peak, 0, ""))
    year_seconds, year_peak, rows = measure(lambda: year(simulator))
    rows_per_month = [simulator.month(month).num_rows for month in simulator.months]
    base_seconds, base_peak, _ = measure(lambda: baseline_year(simulator, rows_per_month))
    ratio = year_seconds / base_seconds
    ok = year_seconds < DEFAULT_YEAR_SECONDS and ratio < DEFAULT_YEAR_RATIO
    verdicts.append(ok)
    lines.append(("default: 13 months, SEASONAL", year_seconds, year_peak, rows, f"{ratio:.1f}x baseline"))
    lines.append(("default: 13 months, random baseline", base_seconds, base_peak, rows, ""))
    truth_seconds, truth_peak, truth = measure(lambda: simulator.ground_truth(6))
    lines.append(("default: ground truth of one month", truth_seconds, truth_peak, truth.num_rows, ""))

    if not args.quick:
        large = SimulatorConfig(seed=7, n_users=50_000, n_items=5_000, events_per_month=2_000_000)
        build_seconds, build_peak, big = measure(lambda: Simulator(large, Scenario.SEASONAL))
        lines.append(("large: build world (50k users, 5k items)", build_seconds, build_peak, 0, ""))
        month_seconds, month_peak, table = measure(lambda: big.month(6))
        base_seconds, base_peak, _ = measure(lambda: random_table(table.num_rows, big, np.random.default_rng(0)))
        verdicts.append(month_seconds < LARGE_MONTH_SECONDS)
        lines.append(
            (
                "large: one 2M-event month",
                month_seconds,
                month_peak,
                table.num_rows,
                f"{month_seconds / base_seconds:.1f}x baseline",
            )
        )
        lines.append(("large: one month, random baseline", base_seconds, base_peak, table.num_rows, ""))
        truth_seconds, truth_peak, truth = measure(lambda: big.ground_truth(6))
        lines.append(("large: ground truth of one month", truth_seconds, truth_peak, truth.num_rows, ""))
        pairs = table.slice(0, 100_000)
        users, items = pairs.column("user_id").to_pylist(), pairs.column("item_id").to_pylist()
        pairs_seconds, pairs_peak, _ = measure(lambda: big.purchase_probability(users, items, 6))
        lines.append(("large: purchase_probability of 100k pairs", pairs_seconds, pairs_peak, len(users), ""))

    print(f"{'case':<46} {'seconds':>8} {'peak MiB':>9} {'rows':>10}  note")
    for name, seconds, peak, count, note in lines:
        print(f"{name:<46} {seconds:>8.2f} {peak:>9.0f} {count:>10,}  {note}")
    print("targets:", "met" if all(verdicts) else "MISSED")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
