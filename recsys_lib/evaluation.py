"""Offline evaluation: recall of candidate lists on a next-day holdout, and the rows of
``ops.model_evaluation``.

Recall@k of one user = |relevant items among the first k of the list| / |relevant items|,
where the relevant items are the distinct items the user viewed, carted or bought on the
holdout day. The reported figure is its mean over the evaluated users: those who had a list
and at least one event on the holdout day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.tables import MODEL_EVALUATION

# One figure of ops.model_evaluation: variant, metric, k, value.
Figure = tuple[str, str, int, float]

RECALL = "recall"
USERS_EVALUATED = "users_evaluated"
HOLDOUT_USERS_COVERED = "holdout_users_covered"
MEAN_LIST_SIZE = "mean_list_size"
NO_CUT_OFF = 0  # k of a figure over the whole list


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
