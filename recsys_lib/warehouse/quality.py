"""Data quality checks: measured, recorded in ``ops.quality_checks``, failing loudly."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import QualitySettings, Settings
from recsys_lib.dates import DayRange
from recsys_lib.runtime.notify import QUALITY_CHECK_FAILED, notify
from recsys_lib.runtime.spark import concurrently
from recsys_lib.warehouse.storage import Scope, read_table, write_partitions
from recsys_lib.warehouse.tables import QUALITY_CHECKS, TableContract

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One measured value of a table and, if it has one, the limit it must respect."""

    table: str
    name: str
    value: float
    threshold: float | None = None
    passed: bool = True
    detail: str = ""  # what the error message adds when the check fails


class QualityCheckError(RuntimeError):
    """A check failed; the stage stops before publishing."""


def at_most(table: str, name: str, value: float, limit: float) -> Check:
    return Check(table, name, float(value), float(limit), value <= limit)


def at_least(table: str, name: str, value: float, limit: float) -> Check:
    return Check(table, name, float(value), float(limit), value >= limit)


def equals(table: str, name: str, value: float, expected: float) -> Check:
    return Check(table, name, float(value), float(expected), value == expected)


def measure(table: str, name: str, value: float) -> Check:
    return Check(table, name, float(value))


ChecksByDay = Mapping[dt.date, Sequence[Check]]


def checks_frame(spark: SparkSession, checks: Sequence[Check], run_date: dt.date) -> DataFrame:
    """Rows of ``ops.quality_checks`` for these checks."""
    return checks_frame_by_day(spark, {run_date: checks})


def checks_frame_by_day(spark: SparkSession, by_day: ChecksByDay) -> DataFrame:
    """Rows of ``ops.quality_checks`` for the checks of each day."""
    rows = [
        (day, c.table, c.name, c.value, c.threshold, c.passed)
        for day, checks in sorted(by_day.items())
        for c in checks
    ]
    return spark.createDataFrame(rows, QUALITY_CHECKS.schema)


def _log_checks(checks: Sequence[Check], day: dt.date | None) -> None:
    where = f" on {day}" if day else ""
    for c in checks:
        log.log(
            logging.DEBUG if c.passed else logging.ERROR,
            "check %s.%s%s = %s (threshold %s): %s",
            c.table,
            c.name,
            where,
            c.value,
            c.threshold,
            "ok" if c.passed else "FAILED",
        )
    for table in sorted({c.table for c in checks}):
        mine = [c for c in checks if c.table == table]
        passed = sum(c.passed for c in mine)
        log.info("%s%s: %d of %d checks passed", table, where, passed, len(mine))


def _described(checks: Sequence[Check]) -> str:
    return "; ".join(
        f"{c.table}.{c.name} = {c.value:g} (threshold {c.threshold:g})"
        + (f": {c.detail}" if c.detail else "")
        for c in checks
        if not c.passed and c.threshold is not None
    )


def raise_on_failure(checks: Sequence[Check]) -> None:
    """Log the checks (each one at DEBUG, a count per table and every failure above that);
    raise naming each failed check and its value."""
    _log_checks(checks, None)
    if any(not c.passed for c in checks):
        raise QualityCheckError(f"quality check failed: {_described(checks)}")


def raise_on_failure_by_day(by_day: ChecksByDay) -> None:
    """:func:`raise_on_failure` over several days: the error names each failing day."""
    if len(by_day) == 1:
        raise_on_failure(next(iter(by_day.values())))
        return
    for day, checks in sorted(by_day.items()):
        _log_checks(checks, day)
    failing = [
        f"{day}: {_described(checks)}"
        for day, checks in sorted(by_day.items())
        if any(not c.passed for c in checks)
    ]
    if failing:
        raise QualityCheckError(f"quality check failed: {' | '.join(failing)}")


def _numeric(dtype: T.DataType) -> bool:
    return isinstance(dtype, T.NumericType)


def _measures(table: TableContract) -> dict[str, Column]:
    """The aggregates a table's contract checks need, computable in one pass."""
    measures: dict[str, Column] = {"rows": F.count(F.lit(1))}
    for column in table.columns:
        value = F.col(column.name)
        measures[f"nulls.{column.name}"] = F.count(F.when(value.isNull(), 1))
        if column.value_range is not None and _numeric(column.dtype):
            low, high = column.value_range
            measures[f"out_of_range.{column.name}"] = F.count(
                F.when((value < F.lit(low)) | (value > F.lit(high)), 1)
            )
        if column.accepted is not None:
            measures[f"not_accepted.{column.name}"] = F.count(
                F.when(~value.isin(*column.accepted), 1)
            )
    key = [k for k in table.key if k != C.DT]
    if key:
        measures["distinct_keys"] = F.countDistinct(*[F.col(k) for k in key])
    return measures


