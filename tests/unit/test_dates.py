import datetime as dt

import pytest

from recsys_lib import constants as C
from recsys_lib.dates import DayRange, window, within

D = dt.date(2026, 3, 30)


def test_a_window_is_the_n_days_ending_on_the_run_date() -> None:
    assert window(D, 30) == DayRange(dt.date(2026, 3, 1), D)
    assert window(D, 1) == DayRange(D, D)
    assert len(window(D, 90)) == 90 and D in window(D, 90)
    assert D + dt.timedelta(days=1) not in window(D, 90)


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="empty range"):
        window(D, 0)


def test_chunks_cover_the_range_in_date_order() -> None:
    chunks = window(D, 7).chunks(3)
    assert [(c.first.day, c.last.day) for c in chunks] == [(24, 26), (27, 29), (30, 30)]


def test_within_keeps_exactly_the_window_days(spark) -> None:
    days = [D - dt.timedelta(days=n) for n in range(5)]
    frame = spark.createDataFrame([(d,) for d in days], f"{C.DT} date")
    kept = frame.filter(within(window(D - dt.timedelta(days=1), 2))).collect()
    assert sorted(r[C.DT] for r in kept) == [D - dt.timedelta(days=2), D - dt.timedelta(days=1)]
