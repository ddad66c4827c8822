"""EASE: a linear item-item model in closed form (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", 2019).

With ``X`` the binary user x item matrix of a window (an event of any type on the item),
``P = (XᵀX + λI)⁻¹`` and ``B = I − P / diag(P)`` (column ``j`` divided by ``P[j, j]``, the
diagonal then zero), a user's score of item ``j`` is ``x_u · B[:, j]``: how strongly the
items of the user's history predict ``j``, learned jointly for all items at once.

Memory, stated and bounded (rule 9: an explicit single-node step). The fit holds the Gram
matrix (sparse, then dense) and its inverse in float64 and ``B`` in float32 on the driver,
at most ``28 n²`` bytes for ``n`` items (:data:`GRAM_BYTES`), plus the collected pairs;
scoring broadcasts ``B`` (``4 n²`` bytes) to every executor and scores ``batch_rows`` users
at a time (their items x n each). So the model is exact for catalogues of up to
``ease.max_items`` items with behaviour in the window; above that it is fitted on the
``max_items`` items with the most users (the tail is served by the other sources), and the
share of the window's user-item pairs it covers is on record. When even that would exceed
``ease.max_memory_mb``, the stage refuses with the settings to change, like the ALS bound.

The stage that fits and uses it is :mod:`recsys_lib.stages.candidates`; the scoring kernel
is :func:`recsys_lib.models.scoring.score_ease`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import EaseSettings

log = logging.getLogger(__name__)

USERS = "_users"
PAIR_BYTES = 170  # a collected (user id, item id) pair as Python objects, then CSR
# Bytes per item pair at the fit's peak: the Gram matrix sparse (up to 12) and dense (8) at
# once, with scipy's product's scratch; measured 24.6 on a dense Gram of 2,000 items.
GRAM_BYTES = 28
Figures = dict[str, float]


class EaseMemoryError(MemoryError):
    """The EASE fit would not fit the single-node memory bound."""


@dataclass(frozen=True)
class EaseModel:
    """Item weights ``B`` (float32, zero diagonal): row and column ``k`` are ``item_ids[k]``,
    sorted; ``score(u, j) = sum over items i of u of B[i, j]``."""

    item_ids: np.ndarray
    weights: np.ndarray

    @property
    def version(self) -> str:
        """Content hash: the same window and settings give the same version."""
        digest = hashlib.sha256()
        for array in (self.item_ids, self.weights):
            digest.update(np.ascontiguousarray(array).tobytes())
        return "ease-" + digest.hexdigest()[:16]


def memory_mb(n_items: int, nnz: int) -> float:
    """Peak driver memory of :func:`fit` (:data:`GRAM_BYTES` per item pair) with its pairs
    (~:data:`PAIR_BYTES` each), in MiB: an upper estimate."""
    return (GRAM_BYTES * n_items**2 + PAIR_BYTES * nnz) / 2**20


def fit(matrix: sp.csr_matrix, item_ids: np.ndarray, regularization: float) -> EaseModel:
    """EASE's ``B`` of a user x item matrix whose columns are ``item_ids`` (sorted).

    The matrix is made binary (a stored entry counts 1). ``regularization`` is ``λ`` > 0,
    added to the Gram matrix's diagonal; the inverse comes from a Cholesky factorisation
    (``XᵀX + λI`` is symmetric positive definite), so the result is deterministic.
    """
    if regularization <= 0:
        raise ValueError(f"ease.regularization must be > 0, got {regularization}")
    if len(item_ids) == 0:
        return EaseModel(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
    # The peak is the Gram matrix while sparse and dense (GRAM_BYTES); then the factor and
    # the inverse (8 + 8 n²), each computed in place; then B as float32 (+ 4 n²).
    binary = matrix.astype(bool).astype(np.float64)
    sparse_gram = binary.T @ binary
    gram = sparse_gram.toarray(order="F")
    del sparse_gram
    gram[np.diag_indices_from(gram)] += regularization
    factor = scipy.linalg.cho_factor(gram, overwrite_a=True, check_finite=False)
    identity = np.asfortranarray(np.eye(len(item_ids)))
    weights = scipy.linalg.cho_solve(factor, identity, overwrite_b=True, check_finite=False)
    del factor, gram
    weights /= -np.diag(weights)[None, :]
    np.fill_diagonal(weights, 0.0)
    return EaseModel(np.asarray(item_ids, dtype=np.int64), weights.astype(np.float32))


def presence(events: DataFrame) -> DataFrame:
    """(user_id, item_id): the distinct pairs with an event, whatever its type."""
    return events.select(C.USER_ID, C.ITEM_ID).distinct()


def most_active_items(pairs: DataFrame, max_items: int) -> DataFrame:
    """(item_id): the ``max_items`` items with the most users, ties to the smaller id."""
    by_users = pairs.groupBy(C.ITEM_ID).agg(F.count(F.lit(1)).alias(USERS))
    order = Window.orderBy(F.desc(USERS), F.asc(C.ITEM_ID))
    return (
        by_users.withColumn("_n", F.row_number().over(order))
        .filter(F.col("_n") <= max_items)
        .select(C.ITEM_ID)
    )


def collect_matrix(
    pairs: DataFrame, settings: EaseSettings
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, Figures]:
    """The binary user x item matrix of the (user_id, item_id) ``pairs`` of a window, its
    user and item ids (sorted) and its figures, within the memory bound.

    Two Spark jobs before anything is collected: the window's shape (items, pairs), then,
    above ``max_items`` items, the pairs of the most active ones. Raises
    :class:`EaseMemoryError` when the fit of those would exceed ``max_memory_mb``.
    """
    shape = pairs.agg(
        F.countDistinct(C.ITEM_ID).alias("items"), F.count(F.lit(1)).alias("pairs")
    ).collect()[0]
    n_items, n_pairs = int(shape["items"] or 0), int(shape["pairs"] or 0)
    kept, nnz = pairs, n_pairs
    if n_items > settings.max_items:
        kept = pairs.join(F.broadcast(most_active_items(pairs, settings.max_items)), C.ITEM_ID)
        nnz = kept.count()
    n_model = min(n_items, settings.max_items)
    bound = memory_mb(n_model, nnz)
    if bound > settings.max_memory_mb:
        raise EaseMemoryError(
            f"EASE over {n_model} items and {nnz} user-item pairs needs about {bound:.0f} MiB "
            f"on the driver, above ease.max_memory_mb={settings.max_memory_mb}. Lower "
            "ease.max_items (the model then covers the most active items; the other sources "
            "serve the rest) or raise ease.max_memory_mb if the driver has the memory."
        )
    if n_items > settings.max_items:
        log.info("EASE: %d items in the window, fitted on the %d most active", n_items, n_model)
    local = kept.toPandas()
    item_ids = np.sort(local[C.ITEM_ID].unique()).astype(np.int64)
    # Sorted codes straight from the pairs' strings (no fixed-width copy of every id).
    user_rows, users = pd.factorize(local[C.USER_ID], sort=True)
    user_ids = np.asarray(users, dtype=str)
    matrix = sp.csr_matrix(
        (
            np.ones(len(local), dtype=np.float64),
            (user_rows, np.searchsorted(item_ids, local[C.ITEM_ID].to_numpy(dtype=np.int64))),
        ),
        shape=(len(user_ids), len(item_ids)),
    )
    figures = {
        "ease.items_in_window": float(n_items),
        "ease.items": float(len(item_ids)),
        "ease.pairs_covered_share": nnz / n_pairs if n_pairs else 0.0,
        "ease.memory_bound_mb": bound,
    }
    return matrix, user_ids, item_ids, figures


def train(pairs: DataFrame, settings: EaseSettings) -> tuple[EaseModel, Figures]:
    """Fit EASE on the (user_id, item_id) ``pairs`` of a window (:func:`collect_matrix`)."""
    matrix, _, item_ids, figures = collect_matrix(pairs, settings)
    return fit(matrix, item_ids, settings.regularization), figures
