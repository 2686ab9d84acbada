"""An implicit-feedback top-K recommender: an item-item model (EASE or item-kNN) over recency- and
event-weighted interactions, with popularity for cold users and for filling short lists.

EASE inverts a dense item x item matrix, so it is used while the modelled catalog has at most
``max_items`` items; beyond that, ``algorithm="ease"`` fits sparse item-kNN instead (recorded as
``fitted_algorithm``), whose cost is linear in the co-occurring (user, item, item) triples and which
never holds an item x item matrix. Both keep only each item's top ``neighbours`` neighbours.
Before fitting, the peak memory is estimated from the row, user and item counts; a run that would
exceed ``memory_limit_gb`` fails with the parameter to change instead of being killed.

Fitting may use scipy; a fitted model is plain numpy arrays, so loading and recommending need
numpy only (the Lambda layer and the inference container have no scipy guarantee).

Saved format (``save``/``load``): ``recommender.json`` (format version, config, fitted algorithm,
counts, ``trained_until``) and ``recommender.npz`` with ``user_ids``/``item_ids`` (strings),
the users' histories as CSR (``history_indptr``, ``history_items`` int32, ``history_values``
float32 log-weights, ``history_bought`` bool), ``neighbour_items``/``neighbour_weights``
(items x ``neighbours``, int32/float32; an item's unused slots point to itself with weight 0)
and ``item_popularity``. In memory a model takes about ``items x neighbours x 8`` bytes plus its
histories, whatever the catalog size; a catalog of at most 2,048 items also gets, at its first
recommendation, the item x item matrix of its neighbour lists (at most 32 MB), which scores a chunk of
users by one matrix product when that costs less than adding up their neighbours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import InvalidInputError
from driftloop.model.data import EVENT, ITEM, TIME, USER, UTC, ColumnMapping, normalise_interactions

ALGORITHMS = ("ease", "item_knn", "popularity")
MODEL_ARRAYS = "recommender.npz"
MODEL_META = "recommender.json"
FORMAT_VERSION = 1
_MICROS_PER_DAY = 86_400 * 1_000_000
_SCORE_BUDGET = 8_000_000  # scored cells (users x items) per chunk: bounds recommend()'s memory
# Up to this many items a model also keeps its neighbour lists as an item x item matrix (32 MB of float64),
# and a chunk is scored by one matrix product when that costs less than adding up its users' neighbours.
_NEIGHBOUR_MATRIX_MAX_ITEMS = 2_048
# How many multiply-adds of a matrix product cost as much as one scattered add: about 190 with OpenBLAS on
# AVX-512 (benchmarks/recommend_benchmark.py); 128 leaves room for machines with half the vector width.
_PRODUCT_ADVANTAGE = 128
# Above this many items recommend() scores only the candidates the neighbour lists reach.
_DENSE_SCORING_MAX_ITEMS = 20_000
_CANDIDATE_ROWS = 1_024  # users per chunk of candidate scoring (memory: their histories x neighbours)
_POPULAR_HEAD = 1_000  # the most popular items as a list: fills short candidate lists without numpy
_PRODUCT_BUDGET = 40_000_000  # co-occurrence entries per block of the sparse item-kNN product
_BYTES_PER_ROW = 300  # the job's tables (all rows, evaluation split, holdout) and the aggregation arrays
_BYTES_PER_ID = 150  # a user or item id: the Arrow string, the numpy copy and the index entry
_BYTES_PER_PRODUCT_ENTRY = 40  # index, value, similarity, row and sort order of one co-occurrence
_GB = 2**30


@dataclass(frozen=True)
class RecommenderConfig:
    """How to turn interactions into a model. ``event_weights`` applies when the data has event types."""

    algorithm: str = "ease"
    l2: float = 100.0
    neighbours: int = 200
    shrinkage: float = 10.0
    recency_half_life_days: float | None = 90.0
    event_weights: Mapping[str, float] = field(default_factory=lambda: {"view": 1.0, "cart": 2.0, "purchase": 4.0})
    target_event_types: tuple[str, ...] = ("purchase",)
    max_items: int = 10_000
    memory_limit_gb: float = 12.0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidInputError(f"algorithm must be one of {ALGORITHMS}, not {self.algorithm!r}")
        if self.l2 <= 0 or self.shrinkage < 0:
            raise InvalidInputError("l2 must be > 0 and shrinkage >= 0")
        if self.neighbours < 1 or self.max_items < 1:
            raise InvalidInputError("neighbours and max_items must be >= 1")
        if self.memory_limit_gb <= 0:
            raise InvalidInputError("memory_limit_gb must be > 0")
        if self.recency_half_life_days is not None and self.recency_half_life_days <= 0:
            raise InvalidInputError("recency_half_life_days must be > 0 (or None for no decay)")
        if any(weight < 0 for weight in self.event_weights.values()):
            raise InvalidInputError("event weights must be >= 0")
        if not self.target_event_types:
            raise InvalidInputError("target_event_types must name at least one event type")
        object.__setattr__(self, "event_weights", dict(self.event_weights))
        object.__setattr__(self, "target_event_types", tuple(self.target_event_types))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_event_types"] = list(self.target_event_types)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecommenderConfig:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if "target_event_types" in known:
            known["target_event_types"] = tuple(known["target_event_types"])
        return cls(**known)


@dataclass(frozen=True)
class _Interactions:
    """Per (user, item) aggregates, sorted by user then item."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    bought: np.ndarray
    item_popularity: np.ndarray
    latest: datetime


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    encoded = column.combine_chunks().dictionary_encode()
    return encoded.indices.to_numpy().astype(np.int64), np.asarray(encoded.dictionary.to_pylist(), dtype=str)


