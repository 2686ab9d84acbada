"""The customer-behaviour simulator: monthly uploads, ground truth, purchase probabilities."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.simulate.behaviour import MonthBehaviour
from driftloop.simulate.config import Scenario, SimulatorConfig
from driftloop.simulate.events import generate_month
from driftloop.simulate.schema import (
    AGE_BANDS,
    CATALOG_SCHEMA,
    CATEGORIES,
    DEVICES,
    GROUND_TRUTH_SCHEMA,
    REGIONS,
)
from driftloop.simulate.world import (
    ITEM_ID_DIGITS,
    ITEM_ID_PREFIX,
    USER_ID_DIGITS,
    USER_ID_PREFIX,
    build_world,
)

TOP_CATEGORIES = 3


class Simulator:
    """A deterministic shop: ``month(m)`` is the same table for the same (config, scenario, m).

    Month 0 is the original training data; months 1..``horizon_months`` are the monthly uploads.
    Month 0 is identical across scenarios for the same config.
    """

    def __init__(self, config: SimulatorConfig, scenario: Scenario = Scenario.SEASONAL) -> None:
        self.config = config
        self.scenario = Scenario(scenario)
        self.world = build_world(config, self.scenario)
        self._behaviour = lru_cache(maxsize=4)(self._build_behaviour)

    def _build_behaviour(self, month: int) -> MonthBehaviour:
        return MonthBehaviour(self.world, self.config, self.scenario, month)

    def _check_month(self, month: int) -> int:
        if isinstance(month, bool) or not isinstance(month, int | np.integer):
            raise InvalidInputError(f"month must be an integer, got {month!r}")
        if not 0 <= month <= self.config.horizon_months:
            raise InvalidInputError(f"month {month} is outside 0..{self.config.horizon_months}")
        return int(month)

    @property
    def months(self) -> range:
        return range(self.config.horizon_months + 1)

    def month_label(self, month: int) -> str:
        return self.config.month_label(self._check_month(month))

    def month(self, month: int) -> pa.Table:
        """The interaction events of ``month``, sorted by ``event_time``."""
        return generate_month(self._behaviour(self._check_month(month)))

    def purchase_probability(self, user_ids: Sequence[str], item_ids: Sequence[str], month: int) -> np.ndarray:
        """P(the user buys the item | it is shown to them) in ``month``, for aligned id pairs.

        Items not yet launched have probability 0; unknown ids raise ``NotFoundError``.
        """
        behaviour = self._behaviour(self._check_month(month))
        if len(user_ids) != len(item_ids):
            raise InvalidInputError(f"{len(user_ids)} user ids but {len(item_ids)} item ids")
        users = _indices(user_ids, USER_ID_PREFIX, USER_ID_DIGITS, len(self.world.users), "user")
        items = _indices(item_ids, ITEM_ID_PREFIX, ITEM_ID_DIGITS, len(self.world.items), "item")
        return behaviour.purchase_probability(users, items)

    def active_user_ids(self, month: int) -> pa.StringArray:
        """Customers who are around during ``month`` (the ones who may visit)."""
        return self.world.users.ids.take(pa.array(self._active_users(self._check_month(month))))

    def _active_users(self, month: int) -> np.ndarray:
        users = self.world.users
        return np.flatnonzero((users.join_month <= month) & (users.leave_month > month))

    def catalog(self, month: int) -> pa.Table:
        """Items on sale in ``month`` with their price and promotion discount."""
        behaviour = self._behaviour(self._check_month(month))
        items = self.world.items
        on_sale = np.flatnonzero(behaviour.available)
        return pa.Table.from_arrays(
            [
                items.ids.take(pa.array(on_sale)),
                pa.array(CATEGORIES, pa.string()).take(pa.array(items.category[on_sale])),
                pa.array(behaviour.price[on_sale], pa.float64()),
                pa.array(behaviour.discount[on_sale], pa.float64()),
                pa.array(items.launch_month[on_sale], pa.int32()),
            ],
            schema=CATALOG_SCHEMA,
        )

    def ground_truth(self, month: int) -> pa.Table:
        """Per active user: true top categories with their browsing shares, and the best attainable
        purchase probability (what a perfect recommender's first slot would convert)."""
        month = self._check_month(month)
        behaviour = self._behaviour(month)
        users = self.world.users
        active = self._active_users(month)
        shares = behaviour.category_probabilities(active)
        top = np.argsort(-shares, axis=1, kind="stable")[:, :TOP_CATEGORIES]
        top_shares = np.take_along_axis(shares, top, axis=1)
        offsets = pa.array(np.arange(0, TOP_CATEGORIES * len(active) + 1, TOP_CATEGORIES, dtype=np.int32))
        category_names = pa.array(CATEGORIES, pa.string()).take(pa.array(top.ravel()))
        return pa.Table.from_arrays(
            [
                pa.array([self.config.month_label(month)] * len(active), pa.string()),
                users.ids.take(pa.array(active)),
                pa.array(AGE_BANDS, pa.string()).take(pa.array(users.age_band[active])),
                pa.array(REGIONS, pa.string()).take(pa.array(users.region[active])),
                pa.array(DEVICES, pa.string()).take(pa.array(behaviour.device(active))),
                pa.array(users.first_visit_us[active], pa.int64()).cast(GROUND_TRUTH_SCHEMA.field("first_visit").type),
                pa.ListArray.from_arrays(offsets, category_names),
                pa.ListArray.from_arrays(offsets, pa.array(np.round(top_shares.ravel(), 6), pa.float64())),
                pa.array(behaviour.best_purchase_probability(active), pa.float64()),
            ],
            schema=GROUND_TRUTH_SCHEMA,
        )

    def write_months(self, out_dir: str, months: Iterable[int], filesystem: pafs.FileSystem | None = None) -> list[str]:
        """Write each month's events to ``<out_dir>/<YYYY-MM>.parquet``; returns the paths."""
        return self._write(out_dir, months, self.month, filesystem)

    def write_ground_truth(
        self, out_dir: str, months: Iterable[int], filesystem: pafs.FileSystem | None = None
    ) -> list[str]:
        """Write each month's ground truth to ``<out_dir>/<YYYY-MM>.parquet``; returns the paths."""
        return self._write(out_dir, months, self.ground_truth, filesystem)

    def _write(
        self,
        out_dir: str,
        months: Iterable[int],
        produce: Callable[[int], pa.Table],
        filesystem: pafs.FileSystem | None,
    ) -> list[str]:
        filesystem = filesystem or pafs.LocalFileSystem()
        checked = [self._check_month(month) for month in months]
        out_dir = out_dir.rstrip("/")
        filesystem.create_dir(out_dir, recursive=True)
        paths = []
        for month in checked:
            path = f"{out_dir}/{self.config.month_label(month)}.parquet"
            pq.write_table(produce(month), path, filesystem=filesystem)
            paths.append(path)
        return paths


def _indices(wanted: Sequence[str], prefix: str, digits: int, count: int, kind: str) -> np.ndarray:
    """World indices of ids built by ``world._ids``, parsed rather than looked up (no hash table)."""
    ids = pa.array(wanted, pa.string())
    well_formed = pc.fill_null(
        pc.match_substring_regex(ids, f"^{prefix}([0-9]{{{digits}}}|[1-9][0-9]{{{digits},}})$"), False
    )
    numbers = np.full(len(ids), -1, dtype=np.int64)
    if len(ids):
        digits_only = pc.if_else(well_formed, pc.utf8_slice_codeunits(ids, len(prefix)), "-1")
        numbers = pc.cast(digits_only, pa.int64()).to_numpy(zero_copy_only=False)
    unknown = (numbers < 0) | (numbers >= count)
    if unknown.any():
        missing = ids.filter(pa.array(unknown))
        raise NotFoundError(f"unknown {kind} ids: {missing[:5].to_pylist()} ({len(missing)} in all)")
    return numbers
