"""Run dates and ranges of them: what a stage processes and the partitions it replaces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from recsys_lib import constants as C


@dataclass(frozen=True)
class DayRange:
    """The calendar days ``first .. last``, both included (a single run date is a range of one).

    >>> DayRange(dt.date(2026, 10, 1), dt.date(2026, 10, 3)).days
    [datetime.date(2026, 10, 1), datetime.date(2026, 10, 2), datetime.date(2026, 10, 3)]
    """

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"empty range: {self.first} .. {self.last}")

    @classmethod
    def of(cls, days: dt.date | DayRange) -> DayRange:
        """``days`` itself, or the range of one day."""
        return days if isinstance(days, DayRange) else cls(days, days)

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range(len(self))]

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.first <= day <= self.last

    def chunks(self, size: int) -> list[DayRange]:
        """Consecutive ranges of at most ``size`` days covering this one, in date order."""
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        starts = self.days[::size]
        return [DayRange(s, min(self.last, s + dt.timedelta(days=size - 1))) for s in starts]

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first} .. {self.last}"


def window(run_date: dt.date, days: int) -> DayRange:
    """The ``days`` calendar days ending on ``run_date`` (``D - days + 1 .. D``)."""
    return DayRange(run_date - dt.timedelta(days=days - 1), run_date)


def within(days: DayRange) -> Column:
    """True for rows whose ``dt`` is one of ``days`` (a window: :func:`window`)."""
    return F.col(C.DT).between(F.lit(days.first), F.lit(days.last))