def typical_rows(recent: Sequence[float], limits: QualitySettings) -> float | None:
    """The rows of a typical recent day: the median of ``recent`` (rows of the last present
    days), or None with fewer than ``limits.min_recent_days`` of them."""
    if len(recent) < max(limits.min_recent_days, 1):
        return None
    return float(statistics.median(recent))


def _checks_of(
    got: Mapping[str, float],
    table: TableContract,
    recent: Sequence[float],
    limits: QualitySettings,
) -> list[Check]:
    name = table.name
    rows = got["rows"]
    checks = [
        measure(name, "rows", rows) if table.may_be_empty else at_least(name, "rows", rows, 1)
    ]
    typical = typical_rows(recent, limits)
    if typical and not table.may_be_empty:
        ratio = rows / typical
        checks.append(measure(name, "recent_median_rows", typical))
        checks.append(at_least(name, "rows_vs_recent_min", ratio, limits.min_row_ratio))
        checks.append(at_most(name, "rows_vs_recent_max", ratio, limits.max_row_ratio))
    for column in table.columns:
        nulls = got[f"nulls.{column.name}"]
        if column.nullable:
            checks.append(measure(name, f"null_share.{column.name}", nulls / rows if rows else 0))
        else:
            checks.append(equals(name, f"nulls.{column.name}", nulls, 0))
    for measured, count in got.items():
        if measured.startswith(("out_of_range.", "not_accepted.")):
            checks.append(equals(name, measured, count, 0))
    if "distinct_keys" in got:
        checks.append(equals(name, "duplicate_keys", rows - got["distinct_keys"], 0))
    return checks


def contract_checks(
    df: DataFrame,
    table: TableContract,
    recent: Sequence[float],
    limits: QualitySettings,
) -> list[Check]:
    """The checks a table's contract implies, measured in one pass over ``df`` (one day).

    ``rows`` at least 1; ``rows_vs_recent`` within ``[min_row_ratio, max_row_ratio]`` of
    the median of ``recent`` (the rows of the table's last present days, see
    :func:`recent_rows`; skipped with too few of them, and for a table that
    ``may_be_empty``);
    ``nulls.<col>`` = 0 for each non-nullable column and ``null_share.<col>`` recorded for
    the others; ``out_of_range.<col>`` = 0 for columns with
    a ``value_range``; ``not_accepted.<col>`` = 0 for columns with ``accepted`` values;
    ``duplicate_keys`` = 0 for tables with a key.
    """
    measures = _measures(table)
    row = df.agg(*[m.alias(k) for k, m in measures.items()]).first()
    assert row is not None
    got = {k: float(row[k] or 0) for k in measures}
    return _checks_of(got, table, recent, limits)


def contract_checks_by_day(
    df: DataFrame,
    table: TableContract,
    days: DayRange,
    recent_before: Sequence[float],
    limits: QualitySettings,
) -> dict[dt.date, list[Check]]:
    """:func:`contract_checks` of each day of ``days`` in one pass over ``df`` (rows of those
    days, by ``dt``). The first day's recent days are ``recent_before`` (the table's, before
    the range); each present day of the range joins the next days' recent days, so the
    checks of a range are those its days would get one by one, in date order."""
    measures = _measures(table)
    found = {
        r[C.DT]: {k: float(r[k] or 0) for k in measures}
        for r in df.groupBy(C.DT).agg(*[m.alias(k) for k, m in measures.items()]).collect()
    }
    by_day: dict[dt.date, list[Check]] = {}
    recent = list(recent_before)
    for day in days.days:
        got = found.get(day, dict.fromkeys(measures, 0.0))
        by_day[day] = _checks_of(got, table, recent, limits)
        if got["rows"] > 0:
            recent = [*recent, got["rows"]][-limits.recent_days :]
    return by_day


