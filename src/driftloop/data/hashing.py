"""Deterministic 64-bit row hashes of chosen columns, vectorised with numpy.

Used to spread rows over buckets (equal keys always meet in one bucket) and to draw
reproducible samples. Stable across runs, processes and machines; not cryptographic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_STRING_BASE = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole word."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def is_fixed_width(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_temporal(data_type)
        or pa.types.is_boolean(data_type)
    )


def _fixed_width_words(column: pa.Array) -> np.ndarray:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    elif pa.types.is_temporal(column.type):
        column = column.view(pa.int64()) if column.type.bit_width == 64 else column.cast(pa.int64())
    filled = pc.fill_null(column, 0) if column.null_count else column
    values = filled.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        values = values.astype(np.float64).view(np.uint64)
    return values.astype(np.uint64, copy=False)


def _string_words(column: pa.Array) -> np.ndarray:
    """A polynomial hash of each string's bytes and its length."""
    if not (pa.types.is_string(column.type) or pa.types.is_binary(column.type)):
        column = column.cast(pa.string())
    if column.null_count:
        column = pc.fill_null(column, "")
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    lengths = np.diff(offsets).astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    if last == first:
        return lengths.astype(np.uint64)
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[first:last]
    starts = offsets[:-1].astype(np.int64) - first
    positions = np.arange(last - first, dtype=np.int64) - np.repeat(starts, lengths)
    powers = np.cumprod(np.full(int(lengths.max()), _STRING_BASE, dtype=np.uint64))
    contributions = data.astype(np.uint64) * powers[positions]
    non_empty = lengths > 0
    sums = np.zeros(len(column), dtype=np.uint64)
    sums[non_empty] = np.add.reduceat(contributions, starts[non_empty])
    return sums ^ (lengths.astype(np.uint64) * _GOLDEN)


def row_hashes(table: pa.Table | pa.RecordBatch, columns: Sequence[str], seed: int = 0) -> np.ndarray:
    """One uint64 per row, a function of the values in ``columns`` (nulls hash alike)."""
    hashes = np.full(table.num_rows, (seed * int(_GOLDEN) + 1) % (1 << 64), dtype=np.uint64)
    for name in columns:
        column = table.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        words = _fixed_width_words(column) if is_fixed_width(column.type) else _string_words(column)
        if column.null_count:
            words = np.where(column.is_null().to_numpy(zero_copy_only=False), _NULL_HASH, words)
        hashes = _mix(hashes * np.uint64(31) + _mix(words))
    return hashes


def unit_interval(hashes: np.ndarray) -> np.ndarray:
    """Hashes mapped to floats uniform in [0, 1)."""
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
