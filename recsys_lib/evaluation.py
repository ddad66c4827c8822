"""Offline evaluation of ranked lists, and the rows of ``ops.model_evaluation``.

- ``recall_at_k``: recall of the candidate lists on the next-day holdout (stage
  ``candidates``). Recall@k of one user = |relevant items among the first k of the list| /
  |relevant items|, the relevant items being the distinct items the user viewed, carted or
  bought on the holdout day; its mean is over the users who had a list and an event.
- ``ranking_metrics``: precision, recall, NDCG, MAP and hit rate at k of several variants'
  lists against graded relevance, averaged over the evaluated users.
- ``beyond_accuracy_metrics``: catalogue coverage, novelty, intra-list diversity and
  popularity bias at k.
- ``metrics_plot``: a PNG of the figures against k, one line per variant.

Everything is computed with DataFrame operations; only the aggregated figures reach the
driver. Formulas and choices: ``docs/evaluation.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from recsys_lib import constants as C
from recsys_lib.warehouse.tables import MODEL_EVALUATION

# One figure of ops.model_evaluation: variant, metric, k, value.
Figure = tuple[str, str, int, float]

PRECISION = "precision"
RECALL = "recall"
NDCG = "ndcg"
MAP = "map"
HIT_RATE = "hit_rate"
CATALOG_COVERAGE = "catalog_coverage"
NOVELTY = "novelty"
DIVERSITY = "intra_list_diversity"
POPULARITY_BIAS = "popularity_bias"
USERS_EVALUATED = "users_evaluated"
HOLDOUT_USERS_COVERED = "holdout_users_covered"
MEAN_LIST_SIZE = "mean_list_size"
NO_CUT_OFF = 0  # k of a figure over the whole list

RANKING_METRICS = (PRECISION, RECALL, NDCG, MAP, HIT_RATE)
BEYOND_ACCURACY_METRICS = (CATALOG_COVERAGE, NOVELTY, DIVERSITY, POPULARITY_BIAS)

RELEVANCE = "relevance"  # graded relevance of a relevant item (> 0; 1.0 when binary)
POPULARITY_PERCENTILE = "popularity_percentile"
NULL_CATEGORY = -1  # the category an item without one counts as in the diversity

_POSITION = "_position"


def evaluation_frame(
    spark: SparkSession, model: str, figures: Sequence[Figure], run_date: dt.date
) -> DataFrame:
    """``ops.model_evaluation`` rows of ``model`` for ``run_date``."""
    return spark.createDataFrame(
        [(run_date, model, v, m, int(k), float(x)) for v, m, k, x in figures],
        MODEL_EVALUATION.schema,
    )


def relevant_items(holdout_events: DataFrame) -> DataFrame:
    """(user_id, item_id): the distinct items each user touched on the holdout day."""
    return holdout_events.select(C.USER_ID, C.ITEM_ID).distinct()


def recall_at_k(
    lists: DataFrame, relevant: DataFrame, rank_columns: dict[str, str], ks: Sequence[int]
) -> list[Figure]:
    """Mean recall@k of each ranked list in ``lists`` (user_id, item_id, rank columns).

    ``rank_columns`` maps a variant name to its rank column (null: not in that list); a
    ``k`` of 0 counts the whole list. Users are those with a list and a relevant item; a
    variant that found nothing for a user scores 0 for that user.
    """
    per_user_relevant = relevant.groupBy(C.USER_ID).agg(F.count(F.lit(1)).alias("_relevant"))
    listed_users = lists.select(C.USER_ID).distinct()
    users = per_user_relevant.join(listed_users, C.USER_ID)
    hits = lists.join(relevant, [C.USER_ID, C.ITEM_ID])
    hit_counts = []
    for variant, column in sorted(rank_columns.items()):
        for k in ks:
            inside = F.col(column).isNotNull()
            if k != NO_CUT_OFF:
                inside = inside & (F.col(column) <= k)
            hit_counts.append(F.count(F.when(inside, 1)).alias(f"{variant}@{k}"))
    per_user = users.join(hits.groupBy(C.USER_ID).agg(*hit_counts), C.USER_ID, "left")
    means = per_user.agg(
        F.count(F.lit(1)).alias("_users"),
        *[
            F.avg(F.coalesce(F.col(f"`{variant}@{k}`"), F.lit(0)) / F.col("_relevant")).alias(
                f"{variant}@{k}"
            )
            for variant in sorted(rank_columns)
            for k in ks
        ],
    ).first()
    assert means is not None
    figures: list[Figure] = [
        (variant, RECALL, k, float(means[f"{variant}@{k}"] or 0.0))
        for variant in sorted(rank_columns)
        for k in ks
    ]
    return [*figures, ("all", USERS_EVALUATED, NO_CUT_OFF, float(means["_users"]))]


def _cut_offs(ks: Sequence[int]) -> list[int]:
    cut_offs = sorted({int(k) for k in ks})
    if any(k < 1 for k in cut_offs):
        raise ValueError(f"every k must be at least 1, got {list(ks)}")
    return cut_offs


def _name(metric: str, k: int) -> str:
    return f"_{metric}_{k}"


def _list_order() -> WindowSpec:
    # Positions are renumbered 1, 2, ... from the ranks, so a list with gaps in its ranks
    # still has its first k items in the top k.
    return Window.partitionBy(C.VARIANT, C.USER_ID).orderBy(C.RANK)


def _discount(position: Column) -> Column:
    return F.lit(1.0) / F.log2(position + F.lit(1))


def ranking_metrics(
    lists: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int],
    users: DataFrame | None = None,
) -> list[Figure]:
    """Precision, recall, NDCG, MAP and hit rate at each k of every variant in ``lists``.

    ``lists``: (variant, user_id, item_id, rank), rank 1 = best, unique per variant and
    user. ``relevant``: (user_id, item_id, relevance), relevance > 0 (graded, or 1.0);
    rows with a relevance that is null or not positive are not relevant. ``users``:
    (user_id) of the users to evaluate; by default every user with a relevant item. The
    evaluated users are those of ``users`` with at least one relevant item; one without a
    list in a variant scores 0 in it. Per user, with hits@k the relevant items among the
    first k of the list::

        precision@k = hits@k / k
        recall@k    = hits@k / |relevant|
        ndcg@k      = DCG@k / IDCG@k, DCG@k = sum over the first k of
                      relevance / log2(position + 1); IDCG@k the same over the user's
                      relevant items sorted by relevance
        map@k       = sum over the hits in the first k of precision@position,
                      divided by min(|relevant|, k)   (Recommenders' ``map_at_k``)
        hit_rate@k  = 1 if hits@k > 0 else 0

    Each figure is the mean over the evaluated users; one ``users_evaluated`` figure
    (k = 0) per variant gives their number. One Spark job for all variants and k:

    >>> ranking_metrics(lists, relevant, ks=[5, 10])  # doctest: +SKIP
    [('als', 'precision', 5, 0.12), ..., ('als', 'users_evaluated', 0, 1520.0), ...]
    """
    cut_offs = _cut_offs(ks)
    graded = (
        relevant.where(F.col(RELEVANCE) > 0)
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(F.max(RELEVANCE).alias(RELEVANCE))
    )
    if users is not None:
        graded = graded.join(users.select(C.USER_ID), C.USER_ID, "left_semi")

    # row_number, not rank: relevant items of equal relevance take distinct positions,
    # so ties do not change the ideal DCG.
    ideal_order = Window.partitionBy(C.USER_ID).orderBy(F.desc(RELEVANCE))
    ideal_position = F.col("_ideal_position")
    per_user = (
        graded.withColumn("_ideal_position", F.row_number().over(ideal_order))
        .groupBy(C.USER_ID)
        .agg(
            F.count(F.lit(1)).alias("_relevant"),
            *[
                F.sum(
                    F.when(ideal_position <= k, F.col(RELEVANCE) * _discount(ideal_position))
                ).alias(_name("idcg", k))
                for k in cut_offs
            ],
        )
    )

    position = F.col(_POSITION)
    hits = (
        lists.select(C.VARIANT, C.USER_ID, C.ITEM_ID, C.RANK)
        .join(graded, [C.USER_ID, C.ITEM_ID], "left")
        .withColumn(_POSITION, F.row_number().over(_list_order()))
        .withColumn(
            "_hits_so_far",
            F.count(RELEVANCE).over(
                _list_order().rowsBetween(Window.unboundedPreceding, Window.currentRow)
            ),
        )
        .where(F.col(RELEVANCE).isNotNull() & (position <= max(cut_offs, default=0)))
    )
    per_list = (
        hits.groupBy(C.VARIANT, C.USER_ID)
        .agg(
            *[
                aggregate
                for k in cut_offs
                for aggregate in (
                    F.count(F.when(position <= k, 1)).alias(_name("hits", k)),
                    F.sum(F.when(position <= k, F.col(RELEVANCE) * _discount(position))).alias(
                        _name("dcg", k)
                    ),
                    F.sum(F.when(position <= k, F.col("_hits_so_far") / position)).alias(
                        _name("ap", k)
                    ),
                )
            ]
        )
        .join(per_user, C.USER_ID)
    )
    sums = []
    for k in cut_offs:
        hits_k = F.col(_name("hits", k))
        n_relevant = F.col("_relevant")
        sums += [
            F.sum(hits_k / k).alias(_name(PRECISION, k)),
            F.sum(hits_k / n_relevant).alias(_name(RECALL, k)),
            F.sum(F.coalesce(F.col(_name("dcg", k)), F.lit(0.0)) / F.col(_name("idcg", k))).alias(
                _name(NDCG, k)
            ),
            F.sum(
                F.coalesce(F.col(_name("ap", k)), F.lit(0.0)) / F.least(n_relevant, F.lit(k))
            ).alias(_name(MAP, k)),
            F.count(F.when(hits_k > 0, 1)).alias(_name(HIT_RATE, k)),
        ]
    per_variant = per_list.groupBy(C.VARIANT).agg(*sums) if sums else None
    variants = lists.select(C.VARIANT).distinct()
    if per_variant is not None:
        variants = variants.join(per_variant, C.VARIANT, "left")
    evaluated = per_user.agg(F.count(F.lit(1)).alias("_users"))
    rows = variants.crossJoin(evaluated).collect()

    figures: list[Figure] = []
    for row in sorted(rows, key=lambda r: r[C.VARIANT]):
        n_users = int(row["_users"])
        for metric in RANKING_METRICS:
            for k in cut_offs:
                total = float(row[_name(metric, k)] or 0.0)
                figures.append((row[C.VARIANT], metric, k, total / n_users if n_users else 0.0))
        figures.append((row[C.VARIANT], USERS_EVALUATED, NO_CUT_OFF, float(n_users)))
    return figures


def popularity_percentiles(item_popularity: DataFrame) -> DataFrame:
    """(item_id, users, popularity_percentile) of each item of ``item_popularity``
    (item_id, users).

    The percentile is the item's position when the items are sorted by ``users``
    ascending, scaled to [0, 1]: (position - 1) / (n_items - 1). Tied items share the mean
    of their positions, so the mean over the catalogue is 0.5; a lone item gets 0.5.
    """
    levels = item_popularity.groupBy(C.USERS).agg(F.count(F.lit(1)).alias("_items"))
    # The window runs over the distinct popularity values only, a short table.
    by_popularity = Window.orderBy(C.USERS)
    up_to_here = by_popularity.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    everything = by_popularity.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    last = F.sum("_items").over(up_to_here)
    total = F.sum("_items").over(everything)
    mean_position = last - (F.col("_items") - 1) / 2
    percentile = F.when(total > 1, (mean_position - 1) / (total - 1)).otherwise(F.lit(0.5))
    levels = levels.select(C.USERS, percentile.alias(POPULARITY_PERCENTILE))
    return item_popularity.select(C.ITEM_ID, C.USERS).join(levels, C.USERS)


def beyond_accuracy_metrics(
    lists: DataFrame,
    item_categories: DataFrame,
    item_popularity: DataFrame,
    n_users: int,
    catalogue_size: int,
    ks: Sequence[int],
) -> list[Figure]:
    """Catalogue coverage, novelty, intra-list diversity and popularity bias at each k of
    every variant in ``lists`` (variant, user_id, item_id, rank).

    ``item_categories``: (item_id, category_id); ``item_popularity``: (item_id, users),
    the distinct users of each item in the training data, of ``n_users`` users in all;
    items missing from it have popularity 0. With top k the first k items of a list::

        catalog_coverage@k     = |distinct items in the variant's top k| / catalogue_size
        novelty@k              = mean over every (user, item) in a top k of -log2(p_item),
                                 p_item = (users_item + 1) / (n_users + 1)
        intra_list_diversity@k = mean over users with >= 2 items in their top k of the
                                 share of item pairs whose categories differ (a missing
                                 category counts as the category -1)
        popularity_bias@k      = mean over users of the mean popularity percentile
                                 (``popularity_percentiles``) of their top k; 0 for items
                                 missing from ``item_popularity``

    A variant without any list of two items or more has a diversity of 0.

    >>> beyond_accuracy_metrics(lists, items, popularity, 9000, 24000, ks=[10])  # doctest: +SKIP
    [('als', 'catalog_coverage', 10, 0.31), ('als', 'novelty', 10, 7.9), ...]
    """
    cut_offs = _cut_offs(ks)
    if n_users < 0:
        raise ValueError(f"n_users must not be negative, got {n_users}")
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be at least 1, got {catalogue_size}")
    position = F.col(_POSITION)
    top = (
        lists.select(C.VARIANT, C.USER_ID, C.ITEM_ID, C.RANK)
        .withColumn(_POSITION, F.row_number().over(_list_order()))
        .where(position <= max(cut_offs, default=0))
    )
    categories = item_categories.select(C.ITEM_ID, F.col(C.CATEGORY_ID).alias("_category"))
    popularity = F.coalesce(F.col(C.USERS), F.lit(0))
    enriched = (
        top.join(categories, C.ITEM_ID, "left")
        .join(popularity_percentiles(item_popularity), C.ITEM_ID, "left")
        .select(
            C.VARIANT,
            C.USER_ID,
            C.ITEM_ID,
            _POSITION,
            F.coalesce(F.col("_category"), F.lit(NULL_CATEGORY)).alias("_category"),
            F.coalesce(F.col(POPULARITY_PERCENTILE), F.lit(0.0)).alias("_percentile"),
            (-F.log2((popularity + 1) / F.lit(n_users + 1))).alias("_novelty"),
        )
    )

    # Pairs of a user's items in one category: sum over categories of n_c (n_c - 1) / 2,
    # so no pairs are built.
    by_category = enriched.groupBy(C.VARIANT, C.USER_ID, "_category").agg(
        *[
            aggregate
            for k in cut_offs
            for aggregate in (
                F.count(F.when(position <= k, 1)).alias(_name("items", k)),
                F.sum(F.when(position <= k, F.col("_percentile"))).alias(_name("percentile", k)),
                F.sum(F.when(position <= k, F.col("_novelty"))).alias(_name("novelty", k)),
            )
        ]
    )
    per_user = by_category.groupBy(C.VARIANT, C.USER_ID).agg(
        *[
            aggregate
            for k in cut_offs
            for aggregate in (
                F.sum(_name("items", k)).alias(_name("items", k)),
                F.sum(F.col(_name("items", k)) * (F.col(_name("items", k)) - 1) / 2).alias(
                    _name("same_pairs", k)
                ),
                F.sum(_name("percentile", k)).alias(_name("percentile", k)),
                F.sum(_name("novelty", k)).alias(_name("novelty", k)),
            )
        ]
    )
    per_variant_aggregates = []
    for k in cut_offs:
        items = F.col(_name("items", k))
        pairs = items * (items - 1) / 2
        per_variant_aggregates += [
            (F.sum(_name("novelty", k)) / F.sum(items)).alias(_name(NOVELTY, k)),
            F.avg(F.when(items >= 2, 1 - F.col(_name("same_pairs", k)) / pairs)).alias(
                _name(DIVERSITY, k)
            ),
            F.avg(F.col(_name("percentile", k)) / items).alias(_name(POPULARITY_BIAS, k)),
        ]
    per_variant = per_user.groupBy(C.VARIANT).agg(*per_variant_aggregates)
    coverage = (
        top.groupBy(C.VARIANT, C.ITEM_ID)
        .agg(F.min(_POSITION).alias("_best"))
        .groupBy(C.VARIANT)
        .agg(
            *[
                F.count(F.when(F.col("_best") <= k, 1)).alias(_name(CATALOG_COVERAGE, k))
                for k in cut_offs
            ]
        )
    )
    rows = per_variant.join(coverage, C.VARIANT).collect()

    figures: list[Figure] = []
    for row in sorted(rows, key=lambda r: r[C.VARIANT]):
        for metric in BEYOND_ACCURACY_METRICS:
            for k in cut_offs:
                value = float(row[_name(metric, k)] or 0.0)
                if metric == CATALOG_COVERAGE:
                    value /= catalogue_size
                figures.append((row[C.VARIANT], metric, k, value))
    return figures


def metrics_plot(figures: Sequence[Figure], path: Path, title: str) -> Path:
    """Write to ``path`` a PNG with one panel per metric that has figures at several k
    (precision, recall, ndcg, map, hit_rate, ...), a line per variant against k; return
    ``path``. Figures at k = 0 (``users_evaluated``) are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, dict[int, float]]] = {}
    for variant, metric, k, value in figures:
        if k != NO_CUT_OFF:
            series.setdefault(metric, {}).setdefault(variant, {})[k] = value
    metrics = [
        m for m, lines in series.items() if len({k for line in lines.values() for k in line}) > 1
    ]
    if not metrics:
        raise ValueError("no metric has figures at more than one k")

    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.5 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for variant, line in sorted(series[metric].items()):
            ks = sorted(line)
            ax.plot(ks, [line[k] for k in ks], marker="o", label=variant)
        ax.set_title(metric)
        ax.set_xlabel("k")
        ax.set_xticks(sorted({k for line in series[metric].values() for k in line}))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def day_labels(events: DataFrame) -> DataFrame:
    """(user_id, item_id, label): each user's best event type on each item in ``events``."""
    label = F.lit(C.LABEL_NONE)
    for event_type, value in C.LABEL_OF_EVENT.items():
        label = F.when(F.col(C.EVENT_TYPE) == event_type, F.lit(value)).otherwise(label)
    return events.groupBy(C.USER_ID, C.ITEM_ID).agg(F.max(label).cast("int").alias(C.LABEL))


