"""Top-k kernels over broadcast ALS item factors: users to items, items to items.

Kept apart from the stage modules on purpose: Spark's Python workers import this module to
run :func:`score_als` and :func:`top_k_similar` (``recsys_lib.similar``), so it imports only
numpy, pandas and pyspark types (not MLflow or implicit).
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


def normalise_rows(factors: np.ndarray) -> np.ndarray:
    """Rows of ``factors`` scaled to unit L2 norm, as float32; an all-zero row stays zero.

    The dot product of two normalised rows is their cosine similarity.
    """
    values = np.asarray(factors, dtype=np.float64)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return np.divide(values, norms, out=np.zeros_like(values), where=norms > 0).astype(np.float32)


def top_k_similar(
    rows: np.ndarray, normed: np.ndarray, item_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest items by cosine of each item at positions ``rows`` of ``normed``.

    ``normed`` holds L2-normalised item factors (:func:`normalise_rows`), row ``j`` being
    item ``item_ids[j]``. Scores are ``normed[rows] @ normed.T``, a ``len(rows) x n_items``
    block: the memory of one call. An item is never its own neighbour; ties are broken by
    the smaller item id. A zero factor row has no direction, so its cosine is undefined: such
    an item gets no neighbours and is nobody's neighbour. An item with fewer than ``k``
    candidates gets fewer rows.

    Returns flat arrays, best first within each item: (position of the item, rank from 1,
    position of the neighbour, cosine clipped to [-1, 1]).
    """
    rows = np.asarray(rows, dtype=np.int64)
    defined = np.asarray(normed.any(axis=1), dtype=bool)
    scores = normed[rows] @ normed.T
    if not defined.all():
        scores[:, ~defined] = -np.inf
    scores[np.arange(len(rows)), rows] = -np.inf
    queries, ranks, neighbours, values = [], [], [], []
    for r, row in enumerate(rows):
        if not defined[row]:
            continue
        chosen = _best_k(scores[r], item_ids, k)
        queries.append(np.full(len(chosen), row, dtype=np.int64))
        ranks.append(np.arange(1, len(chosen) + 1, dtype=np.int32))
        neighbours.append(chosen)
        values.append(scores[r, chosen])
    if not queries:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty(0, np.int32), empty, np.empty(0, np.float64)
    cosine = np.clip(np.concatenate(values).astype(np.float64), -1.0, 1.0)
    return np.concatenate(queries), np.concatenate(ranks), np.concatenate(neighbours), cosine


def _best_k(scores: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest finite ``scores``, best first, ties by smaller id.

    Exact at the cut as well: of the items tied with the k-th score, the smallest ids get in
    (``argpartition`` alone would pick among them arbitrarily). One row at a time, so the
    temporaries are one row long.
    """
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    kth = -np.inf
    if k < len(scores):
        negated = -scores
        negated.partition(k - 1)
        kth = -negated[k - 1]
    if np.isfinite(kth):
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        tied = tied[np.argsort(item_ids[tied], kind="stable")][: k - len(above)]
        chosen = np.concatenate([above, tied])
    else:  # k covers every finite score
        chosen = np.flatnonzero(np.isfinite(scores))
    return chosen[np.lexsort((item_ids[chosen], -scores[chosen]))]
