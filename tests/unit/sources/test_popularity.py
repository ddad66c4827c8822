"""Popular items and new arrivals on tiny hand-computed cases: decay, scopes, the window,
items without a category, the new-arrival boundary and score, top_n."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from recsys_lib import constants as C
from recsys_lib.config import PopularSettings
from recsys_lib.sources.popularity import popular_items
from recsys_lib.warehouse.tables import ITEM_DAILY, POPULAR_ITEMS
from tests.conftest import table_frame

D = dt.date(2026, 1, 31)
WEIGHTS = {C.VIEW: 1.0, C.CART: 4.0, C.PURCHASE: 8.0}
OLD = dt.date(2025, 6, 1)  # first_seen of items that are not new arrivals
ITEMS_DDL = f"{C.ITEM_ID} long, {C.CATEGORY_ID} long, {C.TOP_CATEGORY_ID} long, {C.FIRST_SEEN} date"


def ago(days: int) -> dt.date:
    return D - dt.timedelta(days=days)


def day(item: int, age: int, views: int = 0, carts: int = 0, purchases: int = 0) -> tuple:
    return (ago(age), item, views, carts, purchases, 1)


@pytest.fixture()
def popular_settings(settings: Any) -> PopularSettings:
    return dataclasses.replace(
        settings.popular,
        window_days=30,
        half_life_days=7,
        top_n=50,
        new_arrival_days=14,
        new_arrivals_top_n=50,
    )


def lists(
    spark: Any,
    daily: list[tuple],
    items: list[tuple],
    settings: PopularSettings,
    weights: dict[str, float] = WEIGHTS,
) -> Any:
    return popular_items(
        table_frame(spark, ITEM_DAILY, daily),
        spark.createDataFrame(items, ITEMS_DDL),
        D,
        settings,
        weights,
    )


def ranking(df: Any, which: str, scope: str, category: int) -> list[tuple[int, int, float]]:
    """(rank, item_id, score) of one list, scope and category, by rank."""
    rows = df.filter(
        (df[C.LIST] == which) & (df[C.SCOPE] == scope) & (df[C.CATEGORY_ID] == category)
    )
    return [(r[C.RANK], r[C.ITEM_ID], r[C.SCORE]) for r in rows.orderBy(C.RANK).collect()]


def test_decayed_score_and_ranking(spark: Any, popular_settings: PopularSettings) -> None:
    daily = [
        day(4, 0, views=3),  # 3 x 1 = 3
        day(1, 0, views=2),  # 2 x 1 x 0.5**0 = 2
        day(1, 7, carts=1),  # 1 x 4 x 0.5**(7/7) = 2        -> item 1: 4
        day(2, 0, views=1),  # 1
        day(2, 14, purchases=1),  # 1 x 8 x 0.5**(14/7) = 2   -> item 2: 3, ties with item 4
        day(3, 3, views=1, carts=1),  # 5 x 0.5**(3/7)        -> item 3: 3.7114...
    ]
    items = [(i, None, None, OLD) for i in (1, 2, 3, 4)]
    got = ranking(lists(spark, daily, items, popular_settings), C.LIST_POPULAR, C.SCOPE_GLOBAL, -1)
    assert [(rank, item) for rank, item, _ in got] == [(1, 1), (2, 3), (3, 2), (4, 4)]
    assert [score for *_, score in got] == pytest.approx([4.0, 5 * 0.5 ** (3 / 7), 3.0, 3.0])


def test_output_matches_the_contract(spark: Any, popular_settings: PopularSettings) -> None:
    df = lists(spark, [day(1, 0, views=1)], [(1, 11, 1, ago(1))], popular_settings)
    contract = {f.name: f.dataType for f in POPULAR_ITEMS.schema.fields if f.name != C.DT}
    assert {f.name: f.dataType for f in df.schema.fields} == contract
    assert df.columns == [c for c in POPULAR_ITEMS.column_names if c != C.DT]


def test_scopes_and_items_without_a_category(spark: Any, popular_settings: PopularSettings) -> None:
    daily = [day(i, 0, views=10 - i) for i in (1, 2, 3, 4, 5, 6)]
    items = [
        (1, 11, 1, OLD),
        (2, 12, 1, OLD),
        (3, 21, 2, OLD),
        (4, None, None, OLD),  # no category: global only
        (5, 13, None, OLD),  # a leaf whose root is unknown: leaf and global
        # item 6 has events but no clean.items row: global only
    ]
    df = lists(spark, daily, items, popular_settings)
    got: dict[tuple[str, int], list[int]] = {}
    for r in df.filter(df[C.LIST] == C.LIST_POPULAR).orderBy(C.RANK).collect():
        got.setdefault((r[C.SCOPE], r[C.CATEGORY_ID]), []).append(r[C.ITEM_ID])
    assert got == {
        (C.SCOPE_GLOBAL, -1): [1, 2, 3, 4, 5, 6],
        (C.SCOPE_TOP_CATEGORY, 1): [1, 2],
        (C.SCOPE_TOP_CATEGORY, 2): [3],
        (C.SCOPE_CATEGORY, 11): [1],
        (C.SCOPE_CATEGORY, 12): [2],
        (C.SCOPE_CATEGORY, 13): [5],
        (C.SCOPE_CATEGORY, 21): [3],
    }
    # The same score in every scope of an item.
    assert {r[C.SCORE] for r in df.filter(df[C.ITEM_ID] == 1).collect()} == {9.0}


def test_window_edge_and_zero_scores(spark: Any, popular_settings: PopularSettings) -> None:
    daily = [
        day(1, 29, views=1),  # the window's first day: in
        day(2, 30, views=1),  # one day before the window: out
        day(3, -1, views=1),  # after the run date: out
        day(4, 0, views=5),
        day(4, 30, carts=1),  # out of the window
    ]
    items = [(i, None, None, OLD) for i in (1, 2, 3, 4)]
    got = ranking(lists(spark, daily, items, popular_settings), C.LIST_POPULAR, C.SCOPE_GLOBAL, -1)
    assert [(rank, item) for rank, item, _ in got] == [(1, 4), (2, 1)]
    assert [score for *_, score in got] == pytest.approx([5.0, 0.5 ** (29 / 7)])
    # With views weighing 0, every item in the window scores 0: none is popular.
    no_views = {**WEIGHTS, C.VIEW: 0.0}
    df = lists(spark, daily, items, popular_settings, no_views)
    assert ranking(df, C.LIST_POPULAR, C.SCOPE_GLOBAL, -1) == []


def test_new_arrivals(spark: Any, popular_settings: PopularSettings) -> None:
    daily = [
        day(100, 0, views=2, carts=1),  # first seen today: (2 + 4) / (0 + 1) = 6
        day(113, 13, purchases=1),  # first seen 13 days ago, no decay:
        day(113, 5, views=6),  #      (8 + 6) / (13 + 1) = 1
        day(113, -1, views=100),  # after the run date: ignored
        day(114, 0, views=50),  # first seen 14 days ago: not new
        day(200, 0, views=1),  # an old item
    ]
    items = [
        (100, 11, 1, ago(0)),
        (113, 12, 1, ago(13)),
        (114, 11, 1, ago(14)),
        (101, 11, 1, ago(3)),  # no events: score 0, still listed
        (108, 21, 2, ago(1)),  # no events, newer than 101: before it
        (107, None, None, ago(1)),  # as new as 108, smaller id: before it; global only
        (200, 11, 1, OLD),
    ]
    df = lists(spark, daily, items, popular_settings)
    assert ranking(df, C.LIST_NEW_ARRIVALS, C.SCOPE_GLOBAL, -1) == [
        (1, 100, 6.0),
        (2, 113, 1.0),
        (3, 107, 0.0),
        (4, 108, 0.0),
        (5, 101, 0.0),
    ]
    assert [i for _, i, _ in ranking(df, C.LIST_NEW_ARRIVALS, C.SCOPE_TOP_CATEGORY, 1)] == [
        100,
        113,
        101,
    ]
    assert [i for _, i, _ in ranking(df, C.LIST_NEW_ARRIVALS, C.SCOPE_CATEGORY, 11)] == [100, 101]
    assert [i for _, i, _ in ranking(df, C.LIST_NEW_ARRIVALS, C.SCOPE_CATEGORY, 21)] == [108]
    # New items without events are not in the popular list (113: 8 x 0.5**(13/7) + 6 x
    # 0.5**(5/7) = 5.86 decayed, below 100's 6).
    popular = [i for _, i, _ in ranking(df, C.LIST_POPULAR, C.SCOPE_GLOBAL, -1)]
    assert popular == [114, 100, 113, 200]


def test_top_n(spark: Any, popular_settings: PopularSettings) -> None:
    daily = [day(i, 0, views=i) for i in range(1, 6)]
    items = [(i, 10 + i % 2, 1, ago(i)) for i in range(1, 6)]
    short = dataclasses.replace(popular_settings, top_n=2, new_arrivals_top_n=3)
    df = lists(spark, daily, items, short)
    assert [i for _, i, _ in ranking(df, C.LIST_POPULAR, C.SCOPE_GLOBAL, -1)] == [5, 4]
    assert [i for _, i, _ in ranking(df, C.LIST_POPULAR, C.SCOPE_CATEGORY, 11)] == [5, 3]
    assert [i for _, i, _ in ranking(df, C.LIST_POPULAR, C.SCOPE_CATEGORY, 10)] == [4, 2]
    # New arrivals: item i scores i / (i + 1): 5/6 > 4/5 > 3/4 > ...
    assert [i for _, i, _ in ranking(df, C.LIST_NEW_ARRIVALS, C.SCOPE_GLOBAL, -1)] == [5, 4, 3]
    counts = df.groupBy(C.LIST, C.SCOPE, C.CATEGORY_ID).count().collect()
    assert max(r["count"] for r in counts if r[C.LIST] == C.LIST_POPULAR) == 2
    assert max(r["count"] for r in counts if r[C.LIST] == C.LIST_NEW_ARRIVALS) == 3