def candidate_recall(
    candidates: DataFrame, holdout_events: DataFrame, ks: tuple[int, ...]
) -> list[Figure]:
    """Recall@k of each source and of the union (``union_rank``; k = 0: all candidates) of
    ``candidates`` on the items each user touched in ``holdout_events``, plus coverage."""
    relevant = relevant_items(holdout_events)
    columns = {s: C.source_rank(s) for s in C.CANDIDATE_SOURCES}
    columns[C.SOURCE_UNION] = C.UNION_RANK
    figures = recall_at_k(candidates, relevant, columns, (*ks, NO_CUT_OFF))
    sizes = candidates.groupBy(C.USER_ID).agg(F.count(F.lit(1)).alias("_size"))
    stats = (
        relevant.select(C.USER_ID)
        .distinct()
        .withColumn("_holdout", F.lit(1))
        .join(sizes, C.USER_ID, "full")
        .agg(
            F.count("_holdout").alias("_holdout"),
            F.count(F.when(F.col("_holdout").isNotNull(), F.col("_size"))).alias("_covered"),
            F.avg("_size").alias("_mean_size"),
        )
        .first()
    )
    assert stats is not None
    covered = stats["_covered"] / stats["_holdout"] if stats["_holdout"] else 0.0
    return [
        *figures,
        (C.SOURCE_UNION, HOLDOUT_USERS_COVERED, NO_CUT_OFF, float(covered)),
        (C.SOURCE_UNION, MEAN_LIST_SIZE, NO_CUT_OFF, float(stats["_mean_size"] or 0.0)),
    ]
