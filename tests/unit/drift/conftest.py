"""Synthetic interactions with known shifts, written as Parquet under tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REGIONS = [f"region-{index:02d}" for index in range(12)]
CATEGORIES = [f"cat-{index:03d}" for index in range(40)]


def interactions(rows: int, seed: int, shift: frozenset[str] = frozenset()) -> pa.Table:
    """The data contract's columns; features named in ``shift`` change distribution."""
    rng = np.random.default_rng(seed)
    price = rng.lognormal(3.0 + (0.5 if "price" in shift else 0.0), 0.6, rows)
    discount = np.clip(rng.beta(2, 8 if "discount" not in shift else 3, rows), 0, 1)
    session = rng.gamma(2.0, 6.0, rows) * (1.6 if "session_minutes" in shift else 1.0)
    tenure = rng.exponential(400.0, rows).round()
    device_p = [0.6, 0.3, 0.1] if "device" not in shift else [0.3, 0.5, 0.2]
    region_weights = np.linspace(1.0, 2.0, len(REGIONS))
    if "region" in shift:
        region_weights = region_weights[::-1] ** 2
    category_weights = 1.0 / np.arange(1, len(CATEGORIES) + 1)
    ages = ["18-24", "25-34", "35-44", "45-54", "55+"]
    event_times = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 86_400 * 30, rows).astype("timedelta64[s]")
    return pa.table(
        {
            "user_id": pa.array([f"u{v}" for v in rng.integers(0, 5000, rows)]),
            "item_id": pa.array([f"i{v}" for v in rng.integers(0, 2000, rows)]),
            "event_type": pa.array(rng.choice(["view", "cart", "purchase"], rows, p=[0.7, 0.2, 0.1])),
            "event_time": pa.array(event_times.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "age_band": pa.array(rng.choice(ages, rows)),
            "region": pa.array(rng.choice(REGIONS, rows, p=region_weights / region_weights.sum())),
            "device": pa.array(rng.choice(["mobile", "desktop", "tablet"], rows, p=device_p)),
            "item_category": pa.array(rng.choice(CATEGORIES, rows, p=category_weights / category_weights.sum())),
            "price": pa.array(price),
            "discount": pa.array(discount, mask=rng.random(rows) < 0.02),
            "session_minutes": pa.array(session),
            "user_tenure_days": pa.array(tenure),
        }
    )


@pytest.fixture
def write_parquet(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, table: pa.Table, row_group_size: int | None = None) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, row_group_size=row_group_size)
        return path

    return write
