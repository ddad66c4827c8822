"""EASE: the closed form, its scoring kernel, the item bound and the refusal."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lib import constants as C
from recsys_lib.config import EaseSettings
from recsys_lib.models.ease import EaseMemoryError, fit, presence, train
from recsys_lib.models.scoring import top_k_ease

# Four users over items 10, 20, 30, 40: 10 and 20 go together, 30 is everywhere.
HISTORIES = {"a": [10, 20, 30], "b": [10, 20], "c": [20, 30, 40], "d": [30, 40]}


def _matrix() -> tuple[sp.csr_matrix, np.ndarray]:
    items = np.array([10, 20, 30, 40])
    rows, cols = zip(
        *[(u, int(np.searchsorted(items, i))) for u, h in enumerate(HISTORIES.values()) for i in h],
        strict=True,
    )
    return sp.csr_matrix((np.full(len(rows), 3.0), (rows, cols)), shape=(4, 4)), items


def test_fit_is_steck_closed_form_on_the_binary_matrix() -> None:
    matrix, items = _matrix()
    model = fit(matrix, items, regularization=2.0)
    x = (matrix.toarray() > 0).astype(float)  # the weights 3.0 count as presence
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(4))
    expected = np.eye(4) - p / np.diag(p)
    assert model.weights.dtype == np.float32
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    assert np.all(np.diag(model.weights) == 0)
    assert model.version == fit(matrix, items, 2.0).version != fit(matrix, items, 3.0).version


def test_fit_refuses_a_non_positive_regularization() -> None:
    matrix, items = _matrix()
    with pytest.raises(ValueError, match="regularization"):
        fit(matrix, items, 0.0)


def test_scores_leave_out_the_users_items_and_non_positive_scores() -> None:
    matrix, items = _matrix()
    model = fit(matrix, items, regularization=0.5)
    histories = [np.array([10]), np.array([10, 20, 30, 40]), np.array([99]), np.array([40, 99])]
    best, scores = top_k_ease(histories, model.item_ids, model.weights, k=3)
    full = np.zeros((1, 4), dtype=np.float32)
    full[0, 0] = 1.0
    expected = (full @ model.weights)[0]
    proposed = [int(i) for i in model.item_ids[best[0][np.isfinite(scores[0])]]]
    # user 1 (item 10): 20 is the strongest, never 10 itself, only positive scores
    assert proposed[0] == 20 and 10 not in proposed
    assert all(expected[np.searchsorted(items, i)] > 0 for i in proposed)
    assert np.all(np.isneginf(scores[1]))  # has every item: nothing to propose
    assert np.all(np.isneginf(scores[2]))  # item 99 is unknown to the model: no history
    assert 40 not in [int(model.item_ids[j]) for j in best[3][np.isfinite(scores[3])]]


@pytest.mark.spark
def test_train_keeps_the_most_active_items_and_refuses_above_the_bound(spark) -> None:
    events = spark.createDataFrame(
        [(u, i, C.VIEW) for u, h in HISTORIES.items() for i in h] + [("a", 10, C.PURCHASE)],
        f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.EVENT_TYPE} string",
    )
    pairs = presence(events)
    settings = EaseSettings(regularization=1.0, max_items=2, max_memory_mb=64)
    model, figures = train(pairs, settings)
    # 20 and 30 have three users each; 10 and 40 two: the model covers 20 and 30
    assert model.item_ids.tolist() == [20, 30]
    assert figures["ease.items_in_window"] == 4.0
    assert figures["ease.pairs_covered_share"] == pytest.approx(6 / 10)
    exact, _ = train(pairs, dataclasses.replace(settings, max_items=10))
    assert exact.item_ids.tolist() == [10, 20, 30, 40]
    with pytest.raises(EaseMemoryError, match="ease.max_memory_mb=0"):
        train(pairs, dataclasses.replace(settings, max_memory_mb=0))
