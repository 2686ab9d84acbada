"""What scoring a chunk of users costs: the sum over (history item, neighbour) pairs against one matrix product.

    PYTHONPATH=src .venv/bin/python benchmarks/recommend_benchmark.py [--users 1000] [--repeats 5]

``Recommender._scores`` gives each user's score of every item, either by adding every pair where it lands
(work: history entries x neighbours, scattered) or by multiplying the users' histories by the item x item
neighbour matrix (work: users x items x items, in BLAS), and picks the product when the catalog has at most
``_NEIGHBOUR_MATRIX_MAX_ITEMS`` items and the product does at most ``_PRODUCT_ADVANTAGE`` times the pairs'
work. This measures both ways on random models (200 neighbours) for several catalog sizes and history
lengths, in the same run, with BLAS on one thread (as the local runtime runs it) and the best of
``--repeats`` runs. The last column is the rule's choice; the ratio shows whether it was the faster one.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
from threadpoolctl import threadpool_limits

from driftloop.model import recommender as recommender_module
from driftloop.model.recommender import Recommender, RecommenderConfig

NEIGHBOURS = 200


def random_model(items: int, users: int, history: int, rng: np.random.Generator) -> Recommender:
    width = min(NEIGHBOURS, items)
    lengths = np.full(users, min(history, items))
    return Recommender(
        config=RecommenderConfig(neighbours=width),
        user_ids=np.array([f"u{index}" for index in range(users)]),
        item_ids=np.array([f"i{index}" for index in range(items)]),
        history_indptr=np.concatenate([[0], np.cumsum(lengths)]),
        history_items=np.concatenate([rng.choice(items, size, replace=False) for size in lengths]).astype(np.int32),
        history_values=rng.random(int(lengths.sum())).astype(np.float32),
        history_bought=np.ones(int(lengths.sum()), dtype=bool),
        neighbour_items=np.stack([rng.choice(items, width, replace=False) for _ in range(items)]).astype(np.int32),
        neighbour_weights=rng.random((items, width)).astype(np.float32),
        item_popularity=rng.random(items).astype(np.float32),
        trained_until=datetime(2026, 1, 1, tzinfo=UTC),
    )


def best_seconds(model: Recommender, entries, users: int, advantage: float, repeats: int) -> float:
    recommender_module._PRODUCT_ADVANTAGE = advantage
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        model._scores(entries, users)
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users per chunk (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per way; the best counts (default 5)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.repeats < 1:
        parser.error("--users and --repeats must be at least 1")
    rule = recommender_module._PRODUCT_ADVANTAGE
    rng = np.random.default_rng(0)
    print(f"| items | history items per user | pairs ms | product ms | product / pairs | rule picks "
          f"(advantage {rule}) |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(limits=1, user_api="blas"):
        for items in (100, 484, 1_682, 2_048):
            for history in (5, 20, 50, 200):
                model = random_model(items, args.users, history, rng)
                entries = model._history_entries(model.user_ids.tolist())
                pairs = best_seconds(model, entries, args.users, 0, args.repeats)
                product = best_seconds(model, entries, args.users, float("inf"), args.repeats)
                work = entries.items.size * model.neighbour_items.shape[1]
                picks = "product" if args.users * items**2 <= rule * work else "pairs"
                print(f"| {items:,} | {min(history, items)} | {pairs * 1e3:.1f} | {product * 1e3:.1f} | "
                      f"{product / pairs:.2f} | {picks} |")
    recommender_module._PRODUCT_ADVANTAGE = rule
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
