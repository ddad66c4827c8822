"""Stage ``features``: ``features.item_features`` and ``features.user_portrait`` for a day.

Item features come from 30 days of ``features.item_daily`` and ``clean.items`` of the run
date; portraits from 90 days of ``features.user_daily`` / ``features.user_item_daily``
(``portraits.py``). Formulas are in docs/features.md.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import FeatureSettings, Settings
from recsys_lib.dates import window
from recsys_lib.runtime.spark import concurrently
from recsys_lib.transforms.portraits import PORTRAIT_DAYS, user_portraits
from recsys_lib.transforms.windows import AGE, event_weight, smoothed_rate, windowed_sum, with_age
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_partition, read_window
from recsys_lib.warehouse.tables import (
    CLEAN_ITEMS,
    ITEM_DAILY,
    ITEM_FEATURES,
    USER_DAILY,
    USER_ITEM_DAILY,
    USER_PORTRAIT,
)

ITEM_DAYS = 30
ITEM_WINDOWS = (1, 7, 30)
TREND_DAYS = 7


def price_percentiles(items: DataFrame) -> DataFrame:
    """Adds ``price_pct_in_category``: the percent rank of the price among the priced items
    of the same category (0 = cheapest, 1 = dearest, 0.5 for a category's only item); null
    without a price or a category."""
    priced = F.col(C.PRICE).isNotNull() & F.col(C.CATEGORY_ID).isNotNull()
    in_category = Window.partitionBy(C.CATEGORY_ID, priced)
    pct = F.when(F.count(F.lit(1)).over(in_category) == 1, F.lit(0.5)).otherwise(
        F.percent_rank().over(in_category.orderBy(C.PRICE))
    )
    return items.withColumn(C.PRICE_PCT_IN_CATEGORY, F.when(priced, pct))


def item_features(
    item_daily: DataFrame, items: DataFrame, run_date: dt.date, settings: FeatureSettings
) -> DataFrame:
    """``features.item_features`` rows of ``run_date``: every item of ``clean.items``.

    ``items`` is ``clean.items`` of the run date with ``price_pct_in_category``.
    """
    daily = with_age(item_daily, run_date).filter(F.col(AGE).between(0, ITEM_DAYS - 1))
    weighted = event_weight(settings.event_weights)
    counts = [
        windowed_sum(name, n).alias(f"{name}_{n}d")
        for name in C.EVENT_COUNT_COLUMNS.values()
        for n in ITEM_WINDOWS
    ]
    activity = daily.groupBy(C.ITEM_ID).agg(
        *counts,
        windowed_sum(C.USERS, ITEM_DAYS).alias(C.USERS_30D),
        F.sum(F.when(F.col(AGE) < TREND_DAYS, weighted)).alias("_last"),
        F.sum(F.when(F.col(AGE).between(TREND_DAYS, 2 * TREND_DAYS - 1), weighted)).alias(
            "_before"
        ),
    )
    zero_filled = [c for c in activity.columns if c != C.ITEM_ID]
    rows = items.join(activity, C.ITEM_ID, "left").na.fill(0, zero_filled)
    views, carts, purchases = (F.col(f"{c}_{ITEM_DAYS}d") for c in C.EVENT_COUNT_COLUMNS.values())
    totals = rows.agg(
        F.sum(carts).alias("c"),
        F.sum(purchases).alias("p"),
        F.sum(F.greatest(views, carts)).alias("vc"),
        F.sum(F.greatest(views, purchases)).alias("vp"),
    ).first()
    assert totals is not None
    cart_prior = float(totals["c"] or 0) / float(totals["vc"] or 1)
    purchase_prior = float(totals["p"] or 0) / float(totals["vp"] or 1)
    strength = settings.rate_prior_strength
    return (
        rows.withColumn(C.TREND_7D, (F.col("_last") + 1.0) / (F.col("_before") + 1.0))
        .withColumn(C.CART_RATE, smoothed_rate(carts, views, F.lit(cart_prior), strength))
        .withColumn(
            C.PURCHASE_RATE, smoothed_rate(purchases, views, F.lit(purchase_prior), strength)
        )
        .withColumn(C.AGE_DAYS, F.datediff(F.lit(run_date), F.col(C.FIRST_SEEN)))
        .withColumn(C.DT, F.lit(run_date))
    )


def features_day(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``features``: item features and user portraits of ``run_date``, checked."""
    items = read_partition(spark, settings, CLEAN_ITEMS, run_date)
    if items.limit(1).count() == 0:
        raise RuntimeError(f"clean.items has no rows for {run_date}: run `items` for it first")
    items = price_percentiles(items).cache()
    item_days, user_days = window(run_date, ITEM_DAYS), window(run_date, PORTRAIT_DAYS)
    item_daily = read_window(spark, settings, ITEM_DAILY, item_days)
    user_daily = read_window(spark, settings, USER_DAILY, user_days)
    user_item_daily = read_window(spark, settings, USER_ITEM_DAILY, user_days)
    item_prices = items.select(C.ITEM_ID, C.CATEGORY_ID, C.PRICE, C.PRICE_PCT_IN_CATEGORY)
    # Each builder runs one action (its population totals); side by side they overlap.
    item_rows, portrait_rows = concurrently(
        [
            lambda: item_features(item_daily, items, run_date, settings.features),
            lambda: user_portraits(
                user_daily, user_item_daily, item_prices, run_date, settings.features
            ),
        ]
    )
    outputs = [(ITEM_FEATURES, item_rows), (USER_PORTRAIT, portrait_rows)]
    figures = quality.write_checked(spark, settings, outputs, run_date)
    items.unpersist()
    return figures
