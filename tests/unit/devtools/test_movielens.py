"""The MovieLens-100k benchmark: the split, the unseen-item rule, the real data end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_lib import constants as C
from recsys_lib.devtools import movielens as M
from tests.conftest import SHARED_DATA

MOVIELENS = SHARED_DATA / "movielens-100k"


def synthetic_ratings() -> pd.DataFrame:
    """Item i has i ratings (1..12), by users spread over 20 ids; index not 0..n-1."""
    rows = [(u % 20, item, float(1 + u % 5)) for item in range(1, 13) for u in range(item)]
    frame = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, M.RATING])
    frame[M.TIMESTAMP] = np.arange(len(frame), dtype=np.int64)
    frame = frame.sample(frac=1.0, random_state=3)
    frame.index = frame.index * 10 + 7
    return frame


def require_movielens() -> None:
    if not (MOVIELENS / "u.data.gz").is_file():
        pytest.fail(f"MovieLens-100k is missing: {MOVIELENS} (../shared must sit beside the repo)")


def test_split_is_disjoint_and_complete() -> None:
    ratings = synthetic_ratings()
    train, test = M.stratified_split(ratings)
    assert set(train.index).isdisjoint(test.index)
    assert sorted([*train.index, *test.index]) == sorted(ratings.index)
    pd.testing.assert_frame_equal(pd.concat([train, test]).loc[ratings.index], ratings)


def test_split_keeps_about_three_quarters_of_each_item() -> None:
    ratings = synthetic_ratings()
    train, test = M.stratified_split(ratings, ratio=0.75)
    per_item = ratings.groupby(C.ITEM_ID).size()
    in_train = train.groupby(C.ITEM_ID).size().reindex(per_item.index, fill_value=0)
    # position / count <= 0.75 trains: floor(0.75 * n) of an item's n ratings
    assert (in_train == np.floor(0.75 * per_item)).all()
    assert set(test[C.ITEM_ID]) == set(per_item.index)
    # as in python_stratified_split, an item with two or more ratings is in both parts
    assert set(train[C.ITEM_ID]) == set(per_item[per_item >= 2].index)


def test_split_is_deterministic_for_a_seed_and_does_not_touch_its_input() -> None:
    ratings = synthetic_ratings()
    before = ratings.copy()
    first, _ = M.stratified_split(ratings, seed=7)
    again, _ = M.stratified_split(ratings, seed=7)
    other, _ = M.stratified_split(ratings, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert set(first.index) != set(other.index)
    pd.testing.assert_frame_equal(ratings, before)


def test_split_rejects_a_bad_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        M.stratified_split(synthetic_ratings(), ratio=1.0)


def test_split_draws_like_numpy_global_seed() -> None:
    """Same numbers as ``np.random.seed(seed); np.random.rand(n)`` (Recommenders' way)."""
    ratings = synthetic_ratings()
    state = np.random.get_state()
    np.random.seed(42)
    draw = np.random.rand(len(ratings))
    np.random.set_state(state)
    keys = pd.DataFrame({"item": ratings[C.ITEM_ID].to_numpy(), "r": draw})
    keys = keys.sort_values(["item", "r"])
    groups = keys.groupby("item")
    rank = (groups.cumcount() + 1) / groups["item"].transform("count")
    expected = ratings.iloc[np.sort(keys.index[rank <= 0.75].to_numpy())]
    train, _ = M.stratified_split(ratings, seed=42)
    pd.testing.assert_frame_equal(train, expected)


def test_seen_items_are_never_recommended(settings) -> None:
    ratings = synthetic_ratings()
    factors = M.fit_als(ratings, settings)
    recommended = M.top_unseen(factors, 5)
    seen = set(zip(ratings[C.USER_ID], ratings[C.ITEM_ID], strict=True))
    pairs = set(zip(recommended[C.USER_ID], recommended[C.ITEM_ID], strict=True))
    assert pairs and not pairs & seen
    per_user = recommended.groupby(C.USER_ID)[M.ALS_RANK].apply(list)
    assert all(ranks == list(range(1, len(ranks) + 1)) for ranks in per_user)
    assert (per_user.map(len) <= 5).all()


def test_a_user_who_saw_everything_gets_no_list(settings) -> None:
    ratings = synthetic_ratings()
    every_item = pd.DataFrame(
        {C.USER_ID: 99, C.ITEM_ID: range(1, 13), M.RATING: 5.0, M.TIMESTAMP: 0}
    )
    factors = M.fit_als(pd.concat([ratings, every_item]), settings)
    assert 99 not in set(M.top_unseen(factors, 3)[C.USER_ID])


def test_loaders_read_the_real_files() -> None:
    require_movielens()
    ratings = M.load_ratings(MOVIELENS)
    users = M.load_users(MOVIELENS)
    items = M.load_items(MOVIELENS)
    assert ratings.shape == (100_000, 4)
    assert list(ratings.columns) == [C.USER_ID, C.ITEM_ID, M.RATING, M.TIMESTAMP]
    assert len(users) == 943 and set(users[M.GENDER]) == {"F", "M"}
    assert len(items) == 1682 and len(M.genre_columns(items)) == 19
    assert items[M.RELEASE_YEAR].between(1900, 1999).sum() == 1681  # one film has no date


@pytest.mark.slow
def test_end_to_end_on_100_real_users(spark, settings) -> None:
    require_movielens()
    result = M.run_benchmark(spark, settings, MOVIELENS, k=10, seed=42, n_users=100)
    assert [r.algo for r in result.rows] == [M.ALGO_ALS, M.ALGO_RANKER]
    for row in result.rows:
        for value in (row.map, row.ndcg, row.precision, row.recall):
            assert 0.0 <= value <= 1.0
        assert row.ndcg > 0.0  # both find some of the held-out films
        assert row.users == 100
        assert row.train_seconds is not None and row.train_seconds > 0
    report = M.format_report(result)
    assert "published (their machine)" in report and "Recall@k" in report
