"""Which served recommendations converted: captured requests joined with the shop's purchases.

A request served at ``t`` converts when, within ``[t, t + window]``:
- a purchase carrying its ``inference_id`` (the ``inferenceId`` the caller set on InvokeEndpoint)
  happened: the shop said which recommendation the purchase came from; or
- the same user bought one of the recommended items with a purchase that carries no ``inference_id``
  (attribution by user and time).

A tagged purchase is never attributed by user and time as well, so a shop that tags its purchases gets
exactly its own attribution. The result has the feedback log's columns (``variant``, ``served_at``,
``converted``, ``latency_ms``, ``error``), so the A/B analysis and the concept-drift check read it unchanged;
Data Capture records neither latency nor errors, so those are null (the guardrails then judge nothing).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.capture import ServedRecommendation
from driftloop.data.inputs import READ_ERRORS
from driftloop.errors import InvalidInputError

PURCHASE = "purchase"
PURCHASE_COLUMNS = ("user_id", "item_id", "event_time")
INFERENCE_ID_COLUMN = "inference_id"
_TIME = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PURCHASE_READ_COLUMNS = (*PURCHASE_COLUMNS, "event_type", INFERENCE_ID_COLUMN)
# What reading one purchases object can raise; such an object is counted as unreadable (KeyError: a
# column name used twice).
UNREADABLE_PURCHASES = (InvalidInputError, KeyError, *READ_ERRORS)

PURCHASES_SCHEMA = pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("event_time", _TIME),
                              (INFERENCE_ID_COLUMN, pa.string())])
ATTRIBUTED_SCHEMA = pa.schema([
    ("variant", pa.string()), ("served_at", _TIME), ("converted", pa.bool_()), ("latency_ms", pa.float64()),
    ("error", pa.bool_()), ("user_id", pa.string()), ("event_id", pa.string()), ("inference_id", pa.string()),
    ("purchased_item", pa.string()),
])


def purchases_of(table: pa.Table) -> pa.Table:
    """The purchase events of an upload: ``user_id``, ``item_id``, ``event_time`` (UTC) and ``inference_id``
    (null where the upload has no such column). Rows without a user, item or time are left out."""
    missing = [name for name in (*PURCHASE_COLUMNS, "event_type") if name not in table.column_names]
    if missing:
        raise InvalidInputError(f"upload lacks columns {missing}")
    event_time = table["event_time"]
    if not pa.types.is_timestamp(event_time.type) or event_time.type.tz is None:
        raise InvalidInputError(f"event_time must be a timezone-aware timestamp, got {event_time.type}")
    keep = pc.fill_null(pc.equal(table["event_type"].cast(pa.string()), PURCHASE), False)
    for name in PURCHASE_COLUMNS:
        keep = pc.and_(keep, pc.is_valid(table[name]))
    table = table.filter(keep)
    tagged = (table[INFERENCE_ID_COLUMN].cast(pa.string()) if INFERENCE_ID_COLUMN in table.column_names
              else pa.nulls(table.num_rows, pa.string()))
    return pa.table({"user_id": table["user_id"].cast(pa.string()), "item_id": table["item_id"].cast(pa.string()),
                     "event_time": table["event_time"].cast(_TIME), INFERENCE_ID_COLUMN: tagged},
                    schema=PURCHASES_SCHEMA)


def read_purchase_file(parquet: pq.ParquetFile) -> pa.Table:
    """The purchases of one Parquet object (an upload or purchase events), reading only the columns
    ``purchases_of`` needs; raises one of ``UNREADABLE_PURCHASES`` when it cannot."""
    columns = [name for name in _PURCHASE_READ_COLUMNS if name in parquet.schema_arrow.names]
    return purchases_of(parquet.read(columns=columns))


def attribute(served: Sequence[ServedRecommendation], purchases: pa.Table, window: timedelta) -> pa.Table:
    """One row per served recommendation with ``converted`` and the item that converted it (if any).

    Parameters
    ----------
    served
        Requests read from Data Capture.
    purchases
        Purchases as ``purchases_of`` returns them.
    window
        The attribution window; a purchase exactly ``window`` after serving still counts.

    Example
    -------
    >>> from datetime import datetime, UTC
    >>> at = datetime(2026, 3, 14, 18, tzinfo=UTC)
    >>> served = [ServedRecommendation("champion", "e1", at, "u1", ("i1", "i2")),
    ...           ServedRecommendation("champion", "e2", at, "u2", ("i1",), inference_id="r-2")]
    >>> bought = pa.table({"user_id": ["u1", "u2"], "item_id": ["i2", "i9"],
    ...                    "event_time": pa.array([at + timedelta(minutes=5)] * 2, _TIME),
    ...                    "inference_id": [None, "r-2"]})
    >>> attribute(served, bought, timedelta(minutes=60))["converted"].to_pylist()
    [True, True]
    >>> attribute(served, bought, timedelta(minutes=1))["converted"].to_pylist()
    [False, False]
    """
    return PurchaseIndex(purchases).attribute(served, window)


class PurchaseIndex:
    """Purchases indexed by user (untagged) and by ``inference_id`` (tagged), built once and searched for every
    served request: attributing many capture files against the same purchases costs one index.

    Parameters
    ----------
    purchases
        Purchases as ``purchases_of`` returns them.
    """

    def __init__(self, purchases: pa.Table) -> None:
        self._by_user: dict[str, list[tuple[int, str]]] = {}
        self._by_inference: dict[str, list[tuple[int, str]]] = {}
        times = purchases["event_time"].cast(pa.int64()).to_pylist()
        for user, item, moment, tag in zip(purchases["user_id"].to_pylist(), purchases["item_id"].to_pylist(),
                                           times, purchases[INFERENCE_ID_COLUMN].to_pylist(), strict=True):
            index = self._by_user if tag is None else self._by_inference
            index.setdefault(user if tag is None else tag, []).append((moment, item))
        for events in (*self._by_user.values(), *self._by_inference.values()):
            events.sort()

    def attribute(self, served: Sequence[ServedRecommendation], window: timedelta) -> pa.Table:
        """``attribute(served, purchases, window)`` against the indexed purchases."""
        if window < timedelta(0):
            raise InvalidInputError(f"attribution window must not be negative, got {window}")
        window_us = window // _MICROSECOND
        # Microseconds since the epoch: pyarrow takes them ten times faster than aware datetimes.
        starts = [(row.served_at - _EPOCH) // _MICROSECOND for row in served]
        converted, purchased = [], []
        for row, start in zip(served, starts, strict=True):
            item = _first_in_window(self._by_inference.get(row.inference_id, []) if row.inference_id else [],
                                    start, start + window_us, None)
            if item is None:
                item = _first_in_window(self._by_user.get(row.user_id, []), start, start + window_us, set(row.items))
            converted.append(item is not None)
            purchased.append(item)
        return pa.table({
            "variant": pa.array([row.variant for row in served], pa.string()),
            "served_at": pa.array(starts, pa.int64()).cast(_TIME),
            "converted": pa.array(converted, pa.bool_()),
            "latency_ms": pa.nulls(len(served), pa.float64()),
            "error": pa.nulls(len(served), pa.bool_()),
            "user_id": pa.array([row.user_id for row in served], pa.string()),
            "event_id": pa.array([row.event_id for row in served], pa.string()),
            "inference_id": pa.array([row.inference_id for row in served], pa.string()),
            "purchased_item": pa.array(purchased, pa.string()),
        }, schema=ATTRIBUTED_SCHEMA)


def _first_in_window(events: list[tuple[int, str]], start: int, end: int, items: set[str] | None) -> str | None:
    """The first purchased item in [start, end] (of ``items`` when given), from events sorted by time."""
    low, high = bisect_left(events, (start, "")), bisect_right(events, (end, "\U0010ffff"))
    for _, item in events[low:high]:
        if items is None or item in items:
            return item
    return None
