"""The seven candidate sources and their union, as pure DataFrame functions.

A user is active on D when they have an event in the ``candidates.active_days`` days ending
on D. Each source proposes at most ``candidates.per_source[source]`` items per user, ranked
by its own score (ties by item id); users whose history group
(:mod:`recsys_lib.sources.history`) is one of ``candidates.thin_groups`` take the cheap
path: no ALS candidates, and the union cut at ``candidates.thin_max_per_user``:

- ``als``: the best items of the ALS model (dot product of the factors);
- ``similar``: neighbours (``recs.similar_items``) of the user's recently viewed items,
  scored by the highest cosine to any of them;
- ``bought_together``: items bought with the user's recently carted or bought items
  (``recs.bought_together``), scored by the highest confidence;
- ``popular``: popular items of the user's top categories (``features.user_portrait``),
  scored by affinity x popularity relative to the category's best item; a user without a
  top category gets the global list;
- ``new_arrivals``: the same with the new-arrivals lists;
- ``recent_views``: items the user viewed in the last ``recent_days`` days and did not
  buy in them, scored by views halving with each day of age;
- ``ease``: the best items of the EASE model (:mod:`recsys_lib.models.ease`) for the
  user's items of the model's window, not those items themselves, positive scores only.

The union (:func:`combine`) keeps one row per (user, item) with each source's score and
rank; its own order (``union_rank``) takes the best rank any source gave the item, then
more sources first, then the source order, then item id. The stage that reads the inputs
and writes ``features.candidates`` is :mod:`recsys_lib.stages.candidates`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import CandidateSettings
from recsys_lib.dates import window, within
from recsys_lib.models.als import AlsModel, model_factors
from recsys_lib.models.ease import EaseModel
from recsys_lib.models.scoring import HISTORY, PURCHASED, block_rows, score_als, score_ease
from recsys_lib.sources.history import full_path_users
from recsys_lib.transforms.top_n import top_n_per
from recsys_lib.warehouse.tables import CANDIDATES

SEED_ITEM = "_seed_item"


LAST_TS = "_last_ts"


def best_by_score(scored: DataFrame, n: int) -> DataFrame:
    """(user_id, item_id, score, rank): the best ``n`` items per user by score, then item id."""
    by_score = [F.desc(C.SCORE), F.asc(C.ITEM_ID)]
    return top_n_per(scored, [C.USER_ID], by_score, n).select(C.USER_ID, C.ITEM_ID, C.SCORE, C.RANK)


def recent_activity(events: DataFrame, run_date: dt.date, settings: CandidateSettings) -> DataFrame:
    """(user_id, item_id, views score, viewed, carted, bought, last event time) over the
    ``recent_days`` days ending on ``run_date``; views halve with each day of age."""
    age = F.datediff(F.lit(run_date), F.col(C.DT))
    is_type = {t: F.col(C.EVENT_TYPE) == t for t in C.EVENT_TYPES}
    return (
        events.filter(within(window(run_date, settings.recent_days)))
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(
            F.sum(F.when(is_type[C.VIEW], F.pow(F.lit(0.5), age)).otherwise(0.0)).alias(C.SCORE),
            F.max(is_type[C.VIEW]).alias(C.VIEWS),
            F.max(is_type[C.CART] | is_type[C.PURCHASE]).alias(C.CARTS),
            F.max(is_type[C.PURCHASE]).alias(C.PURCHASES),
            F.max(C.EVENT_TS).alias(LAST_TS),
        )
    )


def latest_seeds(recent: DataFrame, flag: str, n: int) -> DataFrame:
    """(user_id, _seed_item): each user's ``n`` latest items with ``flag`` set."""
    latest = top_n_per(
        recent.filter(F.col(flag)), [C.USER_ID], [F.desc(LAST_TS), F.asc(C.ITEM_ID)], n, "_n"
    )
    return latest.select(C.USER_ID, F.col(C.ITEM_ID).alias(SEED_ITEM))


