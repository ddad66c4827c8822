"""The MovieLens-100k benchmark: the split, the unseen-item rule, the real data end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.devtools import movielens as M
from recsys_lib.sources import union
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


def test_ratings_map_to_event_types_on_either_scale() -> None:
    ratings = pd.Series([1.0, 3.0, 3.5, 4.0, 4.5, 5.0, 0.5])
    assert list(M.event_types(ratings)) == [
        C.VIEW, C.VIEW, C.CART, C.CART, C.PURCHASE, C.PURCHASE, C.VIEW
    ]  # fmt: skip


def _write(path, text: str, encoding: str = "utf-8") -> None:
    path.write_bytes(text.encode(encoding))


def test_the_three_release_formats_read_alike(tmp_path) -> None:
    """100k (tab, genre flags), 1M (``::``) and latest (CSV, an extra trailing column)."""
    k100 = tmp_path / "ml-100k"
    k100.mkdir()
    _write(k100 / "u.data", "1\t10\t5\t881250949\n2\t20\t3\t891717742\n")
    _write(k100 / "u.genre", "unknown|0\nAction|1\nComedy|2\n\n")
    _write(
        k100 / "u.item",
        "10|Caf\xe9 (1995)|01-Jan-1995||http://x|0|0|1\n20|B (1996)|01-Jan-1996||u|0|1|1\n",
        "latin-1",
    )
    _write(k100 / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    m1 = tmp_path / "ml-1m"
    m1.mkdir()
    _write(m1 / "ratings.dat", "1::10::5::978300760\n2::20::3::978302109\n")
    _write(
        m1 / "movies.dat", "10::Caf\xe9 (1995)::Comedy\n20::B (1996)::Action|Comedy\n", "latin-1"
    )
    _write(m1 / "users.dat", "1::M::25::15::55117\n2::F::56::16::70072\n")
    latest = tmp_path / "ml-latest-small"
    latest.mkdir()
    _write(
        latest / "ratings.csv",
        "userId,movieId,rating,timestamp,extra\n1,10,5.0,881250949,x\n2,20,3.0,891717742,y\n",
    )
    _write(
        latest / "movies.csv",
        'movieId,title,genres\n10,"Café, The (1995)",Comedy\n20,B (1996),(no genres listed)\n',
    )
    releases = [M.load_release(folder) for folder in (k100, m1, latest)]
    for release in releases:
        assert list(release.ratings.columns) == [C.USER_ID, C.ITEM_ID, M.RATING, M.TIMESTAMP]
        assert release.ratings[C.ITEM_ID].tolist() == [10, 20]
        assert release.ratings[M.RATING].tolist() == [5.0, 3.0]
        assert release.items[C.ITEM_ID].tolist() == [10, 20]
        assert release.items[M.GENRES].iloc[0] == ["Comedy"]
        assert release.items[M.TITLE].iloc[0].startswith("Caf\xe9")
    assert releases[0].items[M.GENRES].iloc[1] == ["Action", "Comedy"]
    assert releases[1].items[M.GENRES].iloc[1] == ["Action", "Comedy"]
    assert releases[2].items[M.GENRES].iloc[1] == []
    assert releases[0].users is not None and releases[1].users is not None
    assert releases[1].users["gender"].tolist() == ["M", "F"]
    assert releases[2].users is None  # latest has no user file: not required
    with pytest.raises(FileNotFoundError, match=r"u.data \(100k\), ratings.dat \(1M\)"):
        M.load_ratings(tmp_path)


@pytest.mark.spark
def test_the_history_fills_the_nightly_window_in_its_own_order(spark) -> None:
    ratings = synthetic_ratings()
    events = M.as_events(spark, ratings, M.RUN_DATE).toPandas()
    days = sorted(set(events[C.DT]))
    assert len(days) == M.HISTORY_DAYS and days[-1] == M.RUN_DATE
    order = ratings.sort_values(M.TIMESTAMP, kind="mergesort")
    by_time = events.sort_values(C.EVENT_TS, kind="mergesort")
    assert by_time[C.ITEM_ID].tolist() == order[C.ITEM_ID].tolist()
    assert (pd.to_datetime(events[C.EVENT_TS]).dt.date == events[C.DT]).all()


def test_loaders_read_the_real_files() -> None:
    require_movielens()
    release = M.load_release(MOVIELENS)
    assert release.ratings.shape == (100_000, 4)
    assert len(release.users) == 943 and set(release.users["gender"]) == {"F", "M"}
    assert len(release.items) == 1682
    assert len(M.category_codes(release.items)) == 18  # 19 genres, "unknown" is none


@pytest.mark.slow
def test_the_benchmark_measures_the_nightly_code(spark, settings, monkeypatch) -> None:
    """On 40 real users: every row is in range, rated films are never recommended, and a
    change to one source's scoring in the library changes that source's row."""
    require_movielens()
    quick = dataclasses.replace(
        settings, ranker=dataclasses.replace(settings.ranker, ablations=False)
    )
    result = M.run_benchmark(spark, quick, MOVIELENS, k=10, seed=42, n_users=40)
    rows = {r.algo: r for r in result.rows}
    assert M.ALGO_RANKER in rows and M.ALGO_UNION in rows and M.ALGO_POPULARITY in rows
    assert M.source_algo(C.SOURCE_ALS) in rows and M.source_algo(C.SOURCE_EASE) in rows
    for row in result.rows:
        assert 0.0 <= row.ndcg <= 1.0 and 0.0 <= row.precision <= 1.0
        assert row.users == 40
    assert rows[M.ALGO_RANKER].ndcg > 0.0 and rows[M.source_algo(C.SOURCE_EASE)].ndcg > 0.0
    report = M.format_report(result)
    assert "published, MovieLens-100k" not in report  # a subsample is not their protocol
    train, _ = M.stratified_split(M.subsample_users(M.load_ratings(MOVIELENS), 40, 42))
    rated = set(zip(train[C.USER_ID].astype(str), train[C.ITEM_ID], strict=True))
    for recs in result.recommendations:
        listed = set(zip(recs.lists[C.USER_ID].astype(str), recs.lists[C.ITEM_ID], strict=True))
        assert listed and not listed & rated, recs.algo

    original = union.ease_source

    def reversed_ease(*args, **kwargs):  # the worst of EASE's list first
        ranked = original(*args, **kwargs)
        return ranked.withColumn(C.SCORE, -F.col(C.SCORE)).withColumn(C.RANK, 1000 - F.col(C.RANK))

    monkeypatch.setattr(union, "ease_source", reversed_ease)
    changed = {r.algo: r for r in M.run_benchmark(spark, quick, MOVIELENS, n_users=40).rows}
    assert changed[M.source_algo(C.SOURCE_EASE)] != rows[M.source_algo(C.SOURCE_EASE)]
    assert changed[M.source_algo(C.SOURCE_ALS)].ndcg == rows[M.source_algo(C.SOURCE_ALS)].ndcg
