"""Candidate sources, their union and the next-day recall, on hand-made cases."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.evaluation import (
    HOLDOUT_USERS_COVERED,
    MEAN_LIST_SIZE,
    RECALL,
    USERS_EVALUATED,
    candidate_recall,
)
from recsys_lib.models.ease import fit
from recsys_lib.sources.union import (
    category_lists,
    combine,
    ease_source,
    neighbours_of_seeds,
    recent_activity,
    recent_views_source,
)
from tests.conftest import make_settings

RANKED = f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.SCORE} double, {C.RANK} int"
DAY = dt.date(2026, 3, 10)


def _ranked(spark, rows):
    return spark.createDataFrame(rows, RANKED)


def test_union_orders_by_best_rank_then_number_of_sources(spark) -> None:
    sources = {
        C.SOURCE_ALS: _ranked(spark, [("u", 10, 0.9, 1), ("u", 11, 0.8, 2)]),
        C.SOURCE_SIMILAR: _ranked(spark, [("u", 11, 0.7, 1), ("u", 12, 0.6, 2)]),
        C.SOURCE_RECENT_VIEWS: _ranked(spark, [("u", 12, 2.0, 1)]),
    }
    rows = {r[C.ITEM_ID]: r for r in combine(sources).collect()}
    # All three have a best rank of 1; 11 and 12 were found twice, and 11's first source
    # (als) comes before 12's (similar) in the source order.
    assert {i: r[C.UNION_RANK] for i, r in rows.items()} == {11: 1, 12: 2, 10: 3}
    assert rows[11][C.SOURCES] == [C.SOURCE_ALS, C.SOURCE_SIMILAR]
    assert rows[12][C.SOURCES] == [C.SOURCE_SIMILAR, C.SOURCE_RECENT_VIEWS]
    assert rows[12][C.N_SOURCES] == 2
    assert rows[11][C.source_score(C.SOURCE_ALS)] == 0.8
    assert rows[11][C.source_rank(C.SOURCE_SIMILAR)] == 1
    assert rows[10][C.source_rank(C.SOURCE_SIMILAR)] is None
    assert rows[10][C.source_score(C.SOURCE_POPULAR)] is None


def test_neighbours_take_the_best_pair_and_skip_the_seeds(spark) -> None:
    seeds = spark.createDataFrame([("u", 1), ("u", 2)], f"{C.USER_ID} string, _seed_item bigint")
    pairs = spark.createDataFrame(
        [(1, 3, 0.5), (1, 2, 0.9), (2, 3, 0.7), (2, 4, 0.1)],
        f"{C.ITEM_ID} bigint, {C.SIMILAR_ITEM_ID} bigint, {C.SCORE} double",
    )
    got = neighbours_of_seeds(seeds, pairs, C.SIMILAR_ITEM_ID, C.SCORE, 5).collect()
    assert [
        (r[C.ITEM_ID], r[C.SCORE], r[C.RANK]) for r in sorted(got, key=lambda r: r[C.RANK])
    ] == [
        (3, 0.7, 1),
        (4, 0.1, 2),
    ]
    assert neighbours_of_seeds(seeds, pairs, C.SIMILAR_ITEM_ID, C.SCORE, 1).count() == 1


def test_category_lists_weigh_by_affinity_and_fall_back_to_global(spark) -> None:
    lists = spark.createDataFrame(
        [
            (C.LIST_POPULAR, C.SCOPE_CATEGORY, 5, 1, 100, 10.0),
            (C.LIST_POPULAR, C.SCOPE_CATEGORY, 5, 2, 101, 5.0),
            (C.LIST_POPULAR, C.SCOPE_CATEGORY, 6, 1, 200, 2.0),
            (C.LIST_POPULAR, C.SCOPE_GLOBAL, -1, 1, 100, 10.0),
            (C.LIST_POPULAR, C.SCOPE_GLOBAL, -1, 2, 300, 8.0),
            (C.LIST_NEW_ARRIVALS, C.SCOPE_CATEGORY, 5, 1, 999, 1.0),
        ],
        f"{C.LIST} string, {C.SCOPE} string, {C.CATEGORY_ID} bigint, {C.RANK} int, "
        f"{C.ITEM_ID} bigint, {C.SCORE} double",
    )
    portraits = spark.createDataFrame(
        [("u1", [(5, 0.6), (6, 0.4)]), ("u2", [])],
        f"{C.USER_ID} string, {C.TOP_CATEGORIES} array<struct<{C.CATEGORY_ID}: bigint, "
        f"{C.AFFINITY}: double>>",
    )
    users = portraits.select(C.USER_ID)
    got = category_lists(users, portraits, lists, C.LIST_POPULAR, 10).collect()
    by_user: dict[str, list[tuple[Any, ...]]] = {}
    for r in sorted(got, key=lambda r: (r[C.USER_ID], r[C.RANK])):
        by_user.setdefault(r[C.USER_ID], []).append((r[C.ITEM_ID], pytest.approx(r[C.SCORE])))
    # u1: 100 = 0.6 x 10/10, 200 = 0.4 x 2/2, 101 = 0.6 x 5/10; u2 has no top category.
    assert by_user == {"u1": [(100, 0.6), (200, 0.4), (101, 0.3)], "u2": [(100, 1.0), (300, 0.8)]}


def test_recent_views_skip_bought_items_and_halve_per_day(spark, tmp_path) -> None:
    ts = dt.datetime(2026, 3, 10, 12)
    events = spark.createDataFrame(
        [
            (DAY, ts, "u", 1, C.VIEW),
            (DAY - dt.timedelta(days=1), ts, "u", 1, C.VIEW),
            (DAY - dt.timedelta(days=2), ts, "u", 2, C.VIEW),
            (DAY, ts, "u", 3, C.VIEW),
            (DAY, ts, "u", 3, C.PURCHASE),
            (DAY - dt.timedelta(days=7), ts, "u", 4, C.VIEW),  # outside 7 days
        ],
        f"{C.DT} date, {C.EVENT_TS} timestamp, {C.USER_ID} string, {C.ITEM_ID} bigint, "
        f"{C.EVENT_TYPE} string",
    )
    settings = make_settings(tmp_path).candidates
    recent = recent_activity(events, DAY, settings)
    got = {(r[C.ITEM_ID], r[C.SCORE], r[C.RANK]) for r in recent_views_source(recent, 5).collect()}
    assert got == {(1, 1.5, 1), (2, 0.25, 2)}


def _candidates(spark, rows):
    """features.candidates rows from (user, item, als_rank, similar_rank, recent_rank, union)."""
    names = [C.source_rank(s) for s in (C.SOURCE_ALS, C.SOURCE_SIMILAR, C.SOURCE_RECENT_VIEWS)]
    others = [C.source_rank(s) for s in C.CANDIDATE_SOURCES if C.source_rank(s) not in names]
    frame = spark.createDataFrame(
        rows,
        f"{C.USER_ID} string, {C.ITEM_ID} bigint, "
        + ", ".join(f"{n} int" for n in names)
        + f", {C.UNION_RANK} int",
    )
    for column in others:
        frame = frame.withColumn(column, F.lit(None).cast("int"))
    return frame


def test_recall_by_hand(spark) -> None:
    candidates = _candidates(
        spark,
        [
            ("u1", 1, 1, None, None, 1),
            ("u1", 2, 2, 1, None, 2),
            ("u1", 3, None, None, 1, 3),
            ("u2", 5, 1, None, None, 1),
        ],
    )
    holdout = spark.createDataFrame(
        [("u1", 2), ("u1", 3), ("u1", 9), ("u1", 9), ("u2", 7), ("u3", 1)],
        f"{C.USER_ID} string, {C.ITEM_ID} bigint",
    )
    figures = {(v, m, k): x for v, m, k, x in candidate_recall(candidates, holdout, (1, 2))}
    # u1 touched {2, 3, 9}, u2 {7}; u3 had no candidates and is not evaluated.
    assert figures[(C.SOURCE_ALS, RECALL, 1)] == pytest.approx(0.0)
    assert figures[(C.SOURCE_ALS, RECALL, 2)] == pytest.approx((1 / 3 + 0) / 2)
    assert figures[(C.SOURCE_SIMILAR, RECALL, 1)] == pytest.approx((1 / 3 + 0) / 2)
    assert figures[(C.SOURCE_RECENT_VIEWS, RECALL, 1)] == pytest.approx((1 / 3 + 0) / 2)
    assert figures[(C.SOURCE_UNION, RECALL, 2)] == pytest.approx((1 / 3 + 0) / 2)
    assert figures[(C.SOURCE_UNION, RECALL, 0)] == pytest.approx((2 / 3 + 0) / 2)
    assert figures[(C.SOURCE_POPULAR, RECALL, 0)] == 0.0
    assert figures[("all", USERS_EVALUATED, 0)] == 2
    assert figures[(C.SOURCE_UNION, HOLDOUT_USERS_COVERED, 0)] == pytest.approx(2 / 3)
    assert figures[(C.SOURCE_UNION, MEAN_LIST_SIZE, 0)] == pytest.approx(2.0)


def test_ease_source_scores_each_users_window_items(spark) -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 1, 0]], dtype=float))
    model = fit(matrix, np.array([1, 2, 3]), regularization=0.5)
    pairs = spark.createDataFrame(
        [("u", 1), ("v", 3), ("nobody active", 2)], f"{C.USER_ID} string, {C.ITEM_ID} bigint"
    )
    users = spark.createDataFrame([("u",), ("v",), ("w",)], f"{C.USER_ID} string")
    rows = ease_source(users, pairs, model, n=5, batch_rows=2).collect()
    lists = {u: [r[C.ITEM_ID] for r in sorted(rows, key=lambda r: r[C.RANK]) if r[C.USER_ID] == u]
             for u in ("u", "v", "w")}  # fmt: skip
    # 1 and 2 go together: u (item 1) gets 2 first; v (item 3) gets 2; w has no history
    assert lists["u"][0] == 2 and 1 not in lists["u"]
    assert lists["v"][0] == 2 and 3 not in lists["v"]
    assert lists["w"] == []
    assert all(r[C.SCORE] > 0 for r in rows)
