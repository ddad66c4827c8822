"""Reader for RetailRocket's event log: ``timestamp,visitorid,event,itemid,transactionid``.

Two layouts are accepted, and a run for date D (or a range of dates) gets exactly those days'
rows from either, each row stamped with the run date it belongs to (``dt``):

- a directory of daily files ``events_YYYY-MM-DD.csv[.gz]`` (what ``recsys generate``
  writes): the whole file of D is D's, so rows stamped outside D reach cleaning and are
  rejected there with a reason;
- one multi-day file ``events.csv[.gz]`` (the Kaggle log and ``../shared/data`` sample): rows
  are sliced to those whose timestamp falls on D (UTC). Rows whose timestamp cannot be
  parsed belong to no day; their count is logged on every run.

A range is read in one pass (one Spark read of all its files), and gives the same rows per
day as reading its days one by one.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.dates import DayRange

log = logging.getLogger(__name__)

EVENTS_SCHEMA = T.StructType([T.StructField(c, T.StringType()) for c in C.RR_EVENT_COLUMNS])
_MS_PATTERN = r"^\s*\d{1,15}\s*$"
_DAILY_NAME = r"events_(\d{4}-\d{2}-\d{2})\.csv(\.gz)?$"


class InputError(RuntimeError):
    """The input for a run date is missing, empty or not in the expected format."""


@dataclass(frozen=True)
class RawInput:
    """Input rows of some run dates (all fields as text, plus ``source_file`` and ``dt``),
    cached, and how many rows each run date has."""

    rows: DataFrame
    rows_per_day: dict[dt.date, int]


def daily_file(directory: Path, run_date: dt.date) -> Path:
    """The events file of ``run_date`` in a directory of daily files."""
    for suffix in (".csv", ".csv.gz"):
        candidate = directory / f"events_{run_date.isoformat()}{suffix}"
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no input for {run_date}: expected {directory}/events_{run_date.isoformat()}.csv[.gz]"
    )


def event_date(timestamp: F.Column) -> F.Column:
    """UTC calendar day of an epoch-milliseconds text column; null if it does not parse."""
    millis = F.when(timestamp.rlike(_MS_PATTERN), F.trim(timestamp).cast("long"))
    return F.to_date(F.timestamp_millis(millis))


def first_line(path: Path) -> str | None:
    """The first line of a text file, gzip-compressed or not (None for an empty file); read
    on the driver, without a Spark job."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:  # type: ignore[operator]
        line = handle.readline()
    return line.rstrip("\r\n") if line else None


def check_header(path: Path, expected: tuple[str, ...]) -> None:
    """Raise :class:`InputError` naming ``path`` unless its header is ``expected``."""
    header = first_line(path)
    if header is None:
        raise InputError(f"{path}: the file is empty (no header)")
    found = [h.strip() for h in header.split(",")]
    if found != list(expected):
        raise InputError(f"{path}: unexpected header {found}; expected {list(expected)}")


def read_csv(
    spark: SparkSession, paths: list[Path], schema: T.StructType, columns: tuple[str, ...]
) -> DataFrame:
    """Rows of CSV files with the header ``columns`` (checked on each file first), all as text,
    plus ``source_file``."""
    for path in paths:
        check_header(path, columns)
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .schema(schema)
        .csv([str(p) for p in paths])
        .withColumn(C.SOURCE_FILE, F.col("_metadata.file_path"))
    )


def rows_on_days(rows: DataFrame, days: DayRange, source: Path, what: str) -> RawInput:
    """The ``rows`` whose ``timestamp`` falls on a day of ``days`` (UTC), with that day as
    ``dt``, cached. One pass over ``rows`` counts them per day and the rows whose timestamp
    does not parse; those belong to no day, and their count is logged as a warning."""
    dated = rows.withColumn(C.DT, event_date(F.col(C.RR_TIMESTAMP)))
    counts = {r[0]: int(r[1]) for r in dated.groupBy(C.DT).count().collect()}
    unattributable = counts.pop(None, 0)  # type: ignore[call-overload]
    if unattributable:
        log.warning(
            "%s: %d %s have no parseable timestamp and belong to no run date",
            source,
            unattributable,
            what,
        )
    inside = dated.filter(F.col(C.DT).between(F.lit(days.first), F.lit(days.last))).cache()
    return RawInput(inside, {d: counts.get(d, 0) for d in days.days})


def load_retailrocket_events(
    spark: SparkSession, events_path: str, days: dt.date | DayRange
) -> RawInput:
    """Raw rows of the run dates ``days`` with ``source_file`` and ``dt``; fails before any
    write if the input of a day is missing, has another header, or holds no row."""
    span = DayRange.of(days)
    path = Path(events_path)
    if path.is_dir():
        files = [daily_file(path, day) for day in span.days]
        rows = read_csv(spark, files, EVENTS_SCHEMA, C.RR_EVENT_COLUMNS)
        day_of_file = F.to_date(F.regexp_extract(F.col(C.SOURCE_FILE), _DAILY_NAME, 1))
        dated = rows.withColumn(C.DT, day_of_file).cache()
        counts = {r[0]: int(r[1]) for r in dated.groupBy(C.DT).count().collect()}
        loaded = RawInput(dated, {d: counts.get(d, 0) for d in span.days})
    elif path.is_file():
        rows = read_csv(spark, [path], EVENTS_SCHEMA, C.RR_EVENT_COLUMNS)
        loaded = rows_on_days(rows, span, path, "rows")
    else:
        raise InputError(f"no input for {span}: {path} does not exist")
    empty = [d for d, n in loaded.rows_per_day.items() if n == 0]
    if empty:
        loaded.rows.unpersist()
        shown = ", ".join(str(d) for d in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise InputError(f"no events for {shown} in {path}: refusing to publish an empty day")
    return loaded


def read_retailrocket_events(
    spark: SparkSession, events_path: str, days: dt.date | DayRange
) -> DataFrame:
    """The rows of :func:`load_retailrocket_events`."""
    return load_retailrocket_events(spark, events_path, days).rows
