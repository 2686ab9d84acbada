from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from driftloop.errors import InvalidInputError
from driftloop.model.data import ColumnMapping, normalise_interactions

UTC = timezone.utc  # noqa: UP017


def times_of(values: list[str | None]) -> list[datetime | None]:
    table = pa.table({"user_id": ["u"] * len(values), "item_id": ["i"] * len(values), "event_time": values})
    return normalise_interactions(table, ColumnMapping(event_type_col=None)).column("event_time").to_pylist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T10", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T10:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01 10:00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        (" 2026-01-01T10:00:00 ", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T10:00:00Z", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T10:00:00+02:00", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01T10:00:00+02", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01 10:00:00-0700", datetime(2026, 1, 1, 17, tzinfo=UTC)),
        ("2026-01-01T10:00:00.123456-05:30", datetime(2026, 1, 1, 15, 30, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T00:30:00.5+01:00", datetime(2025, 12, 31, 23, 30, 0, 500000, tzinfo=UTC)),
    ],
)
def test_iso_strings_with_and_without_offsets_become_utc(text: str, expected: datetime) -> None:
    assert times_of([text]) == [expected]


def test_a_column_mixing_offsets_dates_and_nulls_keeps_each_row() -> None:
    times = times_of(["2026-03-29T03:00:00+02:00", "2026-03-29", None, "2026-03-29T01:00"])
    start = datetime(2026, 3, 29, tzinfo=UTC)
    assert times == [start + timedelta(hours=1), start, start + timedelta(hours=1)]  # the null row is dropped


@pytest.mark.parametrize("text", ["not a time", "2026-13-01T00:00", "2026-01-01T10:00:00.123456789Z"])
def test_unparseable_times_name_the_column(text: str) -> None:
    with pytest.raises(InvalidInputError, match="time column 'event_time'.*Failed to parse"):
        times_of(["2026-01-01", text])


def test_large_string_and_empty_time_columns_parse_too() -> None:
    table = pa.table(
        {"user_id": ["u"], "item_id": ["i"], "event_time": pa.array(["2026-01-01T10:00+01:00"], pa.large_string())}
    )
    normalised = normalise_interactions(table, ColumnMapping(event_type_col=None))
    assert normalised.column("event_time").to_pylist() == [datetime(2026, 1, 1, 9, tzinfo=UTC)]
    assert normalise_interactions(table.slice(0, 0), ColumnMapping(event_type_col=None)).num_rows == 0