def neighbours_of_seeds(
    seeds: DataFrame, pairs: DataFrame, other: str, score: str, n: int
) -> DataFrame:
    """Items paired with a user's seed items (``pairs``: item_id, ``other``, ``score``),
    scored by their best pair score; the seeds themselves are not proposed."""
    proposed = (
        seeds.join(pairs.select(F.col(C.ITEM_ID).alias(SEED_ITEM), other, score), SEED_ITEM)
        .groupBy(C.USER_ID, F.col(other).alias(C.ITEM_ID))
        .agg(F.max(score).alias(C.SCORE))
    )
    not_seeds = proposed.join(
        seeds.withColumnRenamed(SEED_ITEM, C.ITEM_ID), [C.USER_ID, C.ITEM_ID], "left_anti"
    )
    return best_by_score(not_seeds, n)


def category_lists(
    users: DataFrame, portraits: DataFrame, lists: DataFrame, which: str, n: int
) -> DataFrame:
    """Items of list ``which`` in each user's top categories, scored by affinity x the
    item's score relative to its category's best; users without one get the global list."""
    chosen = lists.filter(F.col(C.LIST) == which)
    best = Window.partitionBy(C.SCOPE, C.CATEGORY_ID)
    relative = chosen.withColumn(
        "_relative",
        F.when(F.max(C.SCORE).over(best) > 0, F.col(C.SCORE) / F.max(C.SCORE).over(best)).otherwise(
            0.0
        ),
    )
    leaf = relative.filter(F.col(C.SCOPE) == C.SCOPE_CATEGORY)
    glob = relative.filter(F.col(C.SCOPE) == C.SCOPE_GLOBAL)
    affinities = portraits.select(C.USER_ID, F.explode(C.TOP_CATEGORIES).alias("_top")).select(
        C.USER_ID,
        F.col("_top")[C.CATEGORY_ID].alias(C.CATEGORY_ID),
        F.col("_top")[C.AFFINITY].alias(C.AFFINITY),
    )
    in_categories = affinities.join(leaf, C.CATEGORY_ID).select(
        C.USER_ID, C.ITEM_ID, (F.col(C.AFFINITY) * F.col("_relative")).alias(C.SCORE)
    )
    without = users.join(affinities.select(C.USER_ID).distinct(), C.USER_ID, "left_anti")
    fallback = without.crossJoin(F.broadcast(glob.select(C.ITEM_ID, "_relative"))).select(
        C.USER_ID, C.ITEM_ID, F.col("_relative").alias(C.SCORE)
    )
    scored = (
        in_categories.unionByName(fallback)
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(F.max(C.SCORE).alias(C.SCORE))
    )
    return best_by_score(scored, n)


def als_source(users: DataFrame, model: AlsModel, n: int, block_mb: int = 256) -> DataFrame:
    """The model's best ``n`` items for each user it knows, scored in blocks of at most
    ``block_mb`` MiB per task (``candidates.als_block_mb``)."""
    spark = users.sparkSession
    known = users.join(model_factors(spark, model), C.USER_ID).withColumn(
        PURCHASED, F.array().cast("array<long>")
    )
    rows = block_rows(len(model.item_ids), block_mb, "candidates.als_block_mb")
    return score_als(known, model, n, rows).select(C.USER_ID, C.ITEM_ID, C.SCORE, C.RANK)


def ease_source(
    users: DataFrame, pairs: DataFrame, model: EaseModel, n: int, batch_rows: int
) -> DataFrame:
    """The EASE model's best ``n`` items for each user, from their (user_id, item_id)
    ``pairs`` of the model's window; a user without one gets none."""
    histories = (
        pairs.join(users, C.USER_ID)
        .groupBy(C.USER_ID)
        .agg(F.array_sort(F.collect_set(C.ITEM_ID)).alias(HISTORY))
    )
    return score_ease(histories, model, n, batch_rows).select(C.USER_ID, C.ITEM_ID, C.SCORE, C.RANK)


def recent_views_source(recent: DataFrame, n: int) -> DataFrame:
    """Items viewed recently and not bought in the same days."""
    return best_by_score(
        recent.filter(F.col(C.VIEWS) & ~F.col(C.PURCHASES)).select(C.USER_ID, C.ITEM_ID, C.SCORE),
        n,
    )


