"""Exact bin indices of many values against fixed sorted edges, without sorting the values.

Sorting a record batch or binary-searching each value costs about a hundred nanoseconds per value;
this costs a few. Each value gets an integer key that never decreases as the value grows (the value
minus a centre, its magnitude plus a scale, read as the bits of a float: positive floats are ordered
like their bits, so the key is logarithmic far from the centre and linear near it), and the key's top
bits pick a bucket of a table. Every edge whose bucket is below a value's bucket is below the value,
and every edge whose bucket is above is above it, so the table gives each value's index up to the few
edges sharing its bucket; comparing the value with those edges, one at a time, finishes it. Nothing
is approximate: the result is ``np.searchsorted(edges, values, side="left")`` whatever the data.

Example
-------
>>> import numpy as np
>>> index = EdgeIndex(np.array([1.0, 2.0, 4.0]))
>>> index.bins(np.array([0.5, 1.0, 1.5, 4.0, 9.0])).tolist()
[0, 0, 1, 2, 3]
>>> [counts.tolist() for counts in index.counts_and_ties(np.array([0.5, 1.0, 1.5, 4.0, 9.0]))]
[[2, 1, 1, 1], [1, 0, 1, 0]]
"""

from __future__ import annotations

import numpy as np

BUCKETS_PER_EDGE = 8
MAX_ROUNDS = 4
CHUNK = 32_768  # values at a time, so that the temporaries stay in the processor's cache


class EdgeIndex:
    """Bins ``(-inf, e0], (e0, e1], ..., (e[-1], inf)`` of strictly increasing finite ``edges``.

    Parameters
    ----------
    edges
        Strictly increasing finite bin edges.
    buckets_per_edge
        Table size per edge: more buckets leave fewer edges to compare one by one.

    References
    ----------
    The table of buckets over a monotone key is the classic interpolation-table speed-up of a sorted
    search (e.g. Knuth, TAOCP vol. 3, 6.2.1); the float-bits order is IEEE 754's design.
    """

    def __init__(self, edges: np.ndarray, buckets_per_edge: int = BUCKETS_PER_EDGE) -> None:
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size == 0 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise ValueError("edges must be a non-empty, strictly increasing array of finite values")
        if buckets_per_edge < 1:
            raise ValueError("buckets_per_edge must be at least 1")
        size = edges.size
        self.edges = edges
        self._padded = np.append(edges, np.inf)
        self._centre = float(edges[size // 2])
        spread = float(edges[(3 * size) // 4] / 2 - edges[size // 4] / 2)
        self._scale = max(spread, float(edges[-1] / 2 - edges[0] / 2) * 2.0**-29, float(np.finfo(np.float64).tiny))
        self._scale_bits = int(np.float64(self._scale).view(np.int64))
        keys = self._keys(edges)
        self._low, self._high = int(keys.min()), int(keys.max())
        self._low_unsigned = np.int64(self._low).view(np.uint64)
        target = 1 << (buckets_per_edge * size - 1).bit_length()
        self._shift = np.uint64(max(0, ((self._high - self._low) // target).bit_length()))
        edge_buckets = self._buckets(edges)
        per_bucket = np.bincount(edge_buckets)
        self._table = np.concatenate([[0], np.cumsum(per_bucket)[:-1]]).astype(np.int32 if size < 2**31 else np.int64)
        self._shared = per_bucket > 0
        self._rounds = int(per_bucket.max())

    def _keys(self, values: np.ndarray) -> np.ndarray:
        """The monotone integer key of each value (in place of a fresh array, for speed)."""
        with np.errstate(over="ignore"):  # beyond the float range is infinite: still in order
            offset = values - self._centre
            sign = offset.view(np.int64) >> 63  # -1 for negative offsets (and -0.0), else 0
            np.abs(offset, out=offset)
            offset += self._scale
        keys = offset.view(np.int64)
        keys -= self._scale_bits
        keys ^= sign
        keys -= sign
        return keys

    def _buckets(self, values: np.ndarray) -> np.ndarray:
        keys = self._keys(values)
        np.clip(keys, self._low, self._high, out=keys)
        buckets = keys.view(np.uint64)
        buckets -= self._low_unsigned
        buckets >>= self._shift
        return buckets.view(np.int64)

    def _locate(self, values: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write each value's bin into ``index``; return the values that share a bucket with an edge
        (the only ones that can equal an edge) and their bins."""
        buckets = self._buckets(values)
        np.take(self._table, buckets, out=index)
        shared_mask = np.take(self._shared, buckets)
        # Where most values share a bucket with an edge (few distinct values), work on all in place.
        shared = None if 2 * np.count_nonzero(shared_mask) > values.size else np.flatnonzero(shared_mask)
        near, near_index = (values, index) if shared is None else (values[shared], index[shared])
        for _ in range(min(self._rounds, MAX_ROUNDS)):
            near_index += self._padded[near_index] < near
        if self._rounds > MAX_ROUNDS:
            unresolved = np.flatnonzero(self._padded[near_index] < near)
            if unresolved.size:
                near_index[unresolved] = np.searchsorted(self.edges, near[unresolved], side="left")
        if shared is not None:
            index[shared] = near_index
        return near, near_index

    def bins(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin, ``np.searchsorted(edges, values, side="left")`` (values must not be NaN)."""
        values = np.asarray(values, dtype=np.float64)
        index = np.empty(values.size, dtype=self._table.dtype)
        for start in range(0, values.size, CHUNK):
            self._locate(values[start : start + CHUNK], index[start : start + CHUNK])
        return index

    def counts_and_ties(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How many values fall in each of the ``edges.size + 1`` bins, and how many of each bin's values
        equal its upper edge."""
        values = np.asarray(values, dtype=np.float64)
        index = np.empty(values.size, dtype=self._table.dtype)
        ties = [np.empty(0, dtype=index.dtype)]
        for start in range(0, values.size, CHUNK):
            near, near_index = self._locate(values[start : start + CHUNK], index[start : start + CHUNK])
            ties.append(near_index[near == self._padded[near_index]])
        size = self.edges.size + 1
        return np.bincount(index, minlength=size), np.bincount(np.concatenate(ties), minlength=size)
