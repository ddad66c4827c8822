"""Stage ``recommend``: candidates -> champion ranker -> top k, audited, then published.

Every user with candidates on D gets up to ``recommend.top_k`` items: the candidates scored
by the registered ``recsys-ranker@champion`` (on the executors, with the model broadcast),
without the items the user bought in the ALS window, at most ``recommend.category_cap``
items of one leaf category, best score first (ties by item id). Before a ranker is promoted
the best order measured without a model ranks them (``model_version`` = ``source:<name>`` or
``union``).

The list is written to a staging location, audited (one row per user and rank, no nulls, no
item twice, no purchased item, ranks and scores in range, user coverage and rows against
a typical recent day within bounds) and only then published (``recsys_lib.warehouse.publish``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.evaluation import NDCG
from recsys_lib.models.ranker import score_frame
from recsys_lib.models.registry import Champion, load_champion
from recsys_lib.runtime.spark import concurrently
from recsys_lib.stages.inputs import features_of_day
from recsys_lib.transforms.top_n import top_n_per
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.publish import publish, write_staged
from recsys_lib.warehouse.serving import publish_serving
from recsys_lib.warehouse.storage import read_partition, read_table, read_window
from recsys_lib.warehouse.tables import (
    CANDIDATES,
    CLEAN_EVENTS,
    ITEM_FEATURES,
    MODEL_EVALUATION,
    USER_RECOMMENDATIONS,
)

log = logging.getLogger(__name__)

NO_RANKER = "union"
SOURCE_ORDER = "source:"  # model_version of lists in one candidate source's order
NO_CATEGORY = -1


def purchased_pairs(events: DataFrame) -> DataFrame:
    """(user_id, item_id) of every purchase in ``events``."""
    return events.filter(F.col(C.EVENT_TYPE) == C.PURCHASE).select(C.USER_ID, C.ITEM_ID).distinct()


def best_source(candidates: DataFrame) -> Column:
    """The source that ranked the candidate best (ties: source order)."""
    best = F.least(*[F.col(C.source_rank(s)) for s in C.CANDIDATE_SOURCES])
    chosen = F.lit(None).cast("string")
    for source in reversed(C.CANDIDATE_SOURCES):
        chosen = F.when(F.col(C.source_rank(source)) == best, F.lit(source)).otherwise(chosen)
    return chosen


def union_scores(candidates: DataFrame) -> DataFrame:
    """(user_id, item_id, score) in the union's order: 1 / union_rank."""
    return candidates.select(
        C.USER_ID, C.ITEM_ID, (F.lit(1.0) / F.col(C.UNION_RANK)).alias(C.SCORE)
    )


def source_scores(candidates: DataFrame, source: str) -> DataFrame:
    """(user_id, item_id, score) in one source's order: the items it found by its rank
    (scores in (2, 3]), then the user's other candidates in the union's order (in (0, 1))."""
    rank = F.col(C.source_rank(source))
    score = F.when(rank.isNotNull(), F.lit(2.0) + F.lit(1.0) / rank).otherwise(
        F.lit(1.0) / (F.col(C.UNION_RANK) + 1)
    )
    return candidates.select(C.USER_ID, C.ITEM_ID, score.alias(C.SCORE))


def best_measured_order(
    spark: SparkSession, settings: Settings, run_date: dt.date
) -> tuple[str, float, dt.date] | None:
    """The order without a model (a candidate source's, or the union's) with the best
    holdout NDCG@``ranker.gate_k`` in the latest ranker evaluation up to ``run_date``: its
    name, NDCG and holdout day (None before any evaluation)."""
    orders = (*C.CANDIDATE_SOURCES, C.SOURCE_UNION)
    measured = (
        read_table(spark, settings, MODEL_EVALUATION)
        .filter(
            (F.col(C.MODEL) == C.MODEL_RANKER)
            & (F.col(C.DT) <= F.lit(run_date))
            & (F.col(C.METRIC) == NDCG)
            & (F.col(C.K) == settings.ranker.gate_k)
            & F.col(C.VARIANT).isin(*orders)
        )
        .select(C.DT, C.VARIANT, C.VALUE)
        .collect()
    )
    if not measured:
        return None
    latest = max(r[C.DT] for r in measured)
    ranked = sorted(
        (r for r in measured if r[C.DT] == latest),
        key=lambda r: (-r[C.VALUE], orders.index(r[C.VARIANT])),
    )
    return ranked[0][C.VARIANT], float(ranked[0][C.VALUE]), latest


