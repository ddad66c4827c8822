"""Stage ``clean``: typed, deduplicated, pseudonymised events and the rows that were rejected.

Each input row ends in exactly one place (rule 4): ``clean.events``, the duplicate count, or
``clean.events_rejected`` with the first rule it failed, in this order:

==========================  ==========================================================
``bad_timestamp``           timestamp missing or not epoch milliseconds
``timestamp_outside_day``   timestamp on another UTC day than the run date
``unknown_event``           event not one of view, addtocart, transaction
``null_user_id``            visitor id missing or blank
``null_item_id``            item id missing or blank
``bad_item_id``             item id not a non-negative integer
``missing_transaction_id``  a transaction without a transaction id
==========================  ==========================================================

Duplicates are rows equal in every input field (timestamp, visitor, event, item,
transaction); one copy is kept. ``input = clean + duplicates + rejected`` is checked before
anything is written.

The rules cited by number are those of docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.io.retailrocket import event_date
from recsys_lib.transforms.privacy import hmac_sha256_column, pseudonym_key
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_partition
from recsys_lib.warehouse.tables import (
    CLEAN_EVENTS,
    CLEAN_EVENTS_REJECTED,
    RAW_EVENTS,
)

REJECT_REASONS = C.REJECT_REASONS


@dataclass(frozen=True)
class CleanCounts:
    """Where the input rows of one day went."""

    input_rows: int
    clean_rows: int
    duplicate_rows: int
    rejected_rows: int

    @property
    def unreconciled_rows(self) -> int:
        return self.input_rows - self.clean_rows - self.duplicate_rows - self.rejected_rows


@dataclass(frozen=True)
class CleanResult:
    events: DataFrame
    rejected: DataFrame
    counts: dict[dt.date, CleanCounts]


def _blank(column: Column) -> Column:
    return column.isNull() | (F.trim(column) == "")


def reject_reason() -> Column:
    """The first cleaning rule a raw row fails, or null for a valid row (its run date is
    its ``dt``)."""
    ts = F.col(C.RR_TIMESTAMP)
    day = event_date(ts)
    event = F.col(C.RR_EVENT)
    item = F.col(C.RR_ITEM_ID)
    return (
        F.when(day.isNull(), "bad_timestamp")
        .when(day != F.col(C.DT), "timestamp_outside_day")
        .when(~F.trim(event).isin(*C.RR_EVENT_TO_TYPE), "unknown_event")
        .when(_blank(F.col(C.RR_VISITOR_ID)), "null_user_id")
        .when(_blank(item), "null_item_id")
        .when(~item.rlike(r"^\s*\d{1,18}\s*$"), "bad_item_id")
        .when(
            (F.trim(event) == C.RR_TRANSACTION) & _blank(F.col(C.RR_TRANSACTION_ID)),
            "missing_transaction_id",
        )
    )


def _event_type(event: Column) -> Column:
    mapped = F.lit(None).cast("string")
    for name, event_type in C.RR_EVENT_TO_TYPE.items():
        mapped = F.when(event == name, event_type).otherwise(mapped)
    return mapped


def clean_events(
    raw: DataFrame, key: bytes, run_date: dt.date | None = None, days: DayRange | None = None
) -> CleanResult:
    """Split ``raw.events`` rows into clean events and rejected rows, and count per day.

    Each row belongs to the run date in its ``dt`` column (``run_date``, when given, sets it
    for all rows); ``days`` (default: that one day, or the days present) are the days
    counted, so a day without rows counts zeros. One pass counts the input and rejected rows
    per day, and one the clean rows and duplicates.
    """
    if run_date is not None:
        raw = raw.withColumn(C.DT, F.lit(run_date))
        days = days or DayRange.of(run_date)
    user_hash = F.when(
        ~_blank(F.col(C.RR_VISITOR_ID)), hmac_sha256_column(key, F.trim(F.col(C.RR_VISITOR_ID)))
    )
    judged = (
        raw.withColumn(C.REJECT_REASON, reject_reason()).withColumn(C.USER_ID, user_hash).cache()
    )
    rejected = judged.filter(F.col(C.REJECT_REASON).isNotNull()).select(
        C.DT,
        C.RR_TIMESTAMP,
        C.USER_ID,
        C.RR_EVENT,
        C.RR_ITEM_ID,
        C.RR_TRANSACTION_ID,
        C.SOURCE_FILE,
        C.REJECT_REASON,
    )
    typed = judged.filter(F.col(C.REJECT_REASON).isNull()).select(
        C.DT,
        F.timestamp_millis(F.trim(F.col(C.RR_TIMESTAMP)).cast("long")).alias(C.EVENT_TS),
        F.col(C.USER_ID),
        F.trim(F.col(C.RR_ITEM_ID)).cast("long").alias(C.ITEM_ID),
        _event_type(F.trim(F.col(C.RR_EVENT))).alias(C.EVENT_TYPE),
        F.when(~_blank(F.col(C.RR_TRANSACTION_ID)), F.trim(F.col(C.RR_TRANSACTION_ID))).alias(
            C.TRANSACTION_ID
        ),
        F.col(C.SOURCE_FILE),
    )
    key_columns = [C.DT, C.EVENT_TS, C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.TRANSACTION_ID]
    events = (
        typed.groupBy(*key_columns)
        .agg(F.min(C.SOURCE_FILE).alias(C.SOURCE_FILE), F.count(F.lit(1)).alias("_copies"))
        .cache()
    )
    inputs = judged.groupBy(C.DT).agg(
        F.count(F.lit(1)).alias("input"), F.count(C.REJECT_REASON).alias("rejected")
    )
    outputs = events.groupBy(C.DT).agg(
        F.count(F.lit(1)).alias("clean"), F.sum(F.col("_copies") - 1).alias("dups")
    )
    found = {r[C.DT]: r for r in inputs.join(outputs, C.DT, "full").collect()}
    if days is None:
        days = DayRange(min(found), max(found)) if found else None
    counts = {}
    for day in days.days if days else []:
        r = found.get(day)
        counts[day] = CleanCounts(
            input_rows=int(r["input"] or 0) if r else 0,
            clean_rows=int(r["clean"] or 0) if r else 0,
            duplicate_rows=int(r["dups"] or 0) if r else 0,
            rejected_rows=int(r["rejected"] or 0) if r else 0,
        )
    return CleanResult(events=events.drop("_copies"), rejected=rejected, counts=counts)


def reconciliation_checks(counts: CleanCounts, max_rejected_share: float) -> list[quality.Check]:
    """Counts of the day and the two checks that guard them."""
    table = CLEAN_EVENTS.name
    share = counts.rejected_rows / counts.input_rows if counts.input_rows else 0.0
    return [
        quality.measure(table, "input_rows", counts.input_rows),
        quality.measure(table, "clean_rows", counts.clean_rows),
        quality.measure(table, "duplicate_rows", counts.duplicate_rows),
        quality.measure(table, "rejected_rows", counts.rejected_rows),
        quality.equals(table, "unreconciled_rows", counts.unreconciled_rows, 0),
        quality.at_most(table, "rejected_share", share, max_rejected_share),
    ]


def clean(
    spark: SparkSession, settings: Settings, days: DayRange
) -> dict[dt.date, dict[str, float]]:
    """Stage ``clean``: ``raw.events`` of ``days`` -> ``clean.events`` +
    ``clean.events_rejected``, with the reconciliation of every day (one pass for a range)."""
    raw = read_partition(spark, settings, RAW_EVENTS, days)
    result = clean_events(raw, pseudonym_key(settings), days=days)
    missing = [d for d, n in result.counts.items() if n.input_rows == 0]
    if missing:
        raise RuntimeError(
            f"raw.events has no rows for {', '.join(map(str, missing))}: run `ingest` first"
        )
    checks = {
        day: reconciliation_checks(n, settings.clean.max_rejected_share)
        for day, n in result.counts.items()
    }
    # No contract pass over the events: the reconciliation is this stage's check.
    quality.write_checked_days(
        spark,
        settings,
        [(CLEAN_EVENTS, result.events), (CLEAN_EVENTS_REJECTED, result.rejected)],
        days,
        checks,
        contract=False,
    )
    return {day: {c.name: c.value for c in day_checks} for day, day_checks in checks.items()}
