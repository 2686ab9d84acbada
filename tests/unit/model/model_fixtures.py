"""Small seeded interaction data with real structure: users in taste clusters over item categories."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def clustered_interactions(
    n_users: int = 400, n_items: int = 200, n_events: int = 12_000, seed: int = 7, days: int = 60
) -> pa.Table:
    rng = np.random.default_rng(seed)
    n_categories, n_clusters = 10, 8
    category = rng.integers(0, n_categories, n_items)
    base = 1.0 / (rng.permutation(n_items) + 5.0)
    taste = rng.dirichlet(np.full(n_categories, 0.2), n_clusters)
    item_prob = taste[:, category] * base * np.exp(rng.normal(0, 1.0, (n_clusters, n_items)))
    item_prob /= item_prob.sum(axis=1, keepdims=True)
    user_cluster = rng.integers(0, n_clusters, n_users)
    users = rng.integers(0, n_users, n_events)
    items = np.empty(n_events, dtype=np.int64)
    for cluster in range(n_clusters):
        rows = np.flatnonzero(user_cluster[users] == cluster)
        items[rows] = rng.choice(n_items, rows.size, p=item_prob[cluster])
    events = rng.choice(np.array(["view", "cart", "purchase"]), n_events, p=[0.6, 0.2, 0.2])
    start = np.datetime64("2026-03-01T00:00:00", "us")
    times = start + (rng.random(n_events) * days * 86_400e6).astype("timedelta64[us]")
    return pa.table(
        {
            "user_id": np.char.add("u", users.astype(str)),
            "item_id": np.char.add("i", items.astype(str)),
            "event_type": events,
            "event_time": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
            "price": rng.uniform(1, 100, n_events),
        }
    )


def table_of(rows: list[tuple[str, str, str, str]]) -> pa.Table:
    """(user, item, event_type, ISO time) rows as an interactions table."""
    users, items, events, times = (list(column) for column in zip(*rows, strict=True))
    return pa.table(
        {
            "user_id": users,
            "item_id": items,
            "event_type": events,
            "event_time": pa.array(np.array(times, dtype="datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
        }
    )