def top_k(
    scored: DataFrame,
    candidates: DataFrame,
    categories: DataFrame,
    purchased: DataFrame,
    k: int,
    category_cap: int,
) -> DataFrame:
    """(user_id, rank, item_id, score, source): the best ``k`` scored candidates per user
    that the user did not buy, at most ``category_cap`` per leaf category (0: no cap)."""
    by_score = [F.desc(C.SCORE), F.asc(C.ITEM_ID)]
    rows = (
        scored.join(purchased, [C.USER_ID, C.ITEM_ID], "left_anti")
        .join(
            candidates.select(C.USER_ID, C.ITEM_ID, best_source(candidates).alias(C.SOURCE)),
            [C.USER_ID, C.ITEM_ID],
        )
        .join(categories, C.ITEM_ID, "left")
        .withColumn(C.CATEGORY_ID, F.coalesce(C.CATEGORY_ID, F.lit(NO_CATEGORY)))
    )
    if category_cap > 0:
        rows = top_n_per(rows, [C.USER_ID, C.CATEGORY_ID], by_score, category_cap, "_n")
    return top_n_per(rows, [C.USER_ID], by_score, k).select(
        C.USER_ID, C.RANK, C.ITEM_ID, C.SCORE, C.SOURCE
    )


def recommendations(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    champion: Champion | None,
    order: str = C.SOURCE_UNION,
) -> DataFrame:
    """The ``recs.user_recommendations`` partition of ``run_date`` (not yet audited): ranked
    by ``champion``, or without one in ``order`` (a candidate source's, or the union's)."""
    candidates = read_partition(spark, settings, CANDIDATES, run_date)
    if champion is None and order == C.SOURCE_UNION:
        scored, version = union_scores(candidates), NO_RANKER
    elif champion is None:
        scored, version = source_scores(candidates, order), f"{SOURCE_ORDER}{order}"
    else:
        features = features_of_day(spark, settings, run_date)
        scored, version = score_frame(features, champion.ranker), champion.version
    categories = read_partition(spark, settings, ITEM_FEATURES, run_date).select(
        C.ITEM_ID, C.CATEGORY_ID
    )
    rec = settings.recommend
    return (
        top_k(
            scored,
            candidates,
            categories,
            purchases(spark, settings, run_date),
            rec.top_k,
            rec.category_cap,
        )
        .withColumn(C.DT, F.lit(run_date))
        .withColumn(C.MODEL_VERSION, F.lit(version))
    )


def purchases(spark: SparkSession, settings: Settings, run_date: dt.date) -> DataFrame:
    """Items each user bought in the ALS window ending ``run_date`` (never recommended)."""
    days = window(run_date, settings.als.window_days)
    return purchased_pairs(read_window(spark, settings, CLEAN_EVENTS, days))


