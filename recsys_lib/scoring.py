"""Distributed top-k scoring of users against broadcast item factors.

Kept apart from the stage modules on purpose: Spark's Python workers import this module to
run :func:`score_als`, so it imports only numpy and pandas (not MLflow or implicit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from recsys_lib import constants as C

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from recsys_lib.models.als import AlsModel

PURCHASED = "purchased"
FACTORS = "factors"
SCORED_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_ID, T.StringType(), False),
        T.StructField(C.RANK, T.IntegerType(), False),
        T.StructField(C.ITEM_ID, T.LongType(), False),
        T.StructField(C.SCORE, T.DoubleType(), False),
    ]
)


def top_k_for_users(
    user_factors: np.ndarray,
    purchased: list[np.ndarray],
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``item_ids`` and scores of each user's best ``k`` items, best first.

    ``purchased[u]`` holds item ids to exclude for user ``u``. Ties are broken by item id.
    """
    scores = user_factors @ item_factors.T
    for row, excluded in enumerate(purchased):
        if len(excluded):
            positions = np.searchsorted(item_ids, excluded)
            inside = positions < len(item_ids)
            positions, excluded = positions[inside], excluded[inside]
            positions = positions[item_ids[positions] == excluded]
            scores[row, positions] = -np.inf
    k = min(k, scores.shape[1])
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best_indices = np.empty_like(candidates)
    best_scores = np.empty(candidates.shape, dtype=np.float64)
    for row in range(scores.shape[0]):
        cand = candidates[row]
        order = np.lexsort((item_ids[cand], -scores[row, cand]))
        best_indices[row] = cand[order]
        best_scores[row] = scores[row, cand[order]]
    return best_indices, best_scores


def score_als(users: DataFrame, model: AlsModel, k: int, batch_rows: int = 1024) -> DataFrame:
    """(user_id, rank, item_id, score) of ALS for ``users`` (user_id, factors, purchased)."""
    spark = users.sparkSession
    shared = spark.sparkContext.broadcast((model.item_ids, model.item_factors))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        item_ids, item_factors = shared.value
        for batch in batches:
            for start in range(0, len(batch), batch_rows):
                part = batch.iloc[start : start + batch_rows]
                factors = np.vstack(list(part[FACTORS])).astype(np.float32)
                purchased = [np.sort(np.asarray(p, dtype=np.int64)) for p in part[PURCHASED]]
                best, scores = top_k_for_users(factors, purchased, item_ids, item_factors, k)
                valid = np.isfinite(scores)
                n = best.shape[1]
                yield pd.DataFrame(
                    {
                        C.USER_ID: np.repeat(part[C.USER_ID].to_numpy(), n)[valid.ravel()],
                        C.RANK: np.tile(np.arange(1, n + 1, dtype=np.int32), len(part))[
                            valid.ravel()
                        ],
                        C.ITEM_ID: item_ids[best].ravel()[valid.ravel()],
                        C.SCORE: scores.ravel()[valid.ravel()],
                    }
                )

    return users.mapInPandas(score, SCORED_SCHEMA)
