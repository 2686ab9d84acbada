from __future__ import annotations

import numpy as np
import pytest

from driftloop.backtest.periods import PeriodSpec, period_of
from driftloop.errors import InvalidInputError


def _times(*values: str) -> np.ndarray:
    return np.array(values, dtype="datetime64[us]")


@pytest.mark.parametrize(
    "text, expected", [("month", "month"), ("WEEK", "week"), ("14-days", "14-days"), ("1-day", "1-days")]
)
def test_parse(text, expected):
    assert str(PeriodSpec.parse(text)) == expected


@pytest.mark.parametrize("text", ["year", "0-days", "days", "-3-days", "2 weeks"])
def test_parse_rejects(text):
    with pytest.raises(InvalidInputError, match="--period"):
        PeriodSpec.parse(text)


def test_months_are_calendar_months():
    times = _times("2025-01-31T23:59:59", "2025-02-01T00:00:00", "2025-04-10")
    numbers, starts = period_of(times, PeriodSpec("month"))
    assert numbers.tolist() == [0, 1, 3]
    assert [PeriodSpec("month").label(start) for start in starts] == [
        "2025-01",
        "2025-02",
        "2025-03",
        "2025-04",
        "2025-05",
    ]


def test_weeks_start_on_monday():
    # 2025-03-09 is a Sunday, 2025-03-10 a Monday.
    numbers, starts = period_of(_times("2025-03-09T12:00", "2025-03-10T00:00", "2025-03-16T23:00"), PeriodSpec("week"))
    assert numbers.tolist() == [0, 1, 1]
    assert PeriodSpec("week").label(starts[0]) == "2025-03-03"


def test_n_days_count_from_the_first_day():
    spec = PeriodSpec.parse("10-days")
    numbers, starts = period_of(_times("2025-01-05T08:00", "2025-01-14T23:00", "2025-01-15", "2025-02-20"), spec)
    assert numbers.tolist() == [0, 0, 1, 4]
    assert spec.label(starts[1]) == "2025-01-15"


def test_no_events():
    with pytest.raises(InvalidInputError, match="no events"):
        period_of(_times(), PeriodSpec("month"))