def recent_rows(
    spark: SparkSession, settings: Settings, tables: Sequence[str], before: dt.date
) -> dict[str, list[float]]:
    """Per table of ``tables``, the rows of its last ``quality.recent_days`` present days
    before ``before`` (oldest first), as recorded in ``ops.quality_checks``: days within
    ``quality.lookback_days`` with rows and every check of the table passed (a refused
    write's rows never became the table's)."""
    limits = settings.quality
    first = before - dt.timedelta(days=limits.lookback_days)
    rows = F.max(F.when(F.col(C.CHECK_NAME) == "rows", F.col(C.VALUE)))
    found = (
        read_table(spark, settings, QUALITY_CHECKS)
        .filter(
            (F.col(C.DT) >= F.lit(first))
            & (F.col(C.DT) < F.lit(before))
            & F.col(C.TABLE_NAME).isin(*tables)
        )
        .groupBy(C.TABLE_NAME, C.DT)
        .agg(F.min(F.col(C.PASSED).cast("int")).alias("ok"), rows.alias("rows"))
        .filter((F.col("ok") == 1) & (F.col("rows") > 0))
        .orderBy(C.DT)
        .collect()
    )
    recent: dict[str, list[float]] = {name: [] for name in tables}
    for r in found:
        recent[r[C.TABLE_NAME]].append(float(r["rows"]))
    return {name: days[-limits.recent_days :] for name, days in recent.items()}


def write_checked(
    spark: SparkSession,
    settings: Settings,
    outputs: Sequence[tuple[TableContract, DataFrame]],
    run_date: dt.date,
    extra_checks: Sequence[Check] = (),
    extra_writes: Sequence[tuple[TableContract, DataFrame, Scope]] = (),
    *,
    contract: bool = True,
) -> dict[str, float]:
    """Check each output against its contract, then write them all, with their checks.

    The one checked write of the pipeline (``publish`` goes through it too). Its checks are
    always recorded in ``ops.quality_checks``: when one fails, they are the only thing
    written (the tables stay as they were) and the error names the failure. Otherwise the
    tables' partitions, their checks and ``extra_writes`` (table, frame, scope) are written
    together (``storage.write_partitions``). ``contract=False`` leaves the contract checks
    to the caller (``extra_checks`` then hold them). Returns the row count of each table.
    """
    return write_checked_days(
        spark,
        settings,
        outputs,
        DayRange.of(run_date),
        {run_date: extra_checks},
        extra_writes,
        contract=contract,
    )[run_date]


def write_checked_days(
    spark: SparkSession,
    settings: Settings,
    outputs: Sequence[tuple[TableContract, DataFrame]],
    days: DayRange,
    extra_checks: ChecksByDay | None = None,
    extra_writes: Sequence[tuple[TableContract, DataFrame, Scope]] = (),
    *,
    contract: bool = True,
) -> dict[dt.date, dict[str, float]]:
    """:func:`write_checked` for every day of ``days`` at once: one check pass and one
    write per table; per day, the row count of each table."""
    # The contract checks and the write are two passes over each frame.
    cached = [(table, df.cache() if contract else df) for table, df in outputs]
    recent = (
        recent_rows(spark, settings, [t.name for t, _ in outputs], days.first) if contract else {}
    )

    def check(table: TableContract, df: DataFrame) -> dict[dt.date, list[Check]]:
        return contract_checks_by_day(df, table, days, recent[table.name], settings.quality)

    by_day: dict[dt.date, list[Check]] = {
        day: list((extra_checks or {}).get(day, ())) for day in days.days
    }
    try:
        if contract:
            for table_checks in concurrently([functools.partial(check, t, df) for t, df in cached]):
                for day, checks in table_checks.items():
                    by_day[day] += checks
        checked_tables = tuple(sorted({c.table for checks in by_day.values() for c in checks}))
        recorded = (
            QUALITY_CHECKS,
            checks_frame_by_day(spark, by_day),
            {C.TABLE_NAME: checked_tables},
        )
        if any(not c.passed for checks in by_day.values() for c in checks):
            write_partitions(spark, settings, [recorded], days)
            log.error(
                "%s for %s not written; the checks are in ops.quality_checks", checked_tables, days
            )
            failing = {
                d: checks for d, checks in by_day.items() if any(not c.passed for c in checks)
            }
            notify(
                settings,
                QUALITY_CHECK_FAILED,
                f"{', '.join(checked_tables)} not published: "
                + " | ".join(f"{d}: {_described(c)}" for d, c in sorted(failing.items())),
                days.first if len(days) == 1 else str(days),
                tables=", ".join(checked_tables),
            )
        raise_on_failure_by_day(by_day)  # logs the counts; raises if a check failed
        writes: list[tuple[TableContract, DataFrame, Scope]] = [(t, df, {}) for t, df in cached]
        write_partitions(spark, settings, [*writes, recorded, *extra_writes], days)
    finally:
        for _, df in cached:
            df.unpersist()
    return {
        day: {f"rows.{c.table}": c.value for c in checks if c.name == "rows"}
        for day, checks in by_day.items()
    }
