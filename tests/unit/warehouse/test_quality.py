"""Checks derived from table contracts, and the write that refuses to publish on failure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import QualitySettings
from recsys_lib.dates import DayRange
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import (
    create_missing_tables,
    read_partition,
    read_table,
    write_partitions,
)
from recsys_lib.warehouse.tables import ITEM_DAILY, QUALITY_CHECKS, Column, TableContract
from tests.conftest import table_frame

D = dt.date(2026, 2, 1)
LIMITS = QualitySettings(min_row_ratio=0.5, max_row_ratio=2.0)
SHIPPED = QualitySettings(min_row_ratio=0.25, max_row_ratio=4.0)  # conf/base.yaml's bounds

TOY = TableContract(
    name="toy.table",
    grain="test",
    columns=(
        Column(C.DT, T.DateType(), "day", False),
        Column("k", T.LongType(), "key", False),
        Column("share", T.DoubleType(), "a share", value_range=(0.0, 1.0)),
        Column("kind", T.StringType(), "a kind", accepted=("a", "b")),
    ),
    key=(C.DT, "k"),
)


def frame(spark: Any, rows: list[tuple[Any, ...]]) -> Any:
    # Nullable everywhere, so that broken rows can be built at all.
    return spark.createDataFrame(
        [(D, *r) for r in rows], "dt date, k long, share double, kind string"
    )


def by_name(checks: list[quality.Check]) -> dict[str, quality.Check]:
    return {c.name: c for c in checks}


def test_a_clean_frame_passes_every_check(spark: Any) -> None:
    checks = by_name(
        quality.contract_checks(
            frame(spark, [(1, 0.5, "a"), (2, None, "b")]), TOY, [1, 2, 4], LIMITS
        )
    )
    assert all(c.passed for c in checks.values())
    assert checks["rows"].value == 2
    assert checks["null_share.share"].value == 0.5
    assert checks["recent_median_rows"].value == 2
    assert checks["rows_vs_recent_min"].value == 1.0


def test_each_broken_rule_fails_its_check(spark: Any) -> None:
    bad = frame(spark, [(1, 1.5, "a"), (1, 0.2, "z"), (None, -0.1, None)])
    checks = by_name(quality.contract_checks(bad, TOY, [1, 1, 1], LIMITS))
    failed = {name: c.value for name, c in checks.items() if not c.passed}
    assert failed == {
        "nulls.k": 1.0,
        "out_of_range.share": 2.0,
        "not_accepted.kind": 1.0,
        # Keys 1, 1 and null: countDistinct ignores the null, so two rows are extra.
        "duplicate_keys": 2.0,
        "rows_vs_recent_max": 3.0,
    }


def test_an_empty_frame_fails_and_too_few_recent_days_skip_the_ratio(spark: Any) -> None:
    checks = by_name(quality.contract_checks(frame(spark, []), TOY, [5, 5], LIMITS))
    assert not checks["rows"].passed
    assert "rows_vs_recent_min" not in checks


def test_a_ramp_up_and_a_weekly_rhythm_pass_a_collapse_does_not() -> None:
    def ratio_checks(rows: float, recent: list[float]) -> dict[str, bool]:
        got = {"rows": rows, "nulls.dt": 0.0, "nulls.k": 0.0}
        got |= {"nulls.share": 0.0, "nulls.kind": 0.0}
        return {
            c.name: c.passed
            for c in quality._checks_of(got, TOY, recent, SHIPPED)
            if c.name.startswith("rows_vs_recent")
        }

    # A log whose first day is partial: 187 events, then 981 -- no verdict on one day.
    assert ratio_checks(981, [187]) == {}
    assert all(ratio_checks(1050, [187, 981, 1010]).values())
    # A weekly rhythm: the weekend's low days against a typical weekday.
    week = [1000, 1000, 1000, 1000, 1000, 400, 400]
    assert all(ratio_checks(400, week).values()) and all(ratio_checks(1000, week).values())
    # A real collapse (or a burst) against the same week still fails.
    assert ratio_checks(200, week) == {"rows_vs_recent_min": False, "rows_vs_recent_max": True}
    assert ratio_checks(4500, week) == {"rows_vs_recent_min": True, "rows_vs_recent_max": False}


def test_recent_rows_are_the_last_present_days_whose_checks_passed(
    spark: Any, settings: Any
) -> None:
    create_missing_tables(spark, settings)
    days = [D + dt.timedelta(days=i) for i in range(10)]
    rows = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]  # day 0 empty: not a present day
    records = [(d, "t", "rows", float(r), 1.0, True) for d, r in zip(days, rows, strict=True)]
    records.append((days[8], "t", "duplicate_keys", 1.0, 0.0, False))  # day 8 was refused
    records.append((days[5], "other", "rows", 5.0, 1.0, True))
    write_partitions(
        spark,
        settings,
        [(QUALITY_CHECKS, table_frame(spark, QUALITY_CHECKS, records), {})],
        DayRange(days[0], days[-1]),
    )
    recent = quality.recent_rows(spark, settings, ["t", "other", "none"], days[-1])
    assert recent == {"t": [10, 20, 30, 40, 50, 60, 70], "other": [5.0], "none": []}
    assert quality.recent_rows(spark, settings, ["t"], days[3]) == {"t": [10, 20]}


def test_write_checked_publishes_nothing_when_a_check_fails_and_records_why(
    spark: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts: list[tuple[str, str, Any]] = []
    monkeypatch.setattr(
        quality, "notify", lambda _s, kind, summary, day, **kw: alerts.append((kind, summary, day))
    )

    def daily(rows: list[tuple[int, int]]) -> Any:
        return table_frame(spark, ITEM_DAILY, [(D, i, v, 0, 0, 1) for i, v in rows])

    create_missing_tables(spark, settings)
    quality.write_checked(spark, settings, [(ITEM_DAILY, daily([(1, 3), (2, 4)]))], D)
    with pytest.raises(quality.QualityCheckError, match="duplicate_keys = 1"):
        quality.write_checked(spark, settings, [(ITEM_DAILY, daily([(1, 9), (1, 9)]))], D)
    kept = sorted(
        (r[C.ITEM_ID], r[C.VIEWS]) for r in read_partition(spark, settings, ITEM_DAILY, D).collect()
    )
    assert kept == [(1, 3), (2, 4)]
    recorded = {
        r[C.CHECK_NAME]: r[C.PASSED]
        for r in read_table(spark, settings, QUALITY_CHECKS).collect()
        if r[C.TABLE_NAME] == ITEM_DAILY.name
    }
    # The failed attempt is on record (its checks replace the day's), its rows are not.
    assert recorded["duplicate_keys"] is False and recorded["rows"] is True
    # ... and it was reported through the notifier, once.
    assert alerts == [
        (
            "quality_check_failed",
            f"{ITEM_DAILY.name} not published: {D}: {ITEM_DAILY.name}.duplicate_keys = 1 "
            "(threshold 0)",
            D,
        )
    ]


def test_a_failed_range_writes_no_day_and_records_every_day_s_checks(
    spark: Any, settings: Any
) -> None:
    d2 = D + dt.timedelta(days=1)
    rows = [(D, 1, 3, 0, 0, 1), (d2, 1, 9, 0, 0, 1), (d2, 1, 9, 0, 0, 1)]  # day 2: a duplicate
    create_missing_tables(spark, settings)
    with pytest.raises(quality.QualityCheckError, match=f"{d2}: .*duplicate_keys = 1"):
        quality.write_checked_days(
            spark,
            settings,
            [(ITEM_DAILY, table_frame(spark, ITEM_DAILY, rows))],
            DayRange(D, d2),
        )
    assert read_table(spark, settings, ITEM_DAILY).count() == 0
    recorded = {
        (r[C.DT], r[C.CHECK_NAME]): r[C.PASSED]
        for r in read_table(spark, settings, QUALITY_CHECKS).collect()
        if r[C.TABLE_NAME] == ITEM_DAILY.name
    }
    assert recorded[(D, "duplicate_keys")] is True and recorded[(d2, "duplicate_keys")] is False
