"""``features.user_portrait``: who a user is on the run date, from 90 days of daily aggregates.

Every rule is documented in docs/features.md; the short version:

- an ``n``-day window is the ``n`` calendar days ending on the run date D (``D-n+1 .. D``),
  so an event exactly 7 days old (on ``D-7``) is outside the 7-day window;
- R, F, M are recency (days since the last event, fewer is better), frequency (active days)
  and monetary value (purchases x price as of D), each scored 1-5 by quintile cut points
  over the users of the day: score = 1 + number of cut points strictly below the value;
- segment and lifecycle stage follow the first rule that matches (:func:`rfm_segment`,
  :func:`lifecycle_stage`);
- affinity of a category = its share of the user's event-weighted, time-decayed activity
  (weight x 0.5 ** (age_days / half_life));
- conversion rates are smoothed towards the population's rate with a Beta prior of
  ``rate_prior_strength`` pseudo-views.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import FeatureSettings
from recsys_lib.transforms.top_n import top_n_per
from recsys_lib.transforms.windows import (
    AGE,
    decay,
    event_weight,
    smoothed_rate,
    windowed_sum,
    with_age,
)

PORTRAIT_DAYS = 90
PORTRAIT_WINDOWS = (1, 7, 30, 90)
QUINTILES = (0.2, 0.4, 0.6, 0.8)
NEW_USER_DAYS = 7
ACTIVE_DAYS = 7
DORMANT_DAYS = 30


def quintile_score(value: Column, cuts: list[float]) -> Column:
    """1 + number of cut points strictly below ``value`` (1-5 for four cut points)."""
    return sum((F.when(value > F.lit(c), 1).otherwise(0) for c in cuts), F.lit(1)).cast("int")


def quintile_cuts(df: DataFrame, column: str) -> list[float]:
    """The 20/40/60/80 % cut points of ``column`` (one small row to the driver)."""
    row = df.agg(quintile_aggregate(column).alias("q")).first()
    return cut_points(row["q"] if row else None)


def quintile_aggregate(column: str) -> Column:
    """The aggregate behind :func:`quintile_cuts`, to compute with others in one pass."""
    return F.percentile_approx(column, list(QUINTILES), 100_000)


def cut_points(values: list[float] | None) -> list[float]:
    """The result of :func:`quintile_aggregate` as floats; zeros when there were no rows."""
    return [float(v) for v in values] if values else [0.0] * len(QUINTILES)


def lifecycle_stage(days_since_first: Column, days_since_last: Column) -> Column:
    """new: first event in the window <= 6 days ago; active: last event <= 6 days ago;
    dormant: 7-29 days ago; churned: 30-89 days ago."""
    return (
        F.when(days_since_first < NEW_USER_DAYS, "new")
        .when(days_since_last < ACTIVE_DAYS, "active")
        .when(days_since_last < DORMANT_DAYS, "dormant")
        .otherwise("churned")
    )


def rfm_segment(r: Column, f: Column, m: Column, lifecycle: Column) -> Column:
    """The first that matches: champions (R, F, M >= 4), loyal (R >= 3, F >= 4), new
    (lifecycle new), promising (R >= 4), at_risk (R <= 2, F >= 3), else hibernating."""
    return (
        F.when((r >= 4) & (f >= 4) & (m >= 4), "champions")
        .when((r >= 3) & (f >= 4), "loyal")
        .when(lifecycle == "new", "new")
        .when(r >= 4, "promising")
        .when((r <= 2) & (f >= 3), "at_risk")
        .otherwise("hibernating")
    )


def price_band(pct: Column) -> Column:
    """low below the 1/3 percentile, high from 2/3, mid between; null without prices."""
    return F.when(pct < 1 / 3, "low").when(pct < 2 / 3, "mid").when(pct.isNotNull(), "high")


def preferred_hour(hours: Column) -> Column:
    """Hour with the most activity after smoothing each hour with its neighbours
    (c[h-1] + 2 c[h] + c[h+1], around midnight too); the earliest hour wins ties."""
    smoothed = F.array(
        *[hours[(h - 1) % 24] + 2 * hours[h] + hours[(h + 1) % 24] for h in range(24)]
    )
    return (F.array_position(smoothed, F.array_max(smoothed)) - 1).cast("int")


def activity(user_daily: DataFrame, run_date: dt.date) -> DataFrame:
    """Per user: windowed counts, active days, last event days and the hour histogram."""
    daily = with_age(user_daily, run_date).filter(F.col(AGE).between(0, PORTRAIT_DAYS - 1))
    counts = [
        windowed_sum(name, n).alias(f"{name}_{n}d")
        for name in C.EVENT_COUNT_COLUMNS.values()
        for n in PORTRAIT_WINDOWS
    ]
    return daily.groupBy(C.USER_ID).agg(
        *counts,
        F.count(F.lit(1)).alias(C.ACTIVE_DAYS_90D),
        F.min(C.DT).alias(C.FIRST_ACTIVE_DATE),
        F.min(AGE).cast("int").alias(C.DAYS_SINCE_LAST_EVENT),
        F.min(F.when(F.col(C.CARTS) > 0, F.col(AGE))).cast("int").alias(C.DAYS_SINCE_LAST_CART),
        F.min(F.when(F.col(C.PURCHASES) > 0, F.col(AGE)))
        .cast("int")
        .alias(C.DAYS_SINCE_LAST_PURCHASE),
        F.array(*[F.sum(F.col(C.ACTIVE_HOURS)[h]) for h in range(24)]).alias(C.ACTIVE_HOURS),
    )


def item_interest(
    user_item_daily: DataFrame, items: DataFrame, run_date: dt.date, settings: FeatureSettings
) -> DataFrame:
    """Per user: distinct items and categories, spend, top categories and price band.

    ``items`` holds item_id, category_id, price and price_pct_in_category as of the run date.
    """
    rows = (
        with_age(user_item_daily, run_date)
        .filter(F.col(AGE).between(0, PORTRAIT_DAYS - 1))
        .join(items, C.ITEM_ID, "left")
        .withColumn("_w", event_weight(settings.event_weights))
    )
    per_user = rows.groupBy(C.USER_ID).agg(
        F.countDistinct(C.ITEM_ID).alias(C.DISTINCT_ITEMS_90D),
        F.countDistinct(C.CATEGORY_ID).alias(C.DISTINCT_CATEGORIES_90D),
        F.coalesce(F.sum(F.col(C.PURCHASES) * F.col(C.PRICE)), F.lit(0.0)).alias(C.SPEND_90D),
        (
            F.sum(F.col("_w") * F.col(C.PRICE_PCT_IN_CATEGORY))
            / F.sum(F.when(F.col(C.PRICE_PCT_IN_CATEGORY).isNotNull(), F.col("_w")))
        ).alias(C.PRICE_BAND_PCT),
    )
    return per_user.join(top_categories(rows, settings), C.USER_ID, "left")


def top_categories(rows: DataFrame, settings: FeatureSettings) -> DataFrame:
    """Per user: the ``top_categories`` categories by decayed weight share, best first
    (ties by category id)."""
    scored = (
        rows.filter(F.col(C.CATEGORY_ID).isNotNull())
        .groupBy(C.USER_ID, C.CATEGORY_ID)
        .agg(F.sum(F.col("_w") * decay(settings.affinity_half_life_days)).alias("_s"))
    )
    by_user = Window.partitionBy(C.USER_ID)
    ranked = top_n_per(
        scored.withColumn(C.AFFINITY, F.col("_s") / F.sum("_s").over(by_user)),
        [C.USER_ID],
        [F.desc(C.AFFINITY), F.asc(C.CATEGORY_ID)],
        settings.top_categories,
        "_rank",
    )
    collected = F.array_sort(F.collect_list(F.struct("_rank", C.CATEGORY_ID, C.AFFINITY)))
    return ranked.groupBy(C.USER_ID).agg(
        F.transform(
            collected, lambda s: F.struct(s[C.CATEGORY_ID].alias(C.CATEGORY_ID), s[C.AFFINITY])
        ).alias(C.TOP_CATEGORIES)
    )


def user_portraits(
    user_daily: DataFrame,
    user_item_daily: DataFrame,
    items: DataFrame,
    run_date: dt.date,
    settings: FeatureSettings,
) -> DataFrame:
    """``features.user_portrait`` rows of ``run_date`` for users active in its 90 days."""
    users = (
        activity(user_daily, run_date)
        .join(item_interest(user_item_daily, items, run_date, settings), C.USER_ID, "left")
        .na.fill({C.DISTINCT_ITEMS_90D: 0, C.DISTINCT_CATEGORIES_90D: 0, C.SPEND_90D: 0.0})
        .cache()
    )
    recency = -F.col(C.DAYS_SINCE_LAST_EVENT)
    users = users.withColumn("_recency", recency)
    # The conversion priors and the three sets of RFM cut points in one pass.
    totals = users.agg(
        F.sum(f"{C.VIEWS}_90d").alias("v"),
        F.sum(f"{C.CARTS}_90d").alias("c"),
        F.sum(f"{C.PURCHASES}_90d").alias("p"),
        F.sum(F.greatest(F.col(f"{C.VIEWS}_90d"), F.col(f"{C.CARTS}_90d"))).alias("vc"),
        F.sum(F.greatest(F.col(f"{C.VIEWS}_90d"), F.col(f"{C.PURCHASES}_90d"))).alias("vp"),
        quintile_aggregate("_recency").alias("r_cuts"),
        quintile_aggregate(C.ACTIVE_DAYS_90D).alias("f_cuts"),
        quintile_aggregate(C.SPEND_90D).alias("m_cuts"),
    ).first()
    assert totals is not None
    cart_prior = float(totals["c"] or 0) / float(totals["vc"] or 1)
    purchase_prior = float(totals["p"] or 0) / float(totals["vp"] or 1)
    r_cuts, f_cuts, m_cuts = (cut_points(totals[c]) for c in ("r_cuts", "f_cuts", "m_cuts"))
    days_since_first = F.datediff(F.lit(run_date), F.col(C.FIRST_ACTIVE_DATE))
    strength = settings.rate_prior_strength
    portraits = (
        users.withColumn(C.RECENCY_SCORE, quintile_score(F.col("_recency"), r_cuts))
        .withColumn(C.FREQUENCY_SCORE, quintile_score(F.col(C.ACTIVE_DAYS_90D), f_cuts))
        .withColumn(C.MONETARY_SCORE, quintile_score(F.col(C.SPEND_90D), m_cuts))
        .withColumn(
            C.LIFECYCLE_STAGE, lifecycle_stage(days_since_first, F.col(C.DAYS_SINCE_LAST_EVENT))
        )
        .withColumn(
            C.RFM_SEGMENT,
            rfm_segment(
                F.col(C.RECENCY_SCORE),
                F.col(C.FREQUENCY_SCORE),
                F.col(C.MONETARY_SCORE),
                F.col(C.LIFECYCLE_STAGE),
            ),
        )
        .withColumn(C.TOP_CATEGORIES, F.coalesce(C.TOP_CATEGORIES, F.array()))
        .withColumn(C.PRICE_BAND, price_band(F.col(C.PRICE_BAND_PCT)))
        .withColumn(C.PREFERRED_PUSH_HOUR, preferred_hour(F.col(C.ACTIVE_HOURS)))
        .withColumn(
            C.CART_RATE,
            smoothed_rate(
                F.col(f"{C.CARTS}_90d"), F.col(f"{C.VIEWS}_90d"), F.lit(cart_prior), strength
            ),
        )
        .withColumn(
            C.PURCHASE_RATE,
            smoothed_rate(
                F.col(f"{C.PURCHASES}_90d"),
                F.col(f"{C.VIEWS}_90d"),
                F.lit(purchase_prior),
                strength,
            ),
        )
        .withColumn(C.DT, F.lit(run_date))
    )
    return portraits.drop("_recency")
