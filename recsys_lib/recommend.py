"""Stage ``recommend``: the top-k list of every user active in the training window.

Users with at least ``recommend.min_history_items`` distinct items in the window get the ALS
model's best items (source ``als``); the others get the window's most popular items (source
``popular``). Items the user purchased in the window are never recommended. Scoring is
distributed: item factors are broadcast and each partition of users is scored with
``mapInPandas``. The list is checked before it is written (rule 6).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib import quality
from recsys_lib.config import Settings
from recsys_lib.models.als import (
    AlsModel,
    event_weight,
    load_model,
    model_factors,
    window_bounds,
)
from recsys_lib.scoring import FACTORS, PURCHASED, score_als
from recsys_lib.storage import read_window, write_partitions
from recsys_lib.tables import CLEAN_EVENTS, QUALITY_CHECKS, USER_RECOMMENDATIONS

SOURCE_ALS = "als"
SOURCE_POPULAR = "popular"


def popular_items(events: DataFrame, weights: dict[str, float], pool: int) -> DataFrame:
    """(item_id, score): the ``pool`` items with the largest share of weighted events."""
    weighted = events.groupBy(C.ITEM_ID).agg(
        F.sum(event_weight(F.col(C.EVENT_TYPE), weights)).alias(C.SCORE)
    )
    total = F.sum(C.SCORE).over(Window.partitionBy())
    return (
        weighted.withColumn(C.SCORE, F.col(C.SCORE) / total)
        .orderBy(F.col(C.SCORE).desc(), F.col(C.ITEM_ID))
        .limit(pool)
    )


def score_popular(users: DataFrame, popular: DataFrame, k: int) -> DataFrame:
    """(user_id, rank, item_id, score): popular items minus each user's purchases."""
    by_rank = Window.partitionBy(C.USER_ID).orderBy(F.col(C.SCORE).desc(), F.col(C.ITEM_ID))
    return (
        users.select(C.USER_ID, PURCHASED)
        .crossJoin(F.broadcast(popular))
        .filter(~F.array_contains(F.col(PURCHASED), F.col(C.ITEM_ID)))
        .withColumn(C.RANK, F.row_number().over(by_rank))
        .filter(F.col(C.RANK) <= k)
        .select(C.USER_ID, C.RANK, C.ITEM_ID, C.SCORE)
    )


def user_histories(events: DataFrame) -> DataFrame:
    """(user_id, n_items, purchased): distinct items and purchased items per user."""
    return events.groupBy(C.USER_ID).agg(
        F.countDistinct(C.ITEM_ID).alias("n_items"),
        F.coalesce(
            F.array_sort(
                F.collect_set(F.when(F.col(C.EVENT_TYPE) == C.PURCHASE, F.col(C.ITEM_ID)))
            ),
            F.array().cast("array<long>"),
        ).alias(PURCHASED),
    )


def recommendations(
    spark: SparkSession, settings: Settings, run_date: dt.date, model: AlsModel, version: str
) -> DataFrame:
    """The full ``recs.user_recommendations`` partition for ``run_date``."""
    first, last = window_bounds(run_date, settings.als.window_days)
    events = read_window(spark, settings, CLEAN_EVENTS, first, last)
    weights = dict(settings.als.event_weights)
    k = settings.recommend.top_k
    histories = user_histories(events).join(model_factors(spark, model), C.USER_ID, "left")
    with_history = F.col("n_items") >= settings.recommend.min_history_items
    als_users = histories.filter(with_history & F.col(FACTORS).isNotNull())
    fallback_users = histories.filter(~(with_history & F.col(FACTORS).isNotNull()))
    popular = popular_items(events, weights, settings.recommend.popular_pool).cache()
    als = score_als(als_users, model, k).withColumn(C.SOURCE, F.lit(SOURCE_ALS))
    fallback = score_popular(fallback_users, popular, k).withColumn(C.SOURCE, F.lit(SOURCE_POPULAR))
    return (
        als.unionByName(fallback)
        .withColumn(C.DT, F.lit(run_date))
        .withColumn(C.MODEL_VERSION, F.lit(version))
    )


def audit(recs: DataFrame, k: int) -> list[quality.Check]:
    """Checks of a recommendation set: keys unique, nothing null, ranks and scores in range."""
    table = USER_RECOMMENDATIONS.name
    stats = recs.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct(C.USER_ID).alias("users"),
        F.countDistinct(C.USER_ID, C.RANK).alias("keys"),
        F.sum(
            F.when(
                F.col(C.USER_ID).isNull() | F.col(C.ITEM_ID).isNull() | F.col(C.SCORE).isNull(),
                1,
            ).otherwise(0)
        ).alias("nulls"),
        F.sum(F.when((F.col(C.RANK) < 1) | (F.col(C.RANK) > k), 1).otherwise(0)).alias("bad_ranks"),
        F.sum(
            F.when(
                F.isnan(C.SCORE) | F.col(C.SCORE).isin(float("inf"), float("-inf")), 1
            ).otherwise(0)
        ).alias("bad_scores"),
    ).first()
    assert stats is not None
    duplicate_items = recs.groupBy(C.USER_ID, C.ITEM_ID).count().filter(F.col("count") > 1).count()
    return [
        quality.measure(table, "rows", stats["rows"]),
        quality.measure(table, "users", stats["users"]),
        quality.at_least(table, "rows_present", stats["rows"], 1),
        quality.equals(table, "duplicate_user_rank", stats["rows"] - stats["keys"], 0),
        quality.equals(table, "duplicate_user_item", duplicate_items, 0),
        quality.equals(table, "null_values", stats["nulls"] or 0, 0),
        quality.equals(table, "rank_out_of_range", stats["bad_ranks"] or 0, 0),
        quality.equals(table, "non_finite_scores", stats["bad_scores"] or 0, 0),
    ]


def recommend_day(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``recommend``: score, audit, then publish ``recs.user_recommendations``."""
    model, _run_id = load_model(settings, run_date)
    recs = recommendations(spark, settings, run_date, model, model.version).cache()
    checks = audit(recs, settings.recommend.top_k)
    quality.raise_on_failure(checks)
    write_partitions(
        spark,
        settings,
        [
            (USER_RECOMMENDATIONS, recs, {}),
            (
                QUALITY_CHECKS,
                quality.checks_frame(spark, checks, run_date),
                {C.TABLE_NAME: USER_RECOMMENDATIONS.name},
            ),
        ],
        run_date,
    )
    recs.unpersist()
    return {c.name: c.value for c in checks if c.threshold is None}