def _aggregate(table: pa.Table, config: RecommenderConfig) -> _Interactions:
    user_codes, user_ids = _codes(table.column(USER))
    item_codes, item_ids = _codes(table.column(ITEM))
    events = table.column(EVENT)
    if events.null_count == table.num_rows:
        weights = np.ones(table.num_rows)
        is_target = np.ones(table.num_rows, dtype=bool)
    else:
        event_types = pc.fill_null(events, "").combine_chunks()
        mapping = pa.array(list(config.event_weights), pa.string())
        index = pc.fill_null(pc.index_in(event_types, value_set=mapping), len(mapping)).to_numpy()
        known_weights = np.append(np.asarray(list(config.event_weights.values()), dtype=float), 1.0)
        weights = known_weights[index]
        is_target = pc.is_in(event_types, value_set=pa.array(config.target_event_types)).to_numpy(zero_copy_only=False)
    micros = table.column(TIME).cast(pa.int64()).to_numpy()
    latest_micros = int(micros.max())
    if config.recency_half_life_days is not None:
        age_days = (latest_micros - micros) / _MICROS_PER_DAY
        weights = weights * np.exp2(-age_days / config.recency_half_life_days)
    n_items = len(item_ids)
    keys = user_codes * n_items + item_codes
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=weights, minlength=unique_keys.size)
    bought = np.bincount(inverse, weights=is_target, minlength=unique_keys.size) > 0
    popularity = np.bincount(item_codes, weights=weights * is_target, minlength=n_items)
    return _Interactions(
        user_ids=user_ids,
        item_ids=item_ids,
        users=unique_keys // n_items,
        items=(unique_keys % n_items).astype(np.int32),
        values=np.log1p(summed).astype(np.float32),
        bought=bought,
        item_popularity=popularity.astype(np.float32),
        latest=datetime.fromtimestamp(latest_micros / 1_000_000, tz=UTC),
    )


@dataclass(frozen=True)
class _Entries:
    """Histories of the users being scored, one entry per (row, item): log-weight and whether it was bought."""

    rows: np.ndarray
    items: np.ndarray
    values: np.ndarray
    bought: np.ndarray


_NO_ITEMS = np.empty(0, dtype=np.int64)


