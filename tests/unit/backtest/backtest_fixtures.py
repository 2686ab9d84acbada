"""Small hand-made histories: a few users with stable tastes, one row per event, monthly periods."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

UTC = timezone.utc  # noqa: UP017
N_USERS, N_ITEMS, EVENTS_PER_MONTH = 40, 24, 400


def monthly_events(devices: Sequence[str], seed: int = 0) -> pa.Table:
    """One month per entry of ``devices`` (2025-01 onwards); every event of month m comes from
    ``devices[m]``. Users prefer items of their own group, so a recommender can learn something."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {name: [] for name in ("user_id", "item_id", "event_type", "event_time", "device", "price")}
    for month, device in enumerate(devices):
        start = datetime(2025, 1 + month, 1, tzinfo=UTC)
        users = rng.integers(0, N_USERS, EVENTS_PER_MONTH)
        groups = users % 4
        items = groups * (N_ITEMS // 4) + rng.integers(0, N_ITEMS // 4, EVENTS_PER_MONTH)
        for user, item, minute in zip(users, items, rng.integers(0, 27 * 24 * 60, EVENTS_PER_MONTH), strict=True):
            rows["user_id"].append(f"u{user:03d}")
            rows["item_id"].append(f"i{item:03d}")
            rows["event_type"].append("purchase" if rng.random() < 0.5 else "view")
            rows["event_time"].append(start + timedelta(minutes=int(minute)))
            rows["device"].append(device)
            rows["price"].append(float(10 + item))
    return pa.table(rows).cast(
        pa.schema(
            [
                ("user_id", pa.string()),
                ("item_id", pa.string()),
                ("event_type", pa.string()),
                ("event_time", pa.timestamp("us", tz="UTC")),
                ("device", pa.string()),
                ("price", pa.float64()),
            ]
        )
    )
