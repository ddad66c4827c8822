"""The cleaning rules: raw event rows -> typed, deduplicated, pseudonymised events, rows
dropped by name, and rejected rows with the first rule they failed.

Each input row ends in exactly one place (rule 4): ``clean.events``, the duplicate count, the
dropped count (an event name of ``input.drop_events``) or ``clean.events_rejected``, tested
in this order:

==========================  ==========================================================
``bad_encoding``            bytes that are not valid in ``input.encoding`` (never hashed)
``too_many_fields``         more fields than the source's columns (csv/tsv)
``too_few_fields``          fewer fields than the source's columns (csv/tsv)
``malformed_json``          a line that is not a JSON object (jsonl)
``bad_timestamp``           time missing or not in ``input.timestamp``'s unit or format
``implausible_timestamp``   time outside [``earliest``, ``latest``) (a wrong unit, mostly)
``timestamp_outside_day``   time on another UTC day than the run date
``unknown_event``           event name neither in ``input.event_types`` nor dropped
``null_user_id``            user id missing or blank
``null_item_id``            item id missing or blank
``bad_item_id``             item id not a non-negative integer below 2**63
``missing_transaction_id``  a purchase without a transaction id (if the source has them)
==========================  ==========================================================

Duplicates are rows equal in time, user, item, event type and transaction; one copy is
kept. ``input = clean + duplicates + dropped + rejected`` is checked before anything is
written. A category or price on the row that does not parse is left null (and counted); the
event stays.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import InputSettings
from recsys_lib.dates import DayRange
from recsys_lib.io.timestamps import parse_time, plausible, utc_day
from recsys_lib.transforms.catalogue import parse_id, parse_price

_TS = "_event_ts"
_TYPE = "_event_type"


@dataclass(frozen=True)
class CleanCounts:
    """Where the input rows of one day went."""

    input_rows: int
    clean_rows: int
    duplicate_rows: int
    rejected_rows: int
    dropped_rows: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_event: dict[str, int] = field(default_factory=dict)
    unparsed_categories: int = 0  # a category on a clean row that is not an id
    unparsed_prices: int = 0

    @classmethod
    def summed(cls, days: Iterable[CleanCounts]) -> CleanCounts:
        """The counts of several days added up."""
        total = cls(0, 0, 0, 0)
        for c in days:
            added = {
                f.name: _added(getattr(total, f.name), getattr(c, f.name))
                for f in dataclasses.fields(cls)
            }
            total = cls(**added)  # type: ignore[arg-type]
        return total

    @property
    def unreconciled_rows(self) -> int:
        return (
            self.input_rows
            - self.clean_rows
            - self.duplicate_rows
            - self.dropped_rows
            - self.rejected_rows
        )


@dataclass(frozen=True)
class CleanResult:
    events: DataFrame
    rejected: DataFrame
    counts: dict[dt.date, CleanCounts]


def _added(a: int | dict[str, int], b: int | dict[str, int]) -> int | dict[str, int]:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}
    assert isinstance(a, int) and isinstance(b, int)
    return a + b


def _blank(column: Column) -> Column:
    return column.isNull() | (F.trim(column) == "")


def event_type(event: Column, source: InputSettings) -> Column:
    """The canonical type of a source's event name (null if it has none)."""
    mapped = F.lit(None).cast("string")
    for name, kind in sorted(source.event_types.items()):
        mapped = F.when(event == name, kind).otherwise(mapped)
    return mapped


def reject_reason(source: InputSettings) -> Column:
    """The first cleaning rule a raw row fails, or null for a valid row (its run date is its
    ``dt``). Needs the row's parsed time in ``_event_ts`` and its type in ``_event_type``."""
    ts = F.col(_TS)
    event = F.trim(F.col(C.RAW_EVENT))
    known = [*source.event_types, *source.drop_events]
    item = F.col(C.RAW_ITEM)
    reason = (
        F.when(F.col(C.READ_ERROR).isNotNull(), F.col(C.READ_ERROR))
        .when(ts.isNull(), "bad_timestamp")
        .when(~plausible(ts, source.timestamp), "implausible_timestamp")
        .when(utc_day(ts) != F.col(C.DT), "timestamp_outside_day")
        .when(event.isNull() | ~event.isin(*known), "unknown_event")
        .when(_blank(F.col(C.RAW_USER)), "null_user_id")
        .when(_blank(item), "null_item_id")
        .when(parse_id(item).isNull(), "bad_item_id")
    )
    if source.column("transaction"):
        reason = reason.when(
            (F.col(_TYPE) == C.PURCHASE) & _blank(F.col(C.RAW_TRANSACTION)),
            "missing_transaction_id",
        )
    return reason


def _count_if(condition: Column) -> Column:
    return F.count(F.when(condition, 1))