def combine(sources: Mapping[str, DataFrame], max_per_user: int | None = None) -> DataFrame:
    """One row per (user, item) with each source's score and rank, the sources that found
    it and the union's order (best rank, more sources, source order, item id); with
    ``max_per_user``, only the first that many of each user in that order."""
    tagged = [
        df.select(C.USER_ID, C.ITEM_ID, C.SCORE, C.RANK, F.lit(order(name)).alias("_source"))
        for name, df in sorted(sources.items(), key=lambda kv: order(kv[0]))
    ]
    union = tagged[0]
    for df in tagged[1:]:
        union = union.unionByName(df)
    per_source: list[Column] = []
    for source in C.CANDIDATE_SOURCES:
        index = order(source)
        mine = F.col("_source") == index
        per_source.append(F.max(F.when(mine, F.col(C.SCORE))).alias(C.source_score(source)))
        per_source.append(F.min(F.when(mine, F.col(C.RANK))).alias(C.source_rank(source)))
    combined = union.groupBy(C.USER_ID, C.ITEM_ID).agg(
        *per_source,
        F.min(C.RANK).alias("_best_rank"),
        F.min("_source").alias("_first_source"),
        F.count(F.lit(1)).cast("int").alias(C.N_SOURCES),
    )
    found = F.array(
        *[F.when(F.col(C.source_rank(s)).isNotNull(), F.lit(s)) for s in C.CANDIDATE_SOURCES]
    )
    union_order = [
        F.asc("_best_rank"),
        F.desc(C.N_SOURCES),
        F.asc("_first_source"),
        F.asc(C.ITEM_ID),
    ]
    ranked_union = top_n_per(
        combined.withColumn(C.SOURCES, F.filter(found, lambda s: s.isNotNull())),
        [C.USER_ID],
        union_order,
        max_per_user,
        C.UNION_RANK,
    )
    return ranked_union.select(*[c for c in CANDIDATES.column_names if c != C.DT])


def order(source: str) -> int:
    """Position of a source in ``constants.CANDIDATE_SOURCES`` (breaks ties in the union)."""
    return C.CANDIDATE_SOURCES.index(source)


def candidate_sources(
    events: DataFrame,
    portraits: DataFrame,
    model: AlsModel,
    similar: DataFrame,
    together: DataFrame,
    lists: DataFrame,
    ease: tuple[EaseModel, DataFrame],
    history: DataFrame,
    run_date: dt.date,
    settings: CandidateSettings,
    ease_batch_rows: int = 1024,
) -> dict[str, DataFrame]:
    """Each source's (user_id, item_id, score, rank) for the users active on ``run_date``;
    ALS only for the users outside ``candidates.thin_groups``.

    ``events``: clean.events of at least the active window; ``portraits``: the day's
    user_portrait; ``similar``, ``together``, ``lists``: the day's recs.similar_items,
    recs.bought_together and recs.popular_items; ``ease``: the EASE model and the
    (user_id, item_id) pairs of its window (:func:`recsys_lib.models.ease.presence`);
    ``history``: (user_id, history_group) of the active users
    (:func:`recsys_lib.sources.history.user_history`).
    """
    users = history.select(C.USER_ID)
    full = full_path_users(history, settings.thin_groups)
    recent = recent_activity(events, run_date, settings).cache()
    n = settings.per_source
    viewed = latest_seeds(recent, C.VIEWS, settings.recent_items)
    carted = latest_seeds(recent, C.CARTS, settings.recent_items)
    active_portraits = portraits.join(users, C.USER_ID)
    return {
        C.SOURCE_ALS: als_source(full, model, n[C.SOURCE_ALS], settings.als_block_mb),
        C.SOURCE_SIMILAR: neighbours_of_seeds(
            viewed, similar, C.SIMILAR_ITEM_ID, C.SCORE, n[C.SOURCE_SIMILAR]
        ),
        C.SOURCE_BOUGHT_TOGETHER: neighbours_of_seeds(
            carted, together, C.OTHER_ITEM_ID, C.CONFIDENCE, n[C.SOURCE_BOUGHT_TOGETHER]
        ),
        C.SOURCE_POPULAR: category_lists(
            users, active_portraits, lists, C.LIST_POPULAR, n[C.SOURCE_POPULAR]
        ),
        C.SOURCE_NEW_ARRIVALS: category_lists(
            users, active_portraits, lists, C.LIST_NEW_ARRIVALS, n[C.SOURCE_NEW_ARRIVALS]
        ),
        C.SOURCE_RECENT_VIEWS: recent_views_source(recent, n[C.SOURCE_RECENT_VIEWS]),
        C.SOURCE_EASE: ease_source(users, ease[1], ease[0], n[C.SOURCE_EASE], ease_batch_rows),
    }
