"""The pipeline's own rules: a night refuses windows over a day its history never processed;
a stage and day another run holds is refused at once."""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Any

import pytest

from recsys_lib.constants import HISTORY_STAGES
from recsys_lib.dates import DayRange
from recsys_lib.pipeline import (
    StageError,
    StageRunLog,
    check_history,
    history_window_days,
    missing_history,
    record_stage_runs,
    run_stage,
)
from recsys_lib.runtime.claims import ClaimError, Holder, store_of
from recsys_lib.warehouse.storage import create_missing_tables, table_version
from recsys_lib.warehouse.tables import ALL_TABLES
from tests.conftest import make_settings

D = dt.date(2026, 10, 14)


def _history(spark: Any, settings: Any, days: list[dt.date], stages=HISTORY_STAGES) -> None:
    for day in days:
        record_stage_runs(
            spark, settings, {s: {day: {"seconds": 1.0}} for s in stages}, DayRange.of(day)
        )


def test_a_hole_in_the_history_stops_the_night_and_names_the_day(spark: Any, tmp_path) -> None:
    settings = make_settings(tmp_path)
    create_missing_tables(spark, settings)
    assert missing_history(spark, settings, D) == {}  # no history on record: nothing to judge
    first = D - dt.timedelta(days=5)
    hole = D - dt.timedelta(days=2)
    _history(spark, settings, [d for d in DayRange(first, D).days if d != hole])
    _history(spark, settings, [hole], stages=("ingest",))  # ingest ran, the rest failed
    assert missing_history(spark, settings, D) == {"clean": [hole], "aggregate": [hole]}
    # Days before the first history day are not holes: the shop's log starts there.
    assert missing_history(spark, settings, hole - dt.timedelta(days=1)) == {}
    with pytest.raises(StageError) as refused:
        run_stage(spark, settings, "features", D)
    assert str(refused.value) == (
        f"features {D}: the history has no clean, aggregate run for {hole} (the windows of "
        f"{D} read them): run `recsys backfill --start {hole} --end {hole} --stages "
        "ingest,clean,aggregate`, or set history.tolerate_missing_days: true"
    )

    # Rows a session has not written yet count (a backfill flushes after each day).
    runs = StageRunLog(spark, settings)
    runs.add("clean", {hole: {"seconds": 1.0}})
    runs.add("aggregate", {hole: {"seconds": 1.0}})
    check_history(spark, settings, "features", D, runs)


def test_the_night_s_own_day_and_a_tolerated_hole(spark: Any, tmp_path) -> None:
    settings = make_settings(tmp_path)
    create_missing_tables(spark, settings)
    old = D - dt.timedelta(days=90)  # far outside every window
    _history(
        spark, settings, [old, *DayRange(D - dt.timedelta(days=3), D - dt.timedelta(days=1)).days]
    )
    window = history_window_days(settings)
    missing = missing_history(spark, settings, D)
    # The window's days without history, up to the night's own day, which ran nothing yet.
    assert missing["aggregate"][0] == D - dt.timedelta(days=window - 1)
    assert missing["aggregate"][-1] == D and len(missing["aggregate"]) == window - 3
    tolerant = make_settings(tmp_path, history__tolerate_missing_days="true")
    check_history(spark, tolerant, "features", D)  # a warning, not an error


def test_a_stage_and_day_another_run_holds_is_refused_before_anything_is_read(
    spark: Any, tmp_path
) -> None:
    settings = make_settings(tmp_path)
    create_missing_tables(spark, settings)
    now = time.time()
    other = Holder("other", socket.gethostname(), 1, "stage aggregate for 2026-10-14", now, now)
    assert store_of(settings).create(f"aggregate/{D}", other.encode())  # process 1 lives
    versions = {t.name: table_version(spark, settings, t) for t in ALL_TABLES}
    with pytest.raises(ClaimError, match=f"aggregate/{D} is being run by stage aggregate"):
        run_stage(spark, settings, "aggregate", D)
    assert versions == {t.name: table_version(spark, settings, t) for t in ALL_TABLES}
