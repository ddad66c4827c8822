import numpy as np
import pytest

from recsys_lib import constants as C
from recsys_lib.recommend import score_popular
from recsys_lib.scoring import PURCHASED, top_k_for_users


def test_top_k_excludes_purchased_and_breaks_ties_by_item_id() -> None:
    item_ids = np.array([10, 20, 30, 40], dtype=np.int64)
    item_factors = np.array([[1.0], [3.0], [3.0], [2.0]], dtype=np.float32)
    users = np.array([[1.0], [1.0]], dtype=np.float32)
    purchased = [np.array([], dtype=np.int64), np.array([20, 99], dtype=np.int64)]
    best, scores = top_k_for_users(users, purchased, item_ids, item_factors, k=3)
    assert item_ids[best[0]].tolist() == [20, 30, 40]
    assert item_ids[best[1]].tolist() == [30, 40, 10]
    assert scores[1].tolist() == [3.0, 2.0, 1.0]


def test_top_k_with_fewer_items_than_k_marks_excluded_as_minus_inf() -> None:
    item_ids = np.array([1, 2], dtype=np.int64)
    best, scores = top_k_for_users(
        np.ones((1, 2), np.float32), [np.array([1])], item_ids, np.eye(2, dtype=np.float32), k=5
    )
    assert item_ids[best[0]].tolist() == [2, 1]
    assert scores[0][0] == 1.0 and scores[0][1] == -np.inf


def test_popular_fallback_skips_the_users_purchases(spark) -> None:
    users = spark.createDataFrame(
        [("u1", [2]), ("u2", [])], f"{C.USER_ID} string, {PURCHASED} array<bigint>"
    )
    popular = spark.createDataFrame(
        [(1, 0.5), (2, 0.3), (3, 0.2)], f"{C.ITEM_ID} bigint, {C.SCORE} double"
    )
    rows = sorted(
        (r[C.USER_ID], r[C.RANK], r[C.ITEM_ID]) for r in score_popular(users, popular, 2).collect()
    )
    assert rows == [("u1", 1, 1), ("u1", 2, 3), ("u2", 1, 1), ("u2", 2, 2)]


@pytest.mark.parametrize("k", [1, 3])
def test_top_k_shape(k: int) -> None:
    rng = np.random.default_rng(0)
    best, scores = top_k_for_users(
        rng.random((4, 3), dtype=np.float32),
        [np.array([], dtype=np.int64)] * 4,
        np.arange(10, dtype=np.int64),
        rng.random((10, 3), dtype=np.float32),
        k,
    )
    assert best.shape == scores.shape == (4, k)
    assert (np.diff(scores, axis=1) <= 0).all()
