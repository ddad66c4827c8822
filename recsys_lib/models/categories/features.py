"""Spark features of the items: the category mix of the company they keep, price and popularity."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.transforms.top_n import top_n_per
from recsys_lib.transforms.windows import event_weight

if TYPE_CHECKING:
    pass

from recsys_lib.models.categories import (
    ACTIVE_DAYS,
    BASE_FEATURES,
    CART_RATE,
    COOC_MASS,
    COOC_USER_DAYS,
    DEFAULT_EVENT_WEIGHTS,
    FEATURE_DECIMALS,
    HAS_BEHAVIOUR,
    KNOWN_SHARE,
    LEAF_ID,
    LEAF_SHARE,
    LOG_CARTS,
    LOG_PRICE,
    LOG_PURCHASES,
    LOG_USERS,
    LOG_VIEWS,
    MASS_SHARE,
    OWN_LEAF,
    OWN_TOP,
    PRICE_MISSING,
    PURCHASE_RATE,
    SHARE,
    VOTE,
    WEIGHT,
)

log = logging.getLogger(__name__)


def share_columns(top_categories: Sequence[int]) -> list[str]:
    """Names of the per-category share features, in ``top_categories`` order."""
    return [f"{prefix}{c}" for prefix in (SHARE, MASS_SHARE) for c in top_categories]


def feature_columns(top_categories: Sequence[int]) -> list[str]:
    """Every model feature of :func:`item_behaviour_features`, in a fixed order."""
    return [*share_columns(top_categories), *BASE_FEATURES]


def _catalogue_labelled() -> Column:
    return (F.col(C.CATEGORY_SOURCE) == F.lit(C.SOURCE_CATALOGUE)) & F.col(
        C.TOP_CATEGORY_ID
    ).isNotNull()


def _weighted(interactions: DataFrame, event_weights: Mapping[str, float]) -> DataFrame:
    return interactions.select(
        C.DT,
        C.USER_ID,
        C.ITEM_ID,
        C.VIEWS,
        C.CARTS,
        C.PURCHASES,
        event_weight(event_weights).cast("double").alias(WEIGHT),
    ).filter(F.col(WEIGHT) > 0)


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def item_behaviour_features(
    interactions: DataFrame,
    items: DataFrame,
    top_categories: list[int],
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
) -> DataFrame:
    """One row per item of ``items``: ``item_id`` and :func:`feature_columns` (doubles).

    ``interactions`` has ``features.user_item_daily``'s columns (dt, user_id, item_id, views,
    carts, purchases); ``items`` has ``clean.items``' (item_id, top_category_id,
    category_source, price). A row's weight ``w`` is its event counts times
    ``event_weights``. For item ``i`` seen in user-day ``d``, the other items of ``d`` with a
    catalogue top category give ``o_c(i, d)``: their weight in category ``c`` (``i``'s own
    weight taken out of its own category), and ``o(i, d) = sum_c o_c``. Then:

    - ``share_<c>``: mean over the user-days with ``o > 0`` of ``o_c / o`` (each user-day
      votes once, so a bot's day with hundreds of views weighs as one);
    - ``mass_share_<c>``: ``sum_d o_c / sum_d o``;
    - ``cooc_log_mass``: ``ln(1 + sum_d o)``; ``cooc_user_days``: user-days with ``o > 0``;
      ``cooc_known_share``: ``sum_d o`` over the weight of all other items of its user-days;
    - ``log_price`` ``ln(1 + price)`` and ``price_missing`` (1/0); ``log_views``,
      ``log_carts``, ``log_purchases`` (``ln(1 + count)``), ``cart_rate`` and
      ``purchase_rate`` (per view), ``log_users`` (distinct users), ``active_days``.

    Shares are null for an item without categorised company. Work is linear in the rows of
    ``interactions`` times the top categories present in their user-days.

    Example: a user-day with item 1 (top 10, weight 1), item 2 (top 20, weight 4) and item 3
    (uncategorised) gives item 1 ``share_20 = 1``, item 2 ``share_10 = 1`` and item 3
    ``share_10 = 0.2``.
    """
    tops = [int(c) for c in top_categories]
    known = items.filter(_catalogue_labelled() & F.col(C.TOP_CATEGORY_ID).isin(tops)).select(
        C.ITEM_ID, F.col(C.TOP_CATEGORY_ID).alias(OWN_TOP)
    )
    rows = _weighted(interactions, event_weights).join(known, C.ITEM_ID, "left")
    # Long format throughout (one row per user-day and category): wide per-category
    # expressions make Spark's optimizer blow up at a few dozen categories.
    own_known = F.when(F.col(OWN_TOP).isNotNull(), F.col(WEIGHT)).otherwise(F.lit(0.0))
    per_day = rows.groupBy(C.DT, C.USER_ID).agg(
        F.sum(WEIGHT).alias("_day_all"), F.sum(own_known).alias("_day_known")
    )
    per_day_top = (
        rows.filter(F.col(OWN_TOP).isNotNull())
        .groupBy(C.DT, C.USER_ID, F.col(OWN_TOP).alias("_top"))
        .agg(F.sum(WEIGHT).alias("_day_top"))
    )
    item_days = rows.join(per_day, [C.DT, C.USER_ID]).select(
        C.DT,
        C.USER_ID,
        C.ITEM_ID,
        C.VIEWS,
        C.CARTS,
        C.PURCHASES,
        WEIGHT,
        OWN_TOP,
        (F.col("_day_all") - F.col(WEIGHT)).alias("_other_all"),
        (F.col("_day_known") - own_known).alias("_other"),
    )
    own_here = F.when(F.col(OWN_TOP) == F.col("_top"), F.col(WEIGHT)).otherwise(F.lit(0.0))
    pivot_values: list[bool | float | int | str] = list(tops)
    per_top = (
        item_days.filter(F.col("_other") > 0)
        .join(per_day_top, [C.DT, C.USER_ID])
        .select(C.ITEM_ID, "_top", "_other", (F.col("_day_top") - own_here).alias("_o"))
        .filter(F.col("_o") > 0)
        .groupBy(C.ITEM_ID)
        .pivot("_top", pivot_values)
        .agg(F.sum("_o").alias("m"), F.sum(F.col("_o") / F.col("_other")).alias("n"))
    )
    agg = (
        item_days.groupBy(C.ITEM_ID)
        .agg(
            F.sum(C.VIEWS).alias(C.VIEWS),
            F.sum(C.CARTS).alias(C.CARTS),
            F.sum(C.PURCHASES).alias(C.PURCHASES),
            F.countDistinct(C.USER_ID).alias("_users"),
            F.countDistinct(C.DT).alias("_days"),
            F.sum("_other_all").alias("_mass_all"),
            F.sum("_other").alias("_mass"),
            F.count(F.when(F.col("_other") > 0, F.lit(1))).alias("_cooc_days"),
        )
        .join(per_top, C.ITEM_ID, "left")
    )
    features = items.select(C.ITEM_ID, C.PRICE).join(agg, C.ITEM_ID, "left")
    views, carts, purchases = (
        F.coalesce(F.col(n), F.lit(0)) for n in (C.VIEWS, C.CARTS, C.PURCHASES)
    )
    mass = F.coalesce(F.col("_mass"), F.lit(0.0))
    cooc_days = F.coalesce(F.col("_cooc_days"), F.lit(0))
    values: dict[str, Column] = {}
    for c in tops:
        values[f"{SHARE}{c}"] = _ratio(F.coalesce(F.col(f"{c}_n"), F.lit(0.0)), cooc_days)
        values[f"{MASS_SHARE}{c}"] = _ratio(F.coalesce(F.col(f"{c}_m"), F.lit(0.0)), mass)
    values.update(
        {
            COOC_MASS: F.log1p(mass),
            COOC_USER_DAYS: cooc_days,
            KNOWN_SHARE: _ratio(mass, F.col("_mass_all")),
            LOG_PRICE: F.log1p(F.when(F.col(C.PRICE) >= 0, F.col(C.PRICE))),
            PRICE_MISSING: F.col(C.PRICE).isNull().cast("double"),
            LOG_VIEWS: F.log1p(views),
            LOG_CARTS: F.log1p(carts),
            LOG_PURCHASES: F.log1p(purchases),
            CART_RATE: _ratio(carts, views),
            PURCHASE_RATE: _ratio(purchases, views),
            LOG_USERS: F.log1p(F.coalesce(F.col("_users"), F.lit(0))),
            ACTIVE_DAYS: F.coalesce(F.col("_days"), F.lit(0)),
        }
    )
    return features.select(
        C.ITEM_ID,
        *[
            F.round(values[name].cast("double"), FEATURE_DECIMALS).alias(name)
            for name in feature_columns(tops)
        ],
        (views + carts + purchases > 0).alias(HAS_BEHAVIOUR),
    )


def item_leaf_votes(
    interactions: DataFrame,
    items: DataFrame,
    categories: DataFrame,
    targets: DataFrame | None = None,
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
) -> DataFrame:
    """(item_id, top_category_id, leaf_id, vote): the catalogue leaves (below the top level)
    of the items co-occurring with each item of ``targets`` (item_id; all items if None),
    as :func:`co_occurrence_votes` counts them."""
    leaves = (
        items.filter(F.col(C.CATEGORY_SOURCE) == F.lit(C.SOURCE_CATALOGUE))
        .select(C.ITEM_ID, C.CATEGORY_ID)
        .join(
            categories.filter(
                F.col("is_leaf")
                & (F.col(C.CATEGORY_DEPTH) > 0)
                & F.col(C.TOP_CATEGORY_ID).isNotNull()
            ).select(C.CATEGORY_ID, C.TOP_CATEGORY_ID),
            C.CATEGORY_ID,
        )
        .select(C.ITEM_ID, F.col(C.CATEGORY_ID).alias(OWN_LEAF), C.TOP_CATEGORY_ID)
    )
    return co_occurrence_votes(interactions, leaves, targets, event_weights=event_weights)


def item_top_votes(
    interactions: DataFrame,
    items: DataFrame,
    targets: DataFrame | None = None,
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
) -> DataFrame:
    """(item_id, top_category_id, leaf_id, vote): the catalogue top categories of the items
    co-occurring with each item of ``targets``, as :func:`co_occurrence_votes` counts them
    (``leaf_id`` is the top category itself). No column per category: the rows are long."""
    tops = items.filter(_catalogue_labelled()).select(
        C.ITEM_ID, F.col(C.TOP_CATEGORY_ID).alias(OWN_LEAF), C.TOP_CATEGORY_ID
    )
    return co_occurrence_votes(interactions, tops, targets, event_weights=event_weights)


def co_occurrence_votes(
    interactions: DataFrame,
    labels: DataFrame,
    targets: DataFrame | None = None,
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
) -> DataFrame:
    """(item_id, top_category_id, leaf_id, vote): for each item of ``targets`` (item_id;
    all items if None), the votes of the ``labels`` (item_id, ``_own_leaf``,
    top_category_id) of the items it co-occurs with.

    Per user-day, each label's share of the weight of the other labelled items (the item's
    own weight out), summed over the item's user-days: an item never votes for itself. Rows
    are only built for the targets, so the work is their rows times the distinct labels of
    their user-days.
    """
    rows = _weighted(interactions, event_weights).select(C.DT, C.USER_ID, C.ITEM_ID, WEIGHT)
    with_leaf = rows.join(labels, C.ITEM_ID)
    per_leaf = with_leaf.groupBy(C.DT, C.USER_ID, OWN_LEAF, C.TOP_CATEGORY_ID).agg(
        F.sum(WEIGHT).alias("_leaf_weight")
    )
    per_day = per_leaf.groupBy(C.DT, C.USER_ID).agg(F.sum("_leaf_weight").alias("_day_leaves"))
    wanted = rows if targets is None else rows.join(targets.select(C.ITEM_ID), C.ITEM_ID, "semi")
    wanted = wanted.join(
        labels.select(C.ITEM_ID, F.col(OWN_LEAF).alias("_target_leaf")), C.ITEM_ID, "left"
    )
    own = F.when(F.col("_target_leaf").isNotNull(), F.col(WEIGHT)).otherwise(F.lit(0.0))
    own_here = F.when(F.col("_target_leaf") == F.col(OWN_LEAF), F.col(WEIGHT)).otherwise(F.lit(0.0))
    votes = (
        wanted.join(per_day, [C.DT, C.USER_ID])
        .withColumn("_other", F.col("_day_leaves") - own)
        .filter(F.col("_other") > 0)
        .join(per_leaf, [C.DT, C.USER_ID])
        .select(
            C.ITEM_ID,
            C.TOP_CATEGORY_ID,
            F.col(OWN_LEAF).alias(LEAF_ID),
            ((F.col("_leaf_weight") - own_here) / F.col("_other")).alias(VOTE),
        )
        .filter(F.col(VOTE) > 0)
    )
    return votes.groupBy(C.ITEM_ID, C.TOP_CATEGORY_ID, LEAF_ID).agg(
        F.round(F.sum(VOTE), FEATURE_DECIMALS).alias(VOTE)
    )


def best_leaves(votes: DataFrame) -> DataFrame:
    """(item_id, top_category_id, leaf_id, leaf_share): per item and top category the most
    voted leaf (ties: the smaller id) and its share of the votes under that top category."""
    group = Window.partitionBy(C.ITEM_ID, C.TOP_CATEGORY_ID)
    totalled = votes.withColumn("_total", F.sum(VOTE).over(group))
    best = top_n_per(
        totalled, [C.ITEM_ID, C.TOP_CATEGORY_ID], [F.desc(VOTE), F.asc(LEAF_ID)], 1, "_rank"
    )
    return best.select(
        C.ITEM_ID, C.TOP_CATEGORY_ID, LEAF_ID, (F.col(VOTE) / F.col("_total")).alias(LEAF_SHARE)
    )