def _top_neighbours(similarity: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest entries of each row (indices and values)."""
    count = min(count, similarity.shape[1])
    indices = np.argpartition(-similarity, count - 1, axis=1)[:, :count]
    return indices.astype(np.int32), np.take_along_axis(similarity, indices, axis=1).astype(np.float32)


def fitted_algorithm(config: RecommenderConfig, modelled_items: int) -> str:
    """The algorithm a fit runs: EASE only while the modelled catalog fits ``max_items``."""
    if config.algorithm == "ease" and modelled_items > config.max_items:
        return "item_knn"
    return config.algorithm


def estimated_memory_bytes(config: RecommenderConfig, rows: int, users: int, items: int) -> dict[str, int]:
    """Estimates of a training job's peak memory, per algorithm it may run, from the input's counts.

    EASE holds four dense ``m x m`` arrays (``m <= min(items, max_items)``); item-kNN holds one block
    of the sparse product at a time. Both hold the aggregated rows, the ids and the neighbour lists.
    The constants cover a whole training job (evaluation fit, then refit): the peak resident memory
    measured by ``benchmarks/training_benchmark.py --catalog`` was 1.1, 1.8, 4.2 and 8.0 GB at 1M, 2M,
    5M and 10M interactions (with the benchmark's own copies of the tables), against estimates of 2.2,
    2.9, 4.9 and 8.2 GB.
    """
    shared = rows * _BYTES_PER_ROW + (users + items) * _BYTES_PER_ID + 3 * items * min(config.neighbours, items) * 8
    modelled = min(items, config.max_items)
    product_block = min(_PRODUCT_BUDGET, items * items)
    estimates = {"item_knn": shared + product_block * _BYTES_PER_PRODUCT_ENTRY, "popularity": shared}
    estimates["ease"] = shared + 4 * modelled * modelled * 8
    return estimates


def check_memory(config: RecommenderConfig, rows: int, users: int, items: int) -> None:
    """Fail before fitting when the estimated peak memory exceeds ``memory_limit_gb``."""
    estimates = estimated_memory_bytes(config, rows, users, items)
    limit = config.memory_limit_gb * _GB
    algorithm = config.algorithm
    needed = estimates["item_knn" if algorithm == "ease" else algorithm]
    if needed > limit:
        raise InvalidInputError(
            f"{rows} interactions over {users} users and {items} items need about {needed / _GB:.1f} GB "
            f"({algorithm}, neighbours={config.neighbours}), over memory_limit_gb={config.memory_limit_gb:g}: "
            "raise memory_limit_gb on a larger training instance, lower neighbours, or train on fewer rows"
        )
    if algorithm == "ease" and min(items, config.max_items) > 1 and estimates["ease"] > limit:
        raise InvalidInputError(
            f"EASE on up to {min(items, config.max_items)} items (max_items={config.max_items}) needs about "
            f"{estimates['ease'] / _GB:.1f} GB, over memory_limit_gb={config.memory_limit_gb:g}: lower max_items "
            "(larger catalogs then use sparse item-kNN) or raise memory_limit_gb on a larger training instance"
        )


def _top_per_row(
    rows: np.ndarray, columns: np.ndarray, values: np.ndarray, n_rows: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest ``values`` of each row of a sparse matrix given as rows sorted ascending.

    Returns (items, weights), ``n_rows x count``; unused slots hold -1 and 0.
    """
    items = np.full((n_rows, count), -1, dtype=np.int32)
    weights = np.zeros((n_rows, count), dtype=np.float32)
    order = np.lexsort((-values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(rows.size) - starts[rows]
    keep = rank < count
    items[rows[keep], rank[keep]] = columns[keep]
    weights[rows[keep], rank[keep]] = values[keep]
    return items, weights


def _sparse_knn(matrix: Any, count: int, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """Top-``count`` cosine neighbours (with shrinkage) of every column of the users x items ``matrix``,
    from the sparse product ``matrix.T @ matrix`` taken a block of items at a time (no dense item x item)."""
    n_items = matrix.shape[1]
    by_item = matrix.T.tocsr()
    norms = np.sqrt(np.asarray(by_item.multiply(by_item).sum(axis=1)).ravel())
    # An item's row of the product has at most as many entries as its users' histories together.
    cost = by_item @ np.diff(matrix.indptr).astype(np.float64)
    block = (np.cumsum(cost) - cost) // _PRODUCT_BUDGET
    edges = np.concatenate([[0], np.flatnonzero(np.diff(block)) + 1, [n_items]])
    items = np.empty((n_items, count), dtype=np.int32)
    weights = np.empty((n_items, count), dtype=np.float32)
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        product = (by_item[start:end] @ matrix).tocsr()
        rows = np.repeat(np.arange(end - start), np.diff(product.indptr))
        columns = product.indices
        off_diagonal = columns != rows + start
        rows, columns = rows[off_diagonal], columns[off_diagonal]
        similarity = product.data[off_diagonal] / (norms[rows + start] * norms[columns] + shrinkage)
        items[start:end], weights[start:end] = _top_per_row(rows, columns, similarity, end - start, count)
    return items, weights


def _item_item(data: _Interactions, config: RecommenderConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Neighbour lists for every item and the algorithm run; items outside the modelled set get none."""
    from scipy import sparse  # training-time only

    n_items = len(data.item_ids)
    n_neighbours = min(config.neighbours, n_items)
    self_items = np.arange(n_items, dtype=np.int32)[:, None]
    neighbour_items = np.tile(self_items, (1, n_neighbours))
    neighbour_weights = np.zeros((n_items, n_neighbours), dtype=np.float32)
    if config.algorithm == "popularity":
        return neighbour_items[:, :1], neighbour_weights[:, :1], "popularity"
    user_counts = np.bincount(data.items, minlength=n_items)
    modelled = np.flatnonzero(user_counts >= 2)
    algorithm = fitted_algorithm(config, modelled.size)
    if modelled.size < 2:
        return neighbour_items, neighbour_weights, algorithm
    column_of = np.full(n_items, -1, dtype=np.int64)
    column_of[modelled] = np.arange(modelled.size)
    keep = column_of[data.items] >= 0
    matrix = sparse.csr_matrix(
        (data.values[keep], (data.users[keep], column_of[data.items[keep]])),
        shape=(len(data.user_ids), modelled.size),
    )
    width = min(n_neighbours, modelled.size - 1)
    if algorithm == "item_knn":
        local_items, weights = _sparse_knn(matrix, width, config.shrinkage)
        unused = local_items < 0
        local_items[unused] = 0
        global_items = modelled[local_items]
        global_items[unused] = np.broadcast_to(modelled[:, None], unused.shape)[unused]
        neighbour_items[modelled, :width] = global_items
        neighbour_weights[modelled, :width] = weights
        return neighbour_items, neighbour_weights, algorithm
    gram = (matrix.T @ matrix).toarray()
    gram[np.diag_indices_from(gram)] += config.l2
    precision = np.linalg.inv(gram)
    similarity = precision / (-np.diag(precision))
    np.fill_diagonal(similarity, -np.inf)
    local_items, weights = _top_neighbours(similarity, width)
    weights[~np.isfinite(weights)] = 0.0
    neighbour_items[modelled, :width] = modelled[local_items]
    neighbour_weights[modelled, :width] = weights
    return neighbour_items, neighbour_weights, algorithm


class Recommender:
    """A fitted model: per-user histories, item neighbour lists and item popularity."""

    def __init__(
        self,
        *,
        config: RecommenderConfig,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        history_indptr: np.ndarray,
        history_items: np.ndarray,
        history_values: np.ndarray,
        history_bought: np.ndarray,
        neighbour_items: np.ndarray,
        neighbour_weights: np.ndarray,
        item_popularity: np.ndarray,
        trained_until: datetime,
        fitted_algorithm: str | None = None,
    ) -> None:
        self.config = config
        self.fitted_algorithm = fitted_algorithm or config.algorithm
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.history_indptr = history_indptr
        self.history_items = history_items
        self.history_values = history_values
        self.history_bought = history_bought
        self.neighbour_items = neighbour_items
        self.neighbour_weights = neighbour_weights
        self.item_popularity = item_popularity
        self.trained_until = trained_until
        self._user_index = {user: index for index, user in enumerate(user_ids.tolist())}
        order = np.argsort(-item_popularity, kind="stable")
        rank = np.empty(len(item_ids), dtype=np.float64)
        rank[order] = np.arange(len(item_ids))
        # A tie-breaker far below any real score: unscored items are ordered by popularity.
        self._popularity_bonus = (1.0 - rank / max(len(item_ids), 1)) * 1e-9
        self._popularity_order = order

    @classmethod
    def fit(
        cls,
        interactions: pa.Table,
        config: RecommenderConfig | None = None,
        columns: ColumnMapping | None = None,
    ) -> Recommender:
        """Fit on every row of ``interactions`` (filter by time before calling)."""
        config = config or RecommenderConfig()
        table = normalise_interactions(interactions, columns or ColumnMapping())
        if table.num_rows == 0:
            raise InvalidInputError("cannot train a recommender on 0 interactions")
        distinct_users = pc.count_distinct(table.column(USER)).as_py()
        if distinct_users < 2:
            raise InvalidInputError(
                f"cannot train a recommender on {distinct_users} distinct user: personalisation needs at least 2 users"
            )
        check_memory(config, table.num_rows, distinct_users, pc.count_distinct(table.column(ITEM)).as_py())
        data = _aggregate(table, config)
        neighbour_items, neighbour_weights, algorithm = _item_item(data, config)
        indptr = np.zeros(len(data.user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(data.users, minlength=len(data.user_ids)), out=indptr[1:])
        return cls(
            config=config,
            user_ids=data.user_ids,
            item_ids=data.item_ids,
            history_indptr=indptr,
            history_items=data.items,
            history_values=data.values,
            history_bought=data.bought,
            neighbour_items=neighbour_items,
            neighbour_weights=neighbour_weights,
            item_popularity=data.item_popularity,
            trained_until=data.latest,
            fitted_algorithm=algorithm,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def knows(self, user_id: str) -> bool:
        return user_id in self._user_index

    def knows_item(self, item_id: str) -> bool:
        return item_id in self._item_index

    def popular_items(self, k: int) -> list[str]:
        return self.item_ids[self._popularity_order[:k]].tolist()

    def recommend(
        self,
        user_ids: Sequence[str],
        k: int = 10,
        exclude_seen: bool = True,
        recent: Mapping[str, Sequence[str]] | None = None,
    ) -> list[list[str]]:
        """Top-``k`` item ids per user, best first.

        Parameters
        ----------
        user_ids
            The users to recommend for; the result follows this order.
        k
            List length (shorter when fewer items remain after exclusion).
        exclude_seen
            Leave out items the user bought (in training or in ``recent``).
        recent
            ``recent[user]``: item ids the user interacted with since the model was trained. Each counts
            as one target event (a purchase) at full recency weight, added to the user's history before
            item-item scoring, so a model that is not retrained still follows what customers did since.
            Items the model does not know are ignored. A user unknown to the model but with known recent
            items gets item-item scores; a user with neither gets the most popular items.

        Example
        -------
        >>> import pyarrow as pa
        >>> from datetime import datetime, timezone
        >>> day = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> rows = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "y"), ("c", "z")]
        >>> model = Recommender.fit(pa.table({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows],
        ...                                   "event_time": [day] * len(rows)}))
        >>> model.recommend(["new"], k=1, recent={"new": ["x", "unknown-item"]})
        [['y']]
        """
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, not {k}")
        if recent is not None and not isinstance(recent, Mapping):
            raise InvalidInputError(f"recent must map user ids to item id lists, not {type(recent).__name__}")
        recent_codes = self._recent_codes(user_ids, recent or {})
        result: list[list[str]] = [self.popular_items(k)] * len(user_ids)
        scored = [
            position for position, user in enumerate(user_ids) if user in self._user_index or position in recent_codes
        ]
        if self.n_items <= _DENSE_SCORING_MAX_ITEMS:
            top_k, rows_per_chunk = self._top_k, max(1, _SCORE_BUDGET // max(self.n_items, 1))
        else:
            top_k, rows_per_chunk = self._top_k_candidates, _CANDIDATE_ROWS
        for start in range(0, len(scored), rows_per_chunk):
            chunk = scored[start : start + rows_per_chunk]
            entries = self._history_entries([user_ids[position] for position in chunk])
            extra = [recent_codes.get(position, _NO_ITEMS) for position in chunk]
            if any(codes.size for codes in extra):
                entries = self._with_recent(entries, extra)
            for position, items in zip(chunk, top_k(entries, len(chunk), k, exclude_seen), strict=True):
                result[position] = items
        return result

    @cached_property
    def _popular_head(self) -> list[int]:
        return self._popularity_order[:_POPULAR_HEAD].tolist()

    @cached_property
    def _item_index(self) -> dict[str, int]:
        return {item: index for index, item in enumerate(self.item_ids.tolist())}

    def _recent_codes(self, user_ids: Sequence[str], recent: Mapping[str, Sequence[str]]) -> dict[int, np.ndarray]:
        """Request position -> codes of the recent items the model knows (positions with none left out)."""
        codes: dict[int, np.ndarray] = {}
        if not recent:
            return codes
        for position, user in enumerate(user_ids):
            items = recent.get(user)
            if not items:
                continue
            if isinstance(items, str):
                raise InvalidInputError(f"recent items of {user!r} must be a list of item ids, not a string")
            known = [self._item_index[item] for item in items if isinstance(item, str) and item in self._item_index]
            if known:
                codes[position] = np.asarray(known, dtype=np.int64)
        return codes

    def _history_entries(self, user_ids: Sequence[str]) -> _Entries:
        """The stored histories of ``user_ids`` as flat (row, item, value, bought) arrays; unknown users have none."""
        index = [(row, self._user_index[user]) for row, user in enumerate(user_ids) if user in self._user_index]
        rows_known = np.asarray([row for row, _ in index], dtype=np.int64)
        users = np.asarray([user for _, user in index], dtype=np.int64)
        starts, ends = self.history_indptr[users], self.history_indptr[users + 1]
        lengths = ends - starts
        entries = np.repeat(ends - lengths.cumsum(), lengths) + np.arange(lengths.sum())
        return _Entries(
            rows=np.repeat(rows_known, lengths),
            items=self.history_items[entries].astype(np.int64),
            values=self.history_values[entries],
            bought=self.history_bought[entries],
        )

    def _with_recent(self, stored: _Entries, recent: list[np.ndarray]) -> _Entries:
        """``stored`` plus one target event per recent item, aggregated per (row, item) like training does."""
        target = self.config.target_event_types[0]
        weight = float(self.config.event_weights.get(target, 1.0))
        lengths = np.asarray([codes.size for codes in recent])
        rows = np.concatenate([stored.rows, np.repeat(np.arange(len(recent)), lengths)])
        items = np.concatenate([stored.items, *recent])
        raw = np.concatenate([np.expm1(stored.values), np.full(int(lengths.sum()), weight)])
        bought = np.concatenate([stored.bought, np.ones(int(lengths.sum()), dtype=bool)])
        keys, inverse = np.unique(rows * self.n_items + items, return_inverse=True)
        return _Entries(
            rows=keys // self.n_items,
            items=keys % self.n_items,
            values=np.log1p(np.bincount(inverse, weights=raw, minlength=keys.size)),
            bought=np.bincount(inverse, weights=bought, minlength=keys.size) > 0,
        )

    @cached_property
    def _neighbour_matrix(self) -> np.ndarray:
        """The neighbour lists as an item x item matrix (row: the history item; column: its neighbour)."""
        sources = np.repeat(np.arange(self.n_items, dtype=np.int64), self.neighbour_items.shape[1])
        cells = sources * self.n_items + self.neighbour_items.ravel()
        matrix = np.bincount(cells, weights=self.neighbour_weights.ravel(), minlength=self.n_items * self.n_items)
        return matrix.reshape(self.n_items, self.n_items)

    def _scores(self, entries: _Entries, n_rows: int) -> np.ndarray:
        """Rows x items: each row's history items' neighbour weights, weighted by the history's values and
        summed. Either the histories as a matrix times the neighbour matrix (small catalogs, long
        histories), or every (history item, neighbour) pair added where it lands; both sum the same terms."""
        pairs = entries.items.size * self.neighbour_items.shape[1]
        if self.n_items <= _NEIGHBOUR_MATRIX_MAX_ITEMS and n_rows * self.n_items**2 <= _PRODUCT_ADVANTAGE * pairs:
            cells = entries.rows * self.n_items + entries.items
            histories = np.bincount(cells, weights=entries.values, minlength=n_rows * self.n_items)
            return histories.reshape(n_rows, self.n_items) @ self._neighbour_matrix
        targets = self.neighbour_items[entries.items]
        contributions = entries.values[:, None] * self.neighbour_weights[entries.items]
        flat = (entries.rows[:, None] * self.n_items + targets).ravel()
        scores = np.bincount(flat, weights=contributions.ravel(), minlength=n_rows * self.n_items)
        return scores.reshape(n_rows, self.n_items)

    def _top_k(self, entries: _Entries, n_rows: int, k: int, exclude_seen: bool) -> list[list[str]]:
        scores = self._scores(entries, n_rows) + self._popularity_bonus
        if exclude_seen:
            scores[entries.rows[entries.bought], entries.items[entries.bought]] = -np.inf
        k = min(k, self.n_items)
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, best, axis=1)
        ranked = np.take_along_axis(best, np.argsort(-best_scores, axis=1, kind="stable"), axis=1)
        finite = np.isfinite(np.take_along_axis(scores, ranked, axis=1))
        if finite.all():  # one conversion for the whole chunk, unless some rows ran out of unseen items
            return self.item_ids[ranked].tolist()
        return [self.item_ids[row[keep]].tolist() for row, keep in zip(ranked, finite, strict=True)]

    def _top_k_candidates(self, entries: _Entries, n_rows: int, k: int, exclude_seen: bool) -> list[list[str]]:
        """``_top_k`` for large catalogs: scores only the items the rows' neighbour lists reach, then fills
        with the most popular items, which is the order ``_top_k`` gives every item scored 0."""
        contributions = (entries.values[:, None] * self.neighbour_weights[entries.items]).ravel()
        flat = (entries.rows[:, None] * self.n_items + self.neighbour_items[entries.items]).ravel()
        keys, inverse = np.unique(flat, return_inverse=True)
        scores = np.bincount(inverse, weights=contributions, minlength=keys.size)
        rows, items = keys // self.n_items, keys % self.n_items
        excluded = scores < 0
        if exclude_seen:
            bought = entries.rows[entries.bought] * self.n_items + entries.items[entries.bought]
            excluded |= np.isin(keys, bought)
            bought_rows = entries.rows[entries.bought]
        positive = (scores > 0) & ~excluded
        order = np.lexsort((-(scores[positive] + self._popularity_bonus[items[positive]]), rows[positive]))
        ranked_rows, ranked_items = rows[positive][order], items[positive][order]
        starts = np.searchsorted(ranked_rows, np.arange(n_rows + 1))
        skipped_rows, skipped_items = rows[excluded | positive], items[excluded | positive]
        if exclude_seen:
            skipped_rows = np.concatenate([skipped_rows, bought_rows])
            skipped_items = np.concatenate([skipped_items, entries.items[entries.bought]])
        skip_starts = np.searchsorted(np.sort(skipped_rows), np.arange(n_rows + 1))
        skipped_items = skipped_items[np.argsort(skipped_rows, kind="stable")]
        result = []
        for row in range(n_rows):
            chosen = ranked_items[starts[row] : starts[row + 1]][:k].tolist()
            if len(chosen) < k:
                skip = set(skipped_items[skip_starts[row] : skip_starts[row + 1]].tolist())
                popular = self._popular_head if k + len(skip) <= len(self._popular_head) else self._popularity_order
                for item in popular:
                    if len(chosen) == k:
                        break
                    if item not in skip:
                        chosen.append(int(item))
            result.append(self.item_ids[chosen].tolist())
        return result

    def seen_items(self, user_id: str, bought_only: bool = True) -> list[str]:
        index = self._user_index.get(user_id)
        if index is None:
            return []
        span = slice(self.history_indptr[index], self.history_indptr[index + 1])
        items = self.history_items[span]
        if bought_only:
            items = items[self.history_bought[span]]
        return self.item_ids[items].tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "fitted_algorithm": self.fitted_algorithm,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": int(self.history_items.size),
            "trained_until": self.trained_until.isoformat(),
        }

    def save(self, directory: str | os.PathLike[str]) -> None:
        os.makedirs(directory, exist_ok=True)
        np.savez(
            os.path.join(directory, MODEL_ARRAYS),
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            history_indptr=self.history_indptr,
            history_items=self.history_items,
            history_values=self.history_values,
            history_bought=self.history_bought,
            neighbour_items=self.neighbour_items,
            neighbour_weights=self.neighbour_weights,
            item_popularity=self.item_popularity,
        )
        with open(os.path.join(directory, MODEL_META), "w", encoding="utf-8") as handle:
            json.dump(self.describe(), handle, indent=2, sort_keys=True)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Recommender:
        meta_path = os.path.join(directory, MODEL_META)
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"{directory}: no {MODEL_META} (not a driftloop recommender)")
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
        if meta.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError(f"{directory}: model format {meta.get('format_version')} is not {FORMAT_VERSION}")
        with np.load(os.path.join(directory, MODEL_ARRAYS), allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in arrays.files}
        return cls(
            config=RecommenderConfig.from_dict(meta["config"]),
            trained_until=datetime.fromisoformat(meta["trained_until"]),
            fitted_algorithm=meta.get("fitted_algorithm"),
            **loaded,
        )
