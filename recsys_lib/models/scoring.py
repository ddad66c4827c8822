"""Top-k kernels over broadcast models: ALS users to items and items to items, EASE.

Kept apart from the stage modules on purpose: Spark's Python workers import this module to
run :func:`score_als`, :func:`score_ease` and :func:`top_k_similar`
(``recsys_lib.sources.similar``), so it imports only numpy, scipy.sparse, pandas and
pyspark types (not MLflow or implicit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import types as T

from recsys_lib import constants as C

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from recsys_lib.models.als import AlsModel
    from recsys_lib.models.ease import EaseModel

PURCHASED = "purchased"
HISTORY = "history"  # score_ease's input: the user's items (array<long>)
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

    ``purchased[u]`` holds item ids to exclude for user ``u`` (score -inf). Ties are broken
    by item id, also at the cut (:func:`top_k_rows`).
    """
    scores = user_factors @ item_factors.T
    for row, excluded in enumerate(purchased):
        if len(excluded):
            positions = np.searchsorted(item_ids, excluded)
            inside = positions < len(item_ids)
            positions, excluded = positions[inside], excluded[inside]
            positions = positions[item_ids[positions] == excluded]
            scores[row, positions] = -np.inf
    return top_k_rows(scores, item_ids, k)


def top_k_rows(scores: np.ndarray, item_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of each row's ``min(k, columns)`` highest ``scores``,
    best first, ties by the smaller ``item_ids[column]`` (exact at the cut too); -inf last.

    Selecting per row over every column is what costs at scale (users x items). Here the
    columns are cut into at least ``4k`` blocks; the k-th highest block maximum is a lower
    bound of the k-th highest score (the k best maxima are k distinct scores), so only the
    scores at or above it, typically a few times k a row, are sorted.
    """
    n_rows, n = scores.shape
    k = min(k, n)
    if k <= 0 or n_rows == 0:
        return np.empty((n_rows, 0), dtype=np.int64), np.empty((n_rows, 0), dtype=np.float64)
    width = max(1, n // (4 * k))
    full = n // width
    maxima = scores[:, : full * width].reshape(n_rows, full, width).max(axis=2)
    if full * width < n:
        maxima = np.hstack([maxima, scores[:, full * width :].max(axis=1, keepdims=True)])
    blocks = maxima.shape[1]
    bound = np.partition(maxima, blocks - k, axis=1)[:, blocks - k]
    rows, columns = np.nonzero(scores >= bound[:, None])
    values = scores[rows, columns]
    order = np.lexsort((item_ids[columns], -values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    take = np.searchsorted(rows, np.arange(n_rows))[:, None] + np.arange(k)
    return columns[take].astype(np.int64), values[take].astype(np.float64)


# Bytes a scored user row holds per item while its top k is taken: the float32 score, the
# mask of the scores at or above the cut and numpy's temporaries (an upper bound).
BYTES_PER_SCORE = 8


def block_rows(n_items: int, block_mb: int, setting: str) -> int:
    """Users scored at once so that a users x items block stays within ``block_mb`` MiB;
    refuses when even one user's row does not fit, naming the ``setting``."""
    row_bytes = max(1, n_items) * BYTES_PER_SCORE
    rows = block_mb * 2**20 // row_bytes
    if rows < 1:
        raise MemoryError(
            f"one user's scores over {n_items:,} items need {row_bytes / 2**20:.1f} MiB, "
            f"above {setting} = {block_mb} MiB: raise it (with the executors' memory) or "
            "cut the catalogue the model scores"
        )
    return int(rows)


def score_als(users: DataFrame, model: AlsModel, k: int, batch_rows: int = 1024) -> DataFrame:
    """(user_id, rank, item_id, score) of ALS for ``users`` (user_id, factors, purchased)."""
    spark = users.sparkSession
    shared = spark.sparkContext.broadcast((model.item_ids, model.item_factors))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        item_ids, item_factors = shared.value
        for batch in batches:
            for start in range(0, len(batch), batch_rows):
                part = batch.iloc[start : start + batch_rows]
                factors = np.vstack(list(part[C.FACTORS])).astype(np.float32)
                purchased = [np.sort(np.asarray(p, dtype=np.int64)) for p in part[PURCHASED]]
                best, scores = top_k_for_users(factors, purchased, item_ids, item_factors, k)
                yield ranked_frame(part[C.USER_ID].to_numpy(), best, scores, item_ids)

    return users.mapInPandas(score, SCORED_SCHEMA)


def top_k_ease(
    histories: list[np.ndarray], item_ids: np.ndarray, weights: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``item_ids`` and scores of each history's best ``k`` items by EASE.

    ``histories[u]`` holds user ``u``'s item ids; those outside the model are ignored. The
    user's own items and items without a positive score are not proposed (score -inf,
    last); ties go to the smaller item id (:func:`top_k_rows`).
    """
    rows, columns = [], []
    for row, items in enumerate(histories):
        positions = np.searchsorted(item_ids, items)
        inside = positions < len(item_ids)
        positions = positions[inside][item_ids[positions[inside]] == items[inside]]
        rows.append(np.full(len(positions), row, dtype=np.int64))
        columns.append(positions)
    row_index = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    column_index = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    # Sparse rows: a user's scores cost (their items x n) and are summed in item order, so
    # they do not depend on which other users share the batch.
    own = sp.csr_matrix(
        (np.ones(len(row_index), dtype=np.float32), (row_index, column_index)),
        shape=(len(histories), len(item_ids)),
    )
    own.sum_duplicates()
    own.data[:] = 1.0
    scores = np.asarray(own @ weights)
    scores[~(scores > 0)] = -np.inf
    scores[row_index, column_index] = -np.inf
    return top_k_rows(scores, item_ids, k)


def score_ease(histories: DataFrame, model: EaseModel, k: int, batch_rows: int) -> DataFrame:
    """(user_id, rank, item_id, score) of EASE for ``histories`` (user_id, history)."""
    spark = histories.sparkSession
    shared = spark.sparkContext.broadcast((model.item_ids, model.weights))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        item_ids, weights = shared.value
        for batch in batches:
            for start in range(0, len(batch), batch_rows):
                part = batch.iloc[start : start + batch_rows]
                items = [np.asarray(h, dtype=np.int64) for h in part[HISTORY]]
                best, scores = top_k_ease(items, item_ids, weights, k)
                yield ranked_frame(part[C.USER_ID].to_numpy(), best, scores, item_ids)

    return histories.mapInPandas(score, SCORED_SCHEMA)


def ranked_frame(
    users: np.ndarray, best: np.ndarray, scores: np.ndarray, item_ids: np.ndarray
) -> pd.DataFrame:
    """:data:`SCORED_SCHEMA` rows of a block of top-k positions, the -inf ones left out."""
    valid = np.isfinite(scores).ravel()
    n = best.shape[1]
    return pd.DataFrame(
        {
            C.USER_ID: np.repeat(users, n)[valid],
            C.RANK: np.tile(np.arange(1, n + 1, dtype=np.int32), len(users))[valid],
            C.ITEM_ID: item_ids[best].ravel()[valid],
            C.SCORE: scores.ravel()[valid],
        }
    )


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
    block: with :func:`top_k_rows`' mask of it, the memory of one call. An item is never its
    own neighbour; ties are broken by the smaller item id. A zero factor row has no
    direction, so its cosine is undefined: such an item gets no neighbours and is nobody's
    neighbour. An item with fewer than ``k`` candidates gets fewer rows.

    Returns flat arrays, best first within each item: (position of the item, rank from 1,
    position of the neighbour, cosine clipped to [-1, 1]).
    """
    rows = np.asarray(rows, dtype=np.int64)
    defined = np.asarray(normed.any(axis=1), dtype=bool)
    scores = normed[rows] @ normed.T
    if not defined.all():
        scores[:, ~defined] = -np.inf
    scores[np.arange(len(rows)), rows] = -np.inf
    best, values = top_k_rows(scores, item_ids, k)
    kept = np.isfinite(values) & defined[rows][:, None]  # -inf comes last in a row
    ranks = np.broadcast_to(np.arange(1, best.shape[1] + 1, dtype=np.int32), best.shape)
    cosine = np.clip(values[kept], -1.0, 1.0)
    return np.repeat(rows, kept.sum(axis=1)), ranks[kept], best[kept], cosine
