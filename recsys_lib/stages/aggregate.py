"""Stage ``aggregate``: one day of ``clean.events`` summed per user, per user x item, per item.

The windowed features (``portraits.py``, ``features.py``) read these daily tables, so the
cost of a nightly run grows with its window (90 days of daily rows), not with the length of
the whole history.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_partition
from recsys_lib.warehouse.tables import CLEAN_EVENTS, ITEM_DAILY, USER_DAILY, USER_ITEM_DAILY

HOURS = 24


def event_counts() -> list[Column]:
    """``views``, ``carts``, ``purchases``: events of each type in the group."""
    return [
        F.count(F.when(F.col(C.EVENT_TYPE) == event, 1)).alias(name)
        for event, name in C.EVENT_COUNT_COLUMNS.items()
    ]


def user_daily(events: DataFrame) -> DataFrame:
    """One row per user of the day: counts, distinct items, the 24-hour histogram."""
    hour = F.hour(F.col(C.EVENT_TS))
    return events.groupBy(C.DT, C.USER_ID).agg(
        *event_counts(),
        F.countDistinct(C.ITEM_ID).alias(C.ITEMS),
        F.array(*[F.count(F.when(hour == h, 1)) for h in range(HOURS)]).alias(C.ACTIVE_HOURS),
        F.min(C.EVENT_TS).alias(C.FIRST_EVENT_TS),
        F.max(C.EVENT_TS).alias(C.LAST_EVENT_TS),
    )


def user_item_daily(events: DataFrame) -> DataFrame:
    """One row per (user, item) of the day: counts and the last event time."""
    return events.groupBy(C.DT, C.USER_ID, C.ITEM_ID).agg(
        *event_counts(), F.max(C.EVENT_TS).alias(C.LAST_EVENT_TS)
    )


def last_value(column: str) -> Column:
    """The value of ``column`` on the group's latest event that has one (ties: the greater)."""
    value = F.col(column)
    return F.max(F.when(value.isNotNull(), F.struct(C.EVENT_TS, column))).getField(column)


def item_daily(events: DataFrame) -> DataFrame:
    """One row per item of the day: counts, distinct users, and the category and price of
    its last event row that carried them (sources with both on the rows; else null)."""
    return events.groupBy(C.DT, C.ITEM_ID).agg(
        *event_counts(),
        F.countDistinct(C.USER_ID).alias(C.USERS),
        last_value(C.CATEGORY_ID).alias(C.CATEGORY_ID),
        last_value(C.PRICE).alias(C.PRICE),
    )


def aggregate(
    spark: SparkSession, settings: Settings, days: DayRange
) -> dict[dt.date, dict[str, float]]:
    """Stage ``aggregate``: ``clean.events`` of ``days`` -> the three ``features.*_daily``
    tables, checked and written in one pass for a range."""
    events = read_partition(spark, settings, CLEAN_EVENTS, days).cache()
    present = {r[0] for r in events.select(C.DT).distinct().collect()}
    missing = [d for d in days.days if d not in present]
    if missing:
        raise RuntimeError(
            f"clean.events has no rows for {', '.join(map(str, missing))}: run `clean` first"
        )
    outputs = [
        (USER_DAILY, user_daily(events)),
        (USER_ITEM_DAILY, user_item_daily(events)),
        (ITEM_DAILY, item_daily(events)),
    ]
    return quality.write_checked_days(spark, settings, outputs, days)