def clean_events(
    raw: DataFrame,
    pseudonymise: Callable[[Column], Column],
    source: InputSettings,
    run_date: dt.date | None = None,
    days: DayRange | None = None,
) -> CleanResult:
    """Split ``raw.events`` rows into clean events, dropped rows and rejected rows, and
    count per day.

    ``pseudonymise`` makes a user's pseudonym of the trimmed raw id (the stage passes
    :func:`~recsys_lib.transforms.privacy.pseudonym_column`). Each row belongs to the run
    date in its ``dt`` column (``run_date``, when given, sets it
    for all rows); ``days`` (default: that one day, or the days present) are the days
    counted, so a day without rows counts zeros. One pass counts the input, dropped and
    rejected rows per day (per reason and per dropped name), and one the clean rows and
    duplicates.
    """
    if run_date is not None:
        raw = raw.withColumn(C.DT, F.lit(run_date))
        days = days or DayRange.of(run_date)
    event = F.trim(F.col(C.RAW_EVENT))
    readable = F.coalesce(F.col(C.READ_ERROR) != C.BAD_ENCODING, F.lit(True))
    user = F.trim(F.col(C.RAW_USER))
    judged = (
        raw.withColumn(_TS, parse_time(F.col(C.RAW_TIMESTAMP), source.timestamp))
        .withColumn(_TYPE, event_type(event, source))
        .withColumn(C.REJECT_REASON, reject_reason(source))
        .withColumn(
            C.USER_ID,
            F.when(readable & ~_blank(F.col(C.RAW_USER)), pseudonymise(user)),
        )
        .cache()
    )
    reason = F.col(C.REJECT_REASON)
    kept = reason.isNull()
    dropped = kept & event.isin(*source.drop_events) if source.drop_events else F.lit(False)
    rejected = judged.filter(reason.isNotNull()).select(
        C.DT,
        C.RAW_TIMESTAMP,
        C.USER_ID,
        C.RAW_EVENT,
        C.RAW_ITEM,
        C.RAW_TRANSACTION,
        C.SOURCE_FILE,
        C.REJECT_REASON,
    )
    category, price = F.col(C.RAW_CATEGORY), F.col(C.RAW_PRICE)
    typed = judged.filter(kept & ~dropped).select(
        C.DT,
        F.col(_TS).alias(C.EVENT_TS),
        F.col(C.USER_ID),
        parse_id(F.col(C.RAW_ITEM)).alias(C.ITEM_ID),
        F.col(_TYPE).alias(C.EVENT_TYPE),
        F.when(~_blank(F.col(C.RAW_TRANSACTION)), F.trim(F.col(C.RAW_TRANSACTION))).alias(
            C.TRANSACTION_ID
        ),
        parse_id(category).alias(C.CATEGORY_ID),
        parse_price(price).alias(C.PRICE),
        F.col(C.SOURCE_FILE),
    )
    key_columns = [C.DT, C.EVENT_TS, C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.TRANSACTION_ID]
    events = (
        typed.groupBy(*key_columns)
        .agg(
            F.min(C.SOURCE_FILE).alias(C.SOURCE_FILE),
            F.max(C.CATEGORY_ID).alias(C.CATEGORY_ID),
            F.max(C.PRICE).alias(C.PRICE),
            F.count(F.lit(1)).alias("_copies"),
        )
        .cache()
    )
    clean_row = kept & ~dropped
    measures = {
        "input": F.count(F.lit(1)),
        "rejected": F.count(reason),
        "dropped": _count_if(dropped),
        "bad_category": _count_if(clean_row & ~_blank(category) & parse_id(category).isNull()),
        "bad_price": _count_if(clean_row & ~_blank(price) & parse_price(price).isNull()),
        **{f"reason.{r}": _count_if(reason == r) for r in C.REJECT_REASONS},
        **{f"drop.{n}": _count_if(dropped & (event == n)) for n in source.drop_events},
    }
    inputs = judged.groupBy(C.DT).agg(*[m.alias(k) for k, m in measures.items()])
    outputs = events.groupBy(C.DT).agg(
        F.count(F.lit(1)).alias("clean"), F.sum(F.col("_copies") - 1).alias("dups")
    )
    found = {r[C.DT]: r.asDict() for r in inputs.join(outputs, C.DT, "full").collect()}
    if days is None:
        days = DayRange(min(found), max(found)) if found else None
    counts = {day: _counts(found.get(day, {})) for day in (days.days if days else [])}
    return CleanResult(events=events.drop("_copies"), rejected=rejected, counts=counts)


def _counts(r: dict[str, int | None]) -> CleanCounts:
    def n(name: str) -> int:
        return int(r.get(name) or 0)

    return CleanCounts(
        input_rows=n("input"),
        clean_rows=n("clean"),
        duplicate_rows=n("dups"),
        rejected_rows=n("rejected"),
        dropped_rows=n("dropped"),
        rejected_by_reason={
            k.removeprefix("reason."): n(k) for k in r if k.startswith("reason.") and n(k)
        },
        dropped_by_event={k.removeprefix("drop."): n(k) for k in r if k.startswith("drop.")},
        unparsed_categories=n("bad_category"),
        unparsed_prices=n("bad_price"),
    )