def audit(
    staged: DataFrame,
    purchased: DataFrame,
    candidate_users: int,
    recent_rows: Sequence[float],
    settings: Settings,
) -> list[quality.Check]:
    """Checks of a staged recommendation set (see the module docstring); ``recent_rows``:
    the rows of the last published days (:func:`quality.recent_rows`)."""
    rec = settings.recommend
    table = USER_RECOMMENDATIONS.name
    limits = dataclasses.replace(
        settings.quality, min_row_ratio=rec.min_row_ratio, max_row_ratio=rec.max_row_ratio
    )
    stats_query = staged.agg(
        F.countDistinct(C.USER_ID).alias("users"),
        F.countDistinct(C.USER_ID, C.ITEM_ID).alias("pairs"),
        F.count(F.when(F.col(C.USER_ID).isNotNull() & F.col(C.ITEM_ID).isNotNull(), 1)).alias(
            "keyed"
        ),
        F.count(F.when((F.col(C.RANK) < 1) | (F.col(C.RANK) > rec.top_k), 1)).alias("bad_ranks"),
        F.count(
            F.when(F.isnan(C.SCORE) | F.col(C.SCORE).isin(float("inf"), float("-inf")), 1)
        ).alias("bad_scores"),
    )
    # The contract's checks, the list statistics and the purchased-item count: three
    # independent passes over the staged rows, side by side.
    checks, stats, bought = concurrently(
        [
            lambda: quality.contract_checks(staged, USER_RECOMMENDATIONS, recent_rows, limits),
            stats_query.first,
            lambda: staged.join(purchased, [C.USER_ID, C.ITEM_ID]).count(),
        ]
    )
    assert stats is not None
    # Extra copies of a (user, item) pair; a null id fails the contract's own null check.
    duplicate_items = stats["keyed"] - stats["pairs"]
    coverage = stats["users"] / candidate_users if candidate_users else 0.0
    return [
        *checks,
        quality.measure(table, "users", stats["users"]),
        quality.equals(table, "duplicate_user_item", duplicate_items, 0),
        quality.equals(table, "purchased_items", bought, 0),
        quality.equals(table, "rank_out_of_range", stats["bad_ranks"], 0),
        quality.equals(table, "non_finite_scores", stats["bad_scores"], 0),
        quality.at_least(table, "user_coverage", coverage, rec.min_user_coverage),
    ]


def recommend_day(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``recommend``: rank, stage, audit, publish ``recs.user_recommendations``."""
    candidates = read_partition(spark, settings, CANDIDATES, run_date)
    # The champion of that night (a rerun of a past night ranks as that night did) comes from
    # MLflow while Spark counts today's candidate users and reads the recent days' rows.
    candidate_users, recent, champion = concurrently(
        [
            lambda: candidates.select(C.USER_ID).distinct().count(),
            lambda: quality.recent_rows(spark, settings, [USER_RECOMMENDATIONS.name], run_date)[
                USER_RECOMMENDATIONS.name
            ],
            lambda: load_champion(settings, run_date),
        ]
    )
    if candidate_users == 0:
        raise RuntimeError(f"features.candidates has no rows for {run_date}: run `candidates`")
    order = C.SOURCE_UNION
    if champion is None:
        measured = best_measured_order(spark, settings, run_date)
        if measured is None:
            log.warning(
                "no %s@champion and no measured order yet: ranking by the candidates' union",
                settings.ranker.registered_model,
            )
        else:
            order, ndcg, holdout = measured
            log.warning(
                "no %s@champion: ranking by %s's order, the best measured without a model "
                "(holdout NDCG@%d %.4f on %s)",
                settings.ranker.registered_model,
                order,
                settings.ranker.gate_k,
                ndcg,
                holdout,
            )
    staged = write_staged(
        spark,
        settings,
        USER_RECOMMENDATIONS,
        recommendations(spark, settings, run_date, champion, order),
        run_date,
    )
    checks = audit(staged, purchases(spark, settings, run_date), candidate_users, recent, settings)
    publish(spark, settings, USER_RECOMMENDATIONS, staged, checks, run_date)
    served = {}
    if settings.serving.enabled:
        served = {"served_rows": float(publish_serving(staged, settings.serving, run_date))}
    return {
        **served,
        "ranked_by_champion": 0.0 if champion is None else 1.0,
        **{f"{c.name}": c.value for c in checks if c.threshold is None and "." not in c.name},
    }
