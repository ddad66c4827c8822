"""Windows over daily aggregates: a row's age, windowed sums, event weights and decay.

Shared by the portrait, item-feature, completion and candidate-source rules. An ``n``-day
window is the ``n`` calendar days ending on the run date D (``D-n+1 .. D``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C

AGE = "_age"


def with_age(daily: DataFrame, run_date: dt.date) -> DataFrame:
    """Adds the age of each daily row in days (0 = the run date)."""
    return daily.withColumn(AGE, F.datediff(F.lit(run_date), F.col(C.DT)))


def windowed_sum(column: str, days: int) -> Column:
    """Sum of ``column`` over the ``days`` calendar days ending on the run date."""
    return F.coalesce(F.sum(F.when(F.col(AGE) < days, F.col(column))), F.lit(0)).cast("long")


def event_weight(weights: Mapping[str, float]) -> Column:
    """Weighted event count of a daily row: views, carts and purchases times their weights."""
    return sum(
        (F.col(name) * F.lit(float(weights.get(event, 0.0))))
        for event, name in C.EVENT_COUNT_COLUMNS.items()
    )  # type: ignore[return-value]


def decay(half_life_days: float) -> Column:
    """0.5 ** (age / half_life): 1 on the run date, 0.5 one half-life earlier."""
    return F.pow(F.lit(0.5), F.col(AGE) / F.lit(float(half_life_days)))


def smoothed_rate(events: Column, views: Column, prior: Column, strength: float) -> Column:
    """(events + m * p) / (max(views, events) + m): a Beta-smoothed rate in [0, 1].

    ``max`` keeps the rate a share when a log holds more carts than views for someone.
    """
    m = F.lit(float(strength))
    return (events + m * prior) / (F.greatest(views, events) + m)
