"""Reader for RetailRocket's event log: ``timestamp,visitorid,event,itemid,transactionid``.

Two layouts are accepted, and a run for date D gets exactly D's rows from either:

- a directory of daily files ``events_YYYY-MM-DD.csv[.gz]`` (what ``recsys generate``
  writes): the whole file of D is taken, so rows stamped outside D reach cleaning and are
  rejected there with a reason;
- one multi-day file ``events.csv[.gz]`` (the Kaggle log and ``../shared/data`` sample): rows
  are sliced to those whose timestamp falls on D (UTC). Rows whose timestamp cannot be
  parsed belong to no day; their count is logged on every run.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C

log = logging.getLogger(__name__)

EVENTS_SCHEMA = T.StructType([T.StructField(c, T.StringType()) for c in C.RR_EVENT_COLUMNS])
_MS_PATTERN = r"^\s*\d{1,15}\s*$"


class InputError(RuntimeError):
    """The input for a run date is missing, empty or not in the expected format."""


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


def _read_csv(spark: SparkSession, path: Path) -> DataFrame:
    header = spark.read.text(str(path)).limit(1).collect()
    if not header:
        raise InputError(f"{path}: the file is empty (no header)")
    found = [h.strip() for h in header[0][0].split(",")]
    if found != list(C.RR_EVENT_COLUMNS):
        raise InputError(f"{path}: unexpected header {found}; expected {list(C.RR_EVENT_COLUMNS)}")
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .schema(EVENTS_SCHEMA)
        .csv(str(path))
        .withColumn(C.SOURCE_FILE, F.col("_metadata.file_path"))
    )


def rows_on_day(rows: DataFrame, run_date: dt.date, source: Path, what: str) -> DataFrame:
    """The ``rows`` whose ``timestamp`` falls on ``run_date`` (UTC). Rows whose timestamp does
    not parse belong to no day: their count is logged as a warning on every run."""
    day = event_date(F.col(C.RR_TIMESTAMP))
    unattributable = rows.filter(day.isNull()).count()
    if unattributable:
        log.warning(
            "%s: %d %s have no parseable timestamp and belong to no run date",
            source,
            unattributable,
            what,
        )
    return rows.filter(day == F.lit(run_date))


def read_retailrocket_events(spark: SparkSession, events_path: str, run_date: dt.date) -> DataFrame:
    """Raw rows of ``run_date`` with a ``source_file`` column; fails before any write if the
    input is missing, has another header, or holds no row for the day."""
    path = Path(events_path)
    if path.is_dir():
        rows = _read_csv(spark, daily_file(path, run_date))
    elif path.is_file():
        rows = rows_on_day(_read_csv(spark, path), run_date, path, "rows")
    else:
        raise InputError(f"no input for {run_date}: {path} does not exist")
    if rows.limit(1).count() == 0:
        raise InputError(f"no events for {run_date} in {path}: refusing to publish an empty day")
    return rows
