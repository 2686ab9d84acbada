"""Cut an event history into consecutive periods: calendar months, Monday-to-Sunday weeks or N-day spans."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from driftloop.errors import InvalidInputError

_DAYS_PATTERN = re.compile(r"^([1-9][0-9]*)-days?$")
# 1970-01-01 was a Thursday: adding 3 to a day number makes Monday the start of a 7-day block.
_MONDAY_OFFSET = 3


@dataclass(frozen=True)
class PeriodSpec:
    """``month``, ``week`` or ``N-days``, parsed by :meth:`parse`."""

    unit: str
    days: int = 0

    def __post_init__(self) -> None:
        if self.unit not in ("month", "week", "days"):
            raise InvalidInputError(f"period unit must be month, week or days, not {self.unit!r}")
        if (self.unit == "days") != (self.days >= 1):
            raise InvalidInputError("a days period needs days >= 1 (and only a days period has days)")

    @classmethod
    def parse(cls, text: str) -> PeriodSpec:
        value = text.strip().lower()
        if value in ("month", "week"):
            return cls(value)
        match = _DAYS_PATTERN.match(value)
        if match is None:
            raise InvalidInputError(f"--period {text!r}: expected month, week or N-days (e.g. 14-days)")
        return cls("days", int(match.group(1)))

    def __str__(self) -> str:
        return f"{self.days}-days" if self.unit == "days" else self.unit

    def starts(self, first: np.datetime64, last: np.datetime64) -> np.ndarray:
        """Period start instants (``datetime64[us]``) from the period holding ``first`` through the
        one after the period holding ``last`` (so the last start closes the last period)."""
        if self.unit == "month":
            months = np.arange(first.astype("datetime64[M]"), last.astype("datetime64[M]") + 2)
            return months.astype("datetime64[us]")
        first_day = first.astype("datetime64[D]")
        if self.unit == "week":
            first_day -= (first_day.astype(np.int64) + _MONDAY_OFFSET) % 7
        step = 7 if self.unit == "week" else self.days
        count = (last.astype("datetime64[D]") - first_day).astype(np.int64) // step + 2
        return (first_day + np.arange(count) * step).astype("datetime64[us]")

    def label(self, start: np.datetime64) -> str:
        if self.unit == "month":
            return str(start.astype("datetime64[M]"))
        return str(start.astype("datetime64[D]"))


def period_of(times: np.ndarray, spec: PeriodSpec) -> tuple[np.ndarray, np.ndarray]:
    """For ``datetime64[us]`` times: each time's period number and the starts of all periods."""
    if times.size == 0:
        raise InvalidInputError("no events to split into periods")
    starts = spec.starts(times.min(), times.max())
    return np.searchsorted(starts, times, side="right") - 1, starts
