"""Interaction tables for the recommender: read any Parquet a user brings, normalise, split by time.

Normalised tables have the columns ``user_id`` (string), ``item_id`` (string), ``event_time``
(timestamp[us, UTC]) and ``event_type`` (string, may be all null when the source has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.errors import InvalidInputError
from driftloop.storage import ParquetSource

# The SageMaker scikit-learn 1.4-2 container runs Python 3.10, which lacks datetime.UTC.
UTC = timezone.utc  # noqa: UP017
USER, ITEM, TIME, EVENT = "user_id", "item_id", "event_time", "event_type"
# A time part followed by a UTC offset; a bare date's "-dd" is not one.
_ISO_OFFSET = r"[T ]\d.*(Z|[+-]\d\d(:?\d\d)?)$"
NORMALISED_SCHEMA = pa.schema(
    [(USER, pa.string()), (ITEM, pa.string()), (TIME, pa.timestamp("us", tz="UTC")), (EVENT, pa.string())]
)


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold the user, item, time and (optionally) event type."""

    user_col: str = USER
    item_col: str = ITEM
    time_col: str = TIME
    event_type_col: str | None = EVENT

    def __post_init__(self) -> None:
        names = [self.user_col, self.item_col, self.time_col]
        if self.event_type_col:
            names.append(self.event_type_col)
        if any(not name for name in names[:3]):
            raise InvalidInputError("user_col, item_col and time_col must be non-empty")
        if len(set(names)) != len(names):
            raise InvalidInputError(f"column names must be distinct: {names}")


def _as_utc_timestamp(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return column.cast(pa.timestamp(kind.unit, tz="UTC")).cast(NORMALISED_SCHEMA.field(TIME).type)
        return column.cast(NORMALISED_SCHEMA.field(TIME).type)
    if pa.types.is_date(kind):
        return column.cast(pa.timestamp("s")).cast(pa.timestamp("s", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = pc.multiply(column.cast(pa.float64()), 1_000_000.0)
        micros = pc.round(seconds).cast(pa.int64())
        return micros.cast(pa.timestamp("us", tz="UTC"))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _parse_iso_strings(column, name)
    raise InvalidInputError(f"time column {name!r} has type {kind}; expected a timestamp, date, number or ISO string")


def _parse_iso_strings(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """ISO-8601 strings (date, or date and time to microseconds, ``T`` or space) as UTC; those with an
    offset (``Z``, ``+hh``, ``+hhmm``, ``+hh:mm``) are shifted by it, those without are taken as UTC.

    Arrow parses each kind only into its own timestamp type, so the column is split by a regex.
    """
    utc = NORMALISED_SCHEMA.field(TIME).type
    text = pc.utf8_trim_whitespace(column)
    has_offset = pc.match_substring_regex(text, _ISO_OFFSET)
    missing = pa.scalar(None, pa.string())
    try:
        shifted = pc.if_else(has_offset, text, missing).cast(utc)
        naive = pc.if_else(has_offset, missing, text).cast(pa.timestamp("us")).cast(utc)
    except pa.ArrowInvalid as error:
        raise InvalidInputError(f"time column {name!r}: {error}") from None
    return pc.coalesce(shifted, naive)


def normalise_interactions(table: pa.Table, columns: ColumnMapping) -> pa.Table:
    """Select and rename the recommender's columns; drop rows without user, item or time."""
    missing = [c for c in (columns.user_col, columns.item_col, columns.time_col) if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"interactions lack column(s) {missing}; found {table.column_names}")
    users = table.column(columns.user_col).cast(pa.string())
    items = table.column(columns.item_col).cast(pa.string())
    times = _as_utc_timestamp(table.column(columns.time_col), columns.time_col)
    if columns.event_type_col and columns.event_type_col in table.column_names:
        events = table.column(columns.event_type_col).cast(pa.string())
    else:
        events = pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
    normalised = pa.Table.from_arrays([users, items, times, events], schema=NORMALISED_SCHEMA)
    valid = pc.and_(pc.and_(pc.is_valid(users), pc.is_valid(items)), pc.is_valid(times))
    return normalised.filter(valid)


def read_interactions(source: ParquetSource, columns: ColumnMapping) -> pa.Table:
    """Read only the needed columns of every file (schemas may differ between files) and normalise."""
    wanted = [columns.user_col, columns.item_col, columns.time_col]
    if columns.event_type_col:
        wanted.append(columns.event_type_col)
    parts = []
    for index, path in enumerate(source.paths):
        with source.filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = [name for name in wanted if name in parquet.schema_arrow.names]
            try:
                parts.append(normalise_interactions(parquet.read(columns=present), columns))
            except InvalidInputError as error:
                raise InvalidInputError(f"{source.label(index)}: {error}") from None
    if not parts:
        return NORMALISED_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def parse_time(value: str | datetime) -> datetime:
    """An ISO-8601 instant as an aware UTC datetime (naive input is taken as UTC)."""
    parsed = value if isinstance(value, datetime) else _parse_iso_aware(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_iso_aware(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidInputError(f"cannot parse time {value!r}: {error}") from None


def before(table: pa.Table, cutoff: datetime) -> pa.Table:
    """Rows strictly before ``cutoff``."""
    return table.filter(pc.less(table.column(TIME), pa.scalar(parse_time(cutoff), NORMALISED_SCHEMA.field(TIME).type)))


def at_or_after(table: pa.Table, cutoff: datetime) -> pa.Table:
    return table.filter(
        pc.greater_equal(table.column(TIME), pa.scalar(parse_time(cutoff), NORMALISED_SCHEMA.field(TIME).type))
    )


def time_quantile(table: pa.Table, fraction: float) -> datetime:
    """The instant before which ``fraction`` of the rows happened."""
    micros = table.column(TIME).cast(pa.int64()).to_numpy()
    if micros.size == 0:
        raise InvalidInputError("no interactions to split")
    instant = int(np.quantile(micros, fraction, method="higher"))
    return datetime.fromtimestamp(instant / 1_000_000, tz=UTC)


def target_rows(table: pa.Table, target_event_types: Iterable[str]) -> pa.Table:
    """The rows that count as a 'purchase': the target event types, or every row when none is typed."""
    events = table.column(EVENT)
    if events.null_count == table.num_rows:
        return table
    return table.filter(pc.is_in(events, value_set=pa.array(list(target_event_types), pa.string())))


def holdout_items(table: pa.Table, target_event_types: Iterable[str]) -> dict[str, set[str]]:
    """Each user's set of target-event items (what a good recommender should have surfaced)."""
    targets = target_rows(table, target_event_types)
    grouped: dict[str, set[str]] = {}
    for user, item in zip(targets.column(USER).to_pylist(), targets.column(ITEM).to_pylist(), strict=True):
        grouped.setdefault(user, set()).add(item)
    return grouped
