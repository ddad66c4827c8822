"""Popular items and new arrivals, overall and per category (``recs.popular_items``).

Both lists come in three scopes: ``global`` (every item; ``category_id`` = -1),
``top_category`` (per ``top_category_id``) and ``category`` (per ``category_id``, the item's
leaf). An item is listed in each scope it has a category for, so an item without a category
is only in the global lists. The weighted events of a day of ``features.item_daily`` are
``features.event_weights`` times its views, carts and purchases.

- ``popular``: score = sum over the ``popular.window_days`` days ending on the run date D of
  weighted events x 0.5 ** (age / ``half_life_days``), age = D - dt in days. Items scoring 0
  are left out; the best ``top_n`` per scope and category, ties by item id.
- ``new_arrivals``: items with D - ``new_arrival_days`` < first_seen <= D. Score = weighted
  events from first_seen to D (no decay) / (age + 1), age = D - first_seen: the weighted
  events per day on sale. New items without events stay in with score 0, so they get some
  exposure. The best ``new_arrivals_top_n``, ties to the newer item, then by item id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import PopularSettings
from recsys_lib.transforms.top_n import top_n_per
from recsys_lib.transforms.windows import AGE, decay, event_weight, with_age


def in_scopes(scored: DataFrame, *keep: str) -> DataFrame:
    """(scope, category_id, item_id, score, *keep): one row per scope of each item of
    ``scored`` (item_id, score, category_id, top_category_id, *keep); the global scope has
    category_id -1, and a scope whose category is null is skipped."""
    scope = "_scope"
    scopes = F.array(
        *[
            F.struct(F.lit(name).alias(C.SCOPE), category.cast("long").alias(C.CATEGORY_ID))
            for name, category in (
                (C.SCOPE_GLOBAL, F.lit(C.GLOBAL_CATEGORY_ID)),
                (C.SCOPE_TOP_CATEGORY, F.col(C.TOP_CATEGORY_ID)),
                (C.SCOPE_CATEGORY, F.col(C.CATEGORY_ID)),
            )
        ]
    )
    return (
        scored.select(C.ITEM_ID, C.SCORE, *keep, F.explode(scopes).alias(scope))
        .select(
            F.col(f"{scope}.{C.SCOPE}").alias(C.SCOPE),
            F.col(f"{scope}.{C.CATEGORY_ID}").alias(C.CATEGORY_ID),
            C.ITEM_ID,
            C.SCORE,
            *keep,
        )
        .filter(F.col(C.CATEGORY_ID).isNotNull())
    )


def as_list(scored: DataFrame, name: str, n: int, *order: Column) -> DataFrame:
    """Top ``n`` rows per (scope, category_id) by ``order``, as rows of list ``name``."""
    return top_n_per(scored, [C.SCOPE, C.CATEGORY_ID], order, n).select(
        F.lit(name).alias(C.LIST),
        C.SCOPE,
        F.col(C.CATEGORY_ID).cast("long").alias(C.CATEGORY_ID),
        C.RANK,
        C.ITEM_ID,
        F.col(C.SCORE).cast("double").alias(C.SCORE),
    )


def popular(
    item_daily: DataFrame,
    items: DataFrame,
    run_date: dt.date,
    settings: PopularSettings,
    weights: Mapping[str, float],
) -> DataFrame:
    """The ``popular`` list: decayed weighted events over the window, items scoring 0 out."""
    daily = with_age(item_daily, run_date).filter(F.col(AGE).between(0, settings.window_days - 1))
    scores = (
        daily.groupBy(C.ITEM_ID)
        .agg(F.sum(event_weight(weights) * decay(settings.half_life_days)).alias(C.SCORE))
        .filter(F.col(C.SCORE) > 0)
    )
    # Items missing from clean.items still make the global list.
    scored = scores.join(
        items.select(C.ITEM_ID, C.CATEGORY_ID, C.TOP_CATEGORY_ID), C.ITEM_ID, "left"
    )
    return as_list(
        in_scopes(scored), C.LIST_POPULAR, settings.top_n, F.desc(C.SCORE), F.asc(C.ITEM_ID)
    )


def new_arrivals(
    item_daily: DataFrame,
    items: DataFrame,
    run_date: dt.date,
    settings: PopularSettings,
    weights: Mapping[str, float],
) -> DataFrame:
    """The ``new_arrivals`` list: weighted events per day of age of the items first seen in
    the last ``new_arrival_days`` days; items without events kept with score 0."""
    first = run_date - dt.timedelta(days=settings.new_arrival_days)
    age = F.datediff(F.lit(run_date), F.col(C.FIRST_SEEN))
    new = items.filter(
        (F.col(C.FIRST_SEEN) > F.lit(first)) & (F.col(C.FIRST_SEEN) <= F.lit(run_date))
    ).select(C.ITEM_ID, C.CATEGORY_ID, C.TOP_CATEGORY_ID, C.FIRST_SEEN)
    since_first_seen = (
        item_daily.filter(F.col(C.DT) <= F.lit(run_date))
        .join(new.select(C.ITEM_ID, C.FIRST_SEEN), C.ITEM_ID)
        .filter(F.col(C.DT) >= F.col(C.FIRST_SEEN))
        .groupBy(C.ITEM_ID)
        .agg(F.sum(event_weight(weights)).alias("_weighted"))
    )
    scored = new.join(since_first_seen, C.ITEM_ID, "left").withColumn(
        C.SCORE, F.coalesce(F.col("_weighted"), F.lit(0.0)) / (age + 1)
    )
    return as_list(
        in_scopes(scored, C.FIRST_SEEN),
        C.LIST_NEW_ARRIVALS,
        settings.new_arrivals_top_n,
        F.desc(C.SCORE),
        F.desc(C.FIRST_SEEN),
        F.asc(C.ITEM_ID),
    )


def popular_items(
    item_daily: DataFrame,
    items: DataFrame,
    run_date: dt.date,
    settings: PopularSettings,
    weights: Mapping[str, float],
) -> DataFrame:
    """(list, scope, category_id, rank, item_id, score): the ``popular`` and
    ``new_arrivals`` lists of ``run_date`` in the global, top-category and category scopes.

    ``item_daily``: features.item_daily rows covering at least the ``window_days`` and the
    ``new_arrival_days`` days ending on ``run_date`` (older or later rows are ignored);
    ``items``: clean.items of ``run_date``; ``weights``: event type -> weight
    (``features.event_weights``). Rank 1 is the best. The result has no ``dt``: the caller
    adds the run date.

    Example::

        popular_items(daily, items, run_date, settings.popular, settings.features.event_weights)
    """
    return popular(item_daily, items, run_date, settings, weights).unionByName(
        new_arrivals(item_daily, items, run_date, settings, weights)
    )
