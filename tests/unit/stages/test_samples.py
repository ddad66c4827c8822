"""Ranking features and labels of the training samples, on hand-made rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.evaluation import day_labels
from recsys_lib.transforms.ranking_features import labelled, ranking_features
from recsys_lib.warehouse.tables import (
    CANDIDATES,
    ITEM_FEATURES,
    USER_ITEM_DAILY,
    USER_PORTRAIT,
    TableContract,
)

AS_OF = dt.date(2026, 3, 10)


def _default(dtype: T.DataType) -> Any:
    if isinstance(dtype, T.StringType):
        return "x"
    if isinstance(dtype, T.DateType):
        return AS_OF
    if isinstance(dtype, T.TimestampType):
        return dt.datetime(2026, 3, 10, 12)
    if isinstance(dtype, T.ArrayType):
        return []
    if isinstance(dtype, T.BooleanType):
        return True
    if isinstance(dtype, T.IntegralType):
        return 0
    return 0.0


def _frame(spark, table: TableContract, rows: list[dict[str, Any]]):
    data = [
        tuple(row.get(c.name, None if c.nullable else _default(c.dtype)) for c in table.columns)
        for row in rows
    ]
    return spark.createDataFrame(data, table.schema)


def test_labels_take_the_best_event_of_the_day(spark) -> None:
    events = spark.createDataFrame(
        [
            ("u", 1, C.VIEW),
            ("u", 1, C.PURCHASE),
            ("u", 1, C.CART),
            ("u", 2, C.VIEW),
            ("v", 2, C.CART),
        ],
        f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.EVENT_TYPE} string",
    )
    labels = {(r[C.USER_ID], r[C.ITEM_ID]): r[C.LABEL] for r in day_labels(events).collect()}
    assert labels == {("u", 1): 3, ("u", 2): 1, ("v", 2): 2}
    features = spark.createDataFrame(
        [("u", 1), ("u", 3)], f"{C.USER_ID} string, {C.ITEM_ID} bigint"
    )
    got = {r[C.ITEM_ID]: r[C.LABEL] for r in labelled(features, day_labels(events)).collect()}
    assert got == {1: 3, 3: C.LABEL_NONE}


def test_ranking_features_by_hand(spark) -> None:
    candidates = _frame(
        spark,
        CANDIDATES,
        [
            {
                C.USER_ID: "u",
                C.ITEM_ID: 1,
                C.N_SOURCES: 2,
                C.UNION_RANK: 1,
                C.source_rank(C.SOURCE_ALS): 1,
                C.source_score(C.SOURCE_ALS): 0.9,
            },
            {C.USER_ID: "u", C.ITEM_ID: 2, C.N_SOURCES: 1, C.UNION_RANK: 2},
        ],
    )
    portraits = _frame(
        spark,
        USER_PORTRAIT,
        [
            {
                C.USER_ID: "u",
                "views_7d": 4,
                C.PRICE_BAND_PCT: 0.25,
                C.DAYS_SINCE_LAST_EVENT: 1,
                C.TOP_CATEGORIES: [(100, 0.6), (101, 0.3)],
            }
        ],
    )
    items = _frame(
        spark,
        ITEM_FEATURES,
        [
            {
                C.ITEM_ID: 1,
                C.CATEGORY_ID: 100,
                C.TOP_CATEGORY_ID: 10,
                C.PRICE_PCT_IN_CATEGORY: 0.75,
                "views_30d": 7,
                C.AVAILABLE: False,
            },
            {
                C.ITEM_ID: 2,
                C.CATEGORY_ID: 102,
                C.TOP_CATEGORY_ID: 10,
                C.PRICE_PCT_IN_CATEGORY: None,
            },
            {C.ITEM_ID: 3, C.CATEGORY_ID: 101, C.TOP_CATEGORY_ID: 10},
            {C.ITEM_ID: 4, C.CATEGORY_ID: 102, C.TOP_CATEGORY_ID: 10},
        ],
    )
    day = dt.timedelta(days=1)
    user_items = _frame(
        spark,
        USER_ITEM_DAILY,
        [
            {C.DT: AS_OF - 2 * day, C.USER_ID: "u", C.ITEM_ID: 1, C.VIEWS: 2, C.CARTS: 1},
            {C.DT: AS_OF - 5 * day, C.USER_ID: "u", C.ITEM_ID: 1, C.VIEWS: 3},
            {C.DT: AS_OF - 30 * day, C.USER_ID: "u", C.ITEM_ID: 1, C.VIEWS: 50},  # too old
            {C.DT: AS_OF + day, C.USER_ID: "u", C.ITEM_ID: 1, C.VIEWS: 9},  # the label day
            {C.DT: AS_OF - 3 * day, C.USER_ID: "u", C.ITEM_ID: 4, C.VIEWS: 1},  # item 2's category
        ],
    )
    rows = {
        r[C.ITEM_ID]: r.asDict()
        for r in ranking_features(candidates, portraits, items, user_items, AS_OF).collect()
    }
    assert set(rows[1]) == {C.USER_ID, C.ITEM_ID, *C.RANKING_FEATURES}
    one, two = rows[1], rows[2]
    assert one[C.source_score(C.SOURCE_ALS)] == 0.9 and two[C.source_score(C.SOURCE_ALS)] is None
    assert one[C.CATEGORY_AFFINITY] == 0.6 and two[C.CATEGORY_AFFINITY] == 0.0
    assert one[C.TOP_CATEGORY_AFFINITY] == two[C.TOP_CATEGORY_AFFINITY] == 0.6 + 0.3
    assert one[C.PRICE_BAND_GAP] == 0.5 and two[C.PRICE_BAND_GAP] is None
    assert one[C.USER_ITEM_VIEWS_30D] == 5 and one[C.USER_ITEM_CARTS_30D] == 1
    assert one[C.DAYS_SINCE_ITEM_EVENT] == 2 and two[C.DAYS_SINCE_ITEM_EVENT] is None
    assert one[C.DAYS_SINCE_CATEGORY_EVENT] == 2 and two[C.DAYS_SINCE_CATEGORY_EVENT] == 3
    assert one["user_views_7d"] == 4 and one["item_views_30d"] == 7
    assert one["item_available"] == 0.0 and one["user_days_since_last_event"] == 1
