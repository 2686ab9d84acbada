"""Synthetic interaction files for the merge tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def make_events(rows: int, seed: int, days: int = 5, start: dt.datetime = START) -> pa.Table:
    """Interactions following docs/data-contracts.md, spread over ``days`` UTC dates."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, days * 86_400_000_000, rows)
    times = np.datetime64(start.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    return pa.table(
        {
            "user_id": pa.array([f"u{value:05d}" for value in rng.integers(0, 500, rows)]),
            "item_id": pa.array([f"i{value:04d}" for value in rng.integers(0, 200, rows)]),
            "event_type": pa.array(rng.choice(["view", "cart", "purchase"], rows, p=[0.7, 0.2, 0.1])),
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "age_band": pa.array(rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], rows)),
            "region": pa.array(rng.choice(["north", "south", "east", "west"], rows)),
            "device": pa.array(rng.choice(["mobile", "desktop", "tablet"], rows)),
            "item_category": pa.array(rng.choice(["books", "games", "garden", "toys"], rows)),
            "price": pa.array(rng.gamma(2.0, 20.0, rows)),
            "discount": pa.array(rng.uniform(0, 0.5, rows)),
            "session_minutes": pa.array(rng.exponential(8.0, rows)),
            "user_tenure_days": pa.array(rng.integers(0, 2000, rows).astype(np.float64)),
        }
    )


def write(table: pa.Table, path: Path, **options) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **options)
    return str(path)


@pytest.fixture
def events() -> pa.Table:
    return make_events(2_000, seed=1)
