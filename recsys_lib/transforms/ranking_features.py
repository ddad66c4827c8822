"""Ranking features of a candidate list, and its labels: the ranker's input.

The features of a candidate list of day A (``features.candidates``, dt = A) use only tables
of day A: the candidate's source scores and ranks, the user's portrait, the item's
features, and the user's events on the item and its category in the 30 days ending on A.
Pure DataFrame functions; the stages read the tables (``stages.inputs.features_of_day``).
Rules: docs/ranker.md.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.dates import window, within

INTERACTION_DAYS = 30  # the user x item and user x category features look this far back


_LAST_DAY = "_last_day"


def _as_double(column: str | Column) -> Column:
    value = F.col(column) if isinstance(column, str) else column
    return value.cast("double")


def user_item_history(user_items: DataFrame, as_of: dt.date) -> DataFrame:
    """(user_id, item_id, views, carts, last day) of the ``features.user_item_daily`` rows
    of the 30 days ending on ``as_of``."""
    recent = user_items.filter(within(window(as_of, INTERACTION_DAYS)))
    return recent.groupBy(C.USER_ID, C.ITEM_ID).agg(
        F.sum(C.VIEWS).alias(C.USER_ITEM_VIEWS_30D),
        F.sum(C.CARTS).alias(C.USER_ITEM_CARTS_30D),
        F.max(C.DT).alias(_LAST_DAY),
    )


def category_affinities(portraits: DataFrame, items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """The portraits' top categories as (user_id, category_id, affinity) and their sums per
    top-level category (user_id, top_category_id, affinity)."""
    top = portraits.select(C.USER_ID, F.explode(C.TOP_CATEGORIES).alias("_top")).select(
        C.USER_ID,
        F.col("_top")[C.CATEGORY_ID].alias(C.CATEGORY_ID),
        F.col("_top")[C.AFFINITY].alias(C.AFFINITY),
    )
    tops_of = items.select(C.CATEGORY_ID, C.TOP_CATEGORY_ID).distinct()
    by_top = (
        top.join(tops_of, C.CATEGORY_ID)
        .groupBy(C.USER_ID, C.TOP_CATEGORY_ID)
        .agg(F.sum(C.AFFINITY).alias(C.AFFINITY))
    )
    return top, by_top


def ranking_features(
    candidates: DataFrame,
    portraits: DataFrame,
    items: DataFrame,
    user_items: DataFrame,
    as_of: dt.date,
) -> DataFrame:
    """(user_id, item_id, every column of ``constants.RANKING_FEATURES``) for the
    candidates of ``as_of``; the inputs are that day's portraits and item features and the
    ``features.user_item_daily`` rows of (at least) the 30 days ending on it."""
    users = portraits.select(
        C.USER_ID,
        *[
            _as_double(c).alias(f)
            for c, f in zip(C.USER_FEATURE_SOURCES, C.USER_FEATURES, strict=True)
        ],
    )
    item_columns = items.select(
        C.ITEM_ID,
        C.CATEGORY_ID,
        C.TOP_CATEGORY_ID,
        *[
            _as_double(c).alias(f)
            for c, f in zip(C.ITEM_FEATURE_SOURCES, C.ITEM_FEATURES, strict=True)
        ],
    )
    history = user_item_history(user_items, as_of)
    by_category = (
        history.join(items.select(C.ITEM_ID, C.CATEGORY_ID), C.ITEM_ID)
        .groupBy(C.USER_ID, C.CATEGORY_ID)
        .agg(F.max(_LAST_DAY).alias("_category_last_day"))
    )
    leaf, top = category_affinities(portraits, items)
    days_since = F.datediff(F.lit(as_of), F.col(_LAST_DAY))
    joined = (
        candidates.join(users, C.USER_ID, "left")
        .join(item_columns, C.ITEM_ID, "left")
        .join(history, [C.USER_ID, C.ITEM_ID], "left")
        .join(by_category, [C.USER_ID, C.CATEGORY_ID], "left")
        .join(
            leaf.withColumnRenamed(C.AFFINITY, C.CATEGORY_AFFINITY),
            [C.USER_ID, C.CATEGORY_ID],
            "left",
        )
        .join(
            top.withColumnRenamed(C.AFFINITY, C.TOP_CATEGORY_AFFINITY),
            [C.USER_ID, C.TOP_CATEGORY_ID],
            "left",
        )
    )
    pair = {
        C.CATEGORY_AFFINITY: F.coalesce(C.CATEGORY_AFFINITY, F.lit(0.0)),
        C.TOP_CATEGORY_AFFINITY: F.coalesce(C.TOP_CATEGORY_AFFINITY, F.lit(0.0)),
        C.PRICE_BAND_GAP: F.col("item_price_pct_in_category") - F.col("user_price_band_pct"),
        C.DAYS_SINCE_ITEM_EVENT: days_since,
        C.DAYS_SINCE_CATEGORY_EVENT: F.datediff(F.lit(as_of), F.col("_category_last_day")),
        C.USER_ITEM_VIEWS_30D: F.coalesce(C.USER_ITEM_VIEWS_30D, F.lit(0)),
        C.USER_ITEM_CARTS_30D: F.coalesce(C.USER_ITEM_CARTS_30D, F.lit(0)),
    }
    return joined.select(
        C.USER_ID,
        C.ITEM_ID,
        *[_as_double(c).alias(c) for c in C.CANDIDATE_FEATURES],
        *[_as_double(pair[c]).alias(c) for c in C.PAIR_FEATURES],
        *C.USER_FEATURES,
        *C.ITEM_FEATURES,
    )


def labelled(features: DataFrame, labels: DataFrame) -> DataFrame:
    """``features`` with the label of each (user, item): 0 when the user did nothing with it."""
    return features.join(labels, [C.USER_ID, C.ITEM_ID], "left").withColumn(
        C.LABEL, F.coalesce(F.col(C.LABEL), F.lit(C.LABEL_NONE)).cast("int")
    )
