"""Daily aggregates, user portraits and item features on tiny hand-computed cases."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.stages.aggregate import item_daily, user_daily, user_item_daily
from recsys_lib.stages.features import item_features, price_percentiles
from recsys_lib.transforms import portraits as P
from recsys_lib.transforms import windows as W
from recsys_lib.warehouse.tables import ITEM_DAILY, USER_DAILY, USER_ITEM_DAILY
from tests.conftest import make_settings, table_frame

D = dt.date(2026, 1, 31)


def ago(days: int) -> dt.date:
    return D - dt.timedelta(days=days)


def ts(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute)


@pytest.fixture()
def features(tmp_path: Any) -> Any:
    return make_settings(tmp_path).features


def user_day(
    user: str, age: int, views: int = 1, carts: int = 0, purchases: int = 0, hour: int = 12
) -> tuple[Any, ...]:
    hours = [0] * 24
    hours[hour] = views + carts + purchases
    day = ago(age)
    return (day, user, views, carts, purchases, 1, hours, ts(day, hour), ts(day, hour))


def user_item_day(
    user: str, item: int, age: int, views: int = 1, carts: int = 0, purchases: int = 0
) -> tuple[Any, ...]:
    return (ago(age), user, item, views, carts, purchases, ts(ago(age), 12))


def items_frame(spark: Any, rows: list[tuple[int, int | None, float | None]]) -> Any:
    df = spark.createDataFrame(rows, f"{C.ITEM_ID} long, {C.CATEGORY_ID} long, {C.PRICE} double")
    return price_percentiles(df).select(C.ITEM_ID, C.CATEGORY_ID, C.PRICE, C.PRICE_PCT_IN_CATEGORY)


def portraits(
    spark: Any,
    features: Any,
    days: list[Any],
    item_days: list[Any],
    items: Any,
    run_date: dt.date = D,
) -> dict[str, Any]:
    ud = spark.createDataFrame(days, USER_DAILY.schema)
    uid = spark.createDataFrame(item_days, USER_ITEM_DAILY.schema)
    rows = P.user_portraits(ud, uid, items, run_date, features).collect()
    return {r[C.USER_ID]: r for r in rows}


def test_daily_aggregates_of_a_day(spark: Any) -> None:
    day = dt.date(2026, 1, 5)
    events = spark.createDataFrame(
        [
            (day, ts(day, 10), "u1", 1, C.VIEW, 7, 9.5),
            (day, ts(day, 10, 30), "u1", 1, C.VIEW, 8, None),  # the last category of item 1
            (day, ts(day, 11), "u1", 1, C.CART, None, 10.0),  # ... and its last price
            (day, ts(day, 23, 59), "u2", 2, C.PURCHASE, None, None),
            (day, ts(day, 9), "u2", 1, C.VIEW, 6, 8.0),
        ],
        f"{C.DT} date, {C.EVENT_TS} timestamp, {C.USER_ID} string, {C.ITEM_ID} long, "
        f"{C.EVENT_TYPE} string, {C.CATEGORY_ID} long, {C.PRICE} double",
    )
    users = {r[C.USER_ID]: r for r in user_daily(events).collect()}
    assert (users["u1"][C.VIEWS], users["u1"][C.CARTS], users["u1"][C.PURCHASES]) == (2, 1, 0)
    assert users["u1"][C.ITEMS] == 1 and users["u2"][C.ITEMS] == 2
    assert users["u1"][C.ACTIVE_HOURS][10] == 2 and users["u1"][C.ACTIVE_HOURS][11] == 1
    assert sum(users["u1"][C.ACTIVE_HOURS]) == 3 and len(users["u1"][C.ACTIVE_HOURS]) == 24
    assert users["u2"][C.FIRST_EVENT_TS] == ts(day, 9)
    assert users["u2"][C.LAST_EVENT_TS] == ts(day, 23, 59)
    pairs = {(r[C.USER_ID], r[C.ITEM_ID]): r for r in user_item_daily(events).collect()}
    assert (pairs[("u1", 1)][C.VIEWS], pairs[("u1", 1)][C.CARTS]) == (2, 1)
    assert pairs[("u1", 1)][C.LAST_EVENT_TS] == ts(day, 11)
    items = {r[C.ITEM_ID]: r for r in item_daily(events).collect()}
    assert (items[1][C.VIEWS], items[1][C.CARTS], items[1][C.USERS]) == (3, 1, 2)
    assert (items[2][C.PURCHASES], items[2][C.USERS]) == (1, 1)
    assert (items[1][C.CATEGORY_ID], items[1][C.PRICE]) == (8, 10.0)
    assert (items[2][C.CATEGORY_ID], items[2][C.PRICE]) == (None, None)
    assert set(ITEM_DAILY.column_names) == set(item_daily(events).columns)


def test_windows_include_n_days_ending_on_the_run_date(spark: Any, features: Any) -> None:
    ages = [0, 6, 7, 29, 30, 89, 90]
    got = portraits(
        spark,
        features,
        [user_day("u", a) for a in ages],
        [user_item_day("u", 1, a) for a in ages],
        items_frame(spark, [(1, 10, 5.0)]),
    )["u"]
    # An event exactly 7 days old (D-7) is outside the 7-day window; D-90 is outside all.
    assert [got[f"views_{n}d"] for n in (1, 7, 30, 90)] == [1, 2, 4, 6]
    assert got[C.ACTIVE_DAYS_90D] == 6
    assert got[C.FIRST_ACTIVE_DATE] == ago(89)
    assert got[C.DAYS_SINCE_LAST_EVENT] == 0
    assert got[C.DAYS_SINCE_LAST_CART] is None and got[C.DAYS_SINCE_LAST_PURCHASE] is None


def test_rfm_scores_and_segments(spark: Any, features: Any) -> None:
    # User i (1..5): last event i-th most recent (age 5-i), i active days, spend 10*i.
    days, item_days = [], []
    for i in range(1, 6):
        latest, *earlier = [5 - i + 10 * j for j in range(i)]
        days += [user_day(f"u{i}", latest, purchases=1)] + [user_day(f"u{i}", a) for a in earlier]
        item_days += [user_item_day(f"u{i}", i, latest, purchases=1)]
        item_days += [user_item_day(f"u{i}", i, a) for a in earlier]
    items = items_frame(spark, [(i, 1, 10.0 * i) for i in range(1, 6)])
    got = portraits(spark, features, days, item_days, items)
    assert [got[f"u{i}"][C.SPEND_90D] for i in range(1, 6)] == [10.0, 20.0, 30.0, 40.0, 50.0]
    for i in range(1, 6):
        u = got[f"u{i}"]
        assert (u[C.RECENCY_SCORE], u[C.FREQUENCY_SCORE], u[C.MONETARY_SCORE]) == (i, i, i)
    assert [got[f"u{i}"][C.RFM_SEGMENT] for i in range(1, 6)] == [
        "new",  # first seen 4 days ago
        "hibernating",
        "hibernating",
        "champions",
        "champions",
    ]


def test_quintile_score_ties_share_the_lowest_score(spark: Any) -> None:
    df = spark.createDataFrame([(0.0,)] * 8 + [(5.0,), (9.0,)], "v double")
    cuts = P.quintile_cuts(df, "v")
    scores = sorted(r[0] for r in df.select(P.quintile_score(F.col("v"), cuts)).collect())
    assert scores == [1] * 8 + [5, 5]


def test_lifecycle_moves_from_new_to_churned(spark: Any, features: Any) -> None:
    first = dt.date(2026, 3, 1)
    second = first + dt.timedelta(days=7)
    rows = [(d, "u", 1, 0, 0, 1, [1] + [0] * 23, ts(d, 0), ts(d, 0)) for d in (first, second)]
    item_rows = [(d, "u", 1, 1, 0, 0, ts(d, 0)) for d in (first, second)]
    items = items_frame(spark, [(1, 1, 1.0)])
    stages = {}
    for offset in (0, 7, 13, 14, 36, 37, 96, 97):
        run = first + dt.timedelta(days=offset)
        got = portraits(spark, features, rows, item_rows, items, run_date=run)
        stages[offset] = got["u"][C.LIFECYCLE_STAGE] if got else None
    assert stages == {
        0: "new",
        7: "active",  # first event 7 days old: no longer new
        13: "active",
        14: "dormant",  # last event 7 days old
        36: "dormant",
        37: "churned",  # last event 30 days old
        96: "churned",  # last event 89 days old: still in the 90-day window
        97: None,  # out of the window: no portrait
    }


def test_affinity_decays_and_price_band_and_push_hour(spark: Any, features: Any) -> None:
    assert features.affinity_half_life_days == 14
    item_days = [
        user_item_day("u", 1, 0),  # category 1: 1 x 1
        user_item_day("u", 2, 14),  # category 2: 1 x 0.5
        user_item_day("u", 3, 28, views=0, carts=1),  # category 3: 4 x 0.25
        user_item_day("u", 4, 42),  # category 4: 1 x 0.125
    ]
    hours = [0] * 24
    hours[23], hours[0], hours[12] = 3, 3, 4
    days = [(D, "u", 3, 1, 0, 4, hours, ts(D, 0), ts(D, 23))]
    items = items_frame(spark, [(1, 1, 10.0), (2, 2, 5.0), (3, 3, 7.0), (4, 4, 1.0), (5, 3, 1.0)])
    got = portraits(spark, features, days, item_days, items)["u"]
    top = [(c[C.CATEGORY_ID], round(c[C.AFFINITY], 6)) for c in got[C.TOP_CATEGORIES]]
    total = 1 + 0.5 + 1 + 0.125
    # Categories 1 and 3 tie: the lower id first.
    assert top == [(1, round(1 / total, 6)), (3, round(1 / total, 6)), (2, round(0.5 / total, 6))]
    assert got[C.DISTINCT_CATEGORIES_90D] == 4
    # Price percentiles: items 1, 2, 4 are alone in their category (0.5); item 3 is the dearer
    # of category 3 (1.0). Weights: 1, 1, 4, 1 -> (0.5 + 0.5 + 4 * 1.0 + 0.5) / 7.
    assert got[C.PRICE_BAND_PCT] == pytest.approx(5.5 / 7)
    assert got[C.PRICE_BAND] == "high"
    # Smoothed: hours 23 and 0 score 9 each, hour 12 scores 8; the earliest wins.
    assert got[C.PREFERRED_PUSH_HOUR] == 0


def test_smoothed_rate_and_decay_formulas(spark: Any) -> None:
    row = (
        spark.createDataFrame([(2, 10, 14)], f"c long, v long, {W.AGE} int")
        .select(
            W.smoothed_rate(F.col("c"), F.col("v"), F.lit(0.1), 20).alias("rate"),
            W.smoothed_rate(F.col("v"), F.col("c"), F.lit(0.1), 20).alias("capped"),
            W.decay(14).alias("half"),
        )
        .first()
    )
    assert row["rate"] == pytest.approx((2 + 20 * 0.1) / (10 + 20))
    assert row["capped"] == pytest.approx((10 + 2) / (10 + 20))  # more carts than views
    assert row["half"] == pytest.approx(0.5)


def test_price_percentiles_within_category(spark: Any) -> None:
    got = {
        r[C.ITEM_ID]: r[C.PRICE_PCT_IN_CATEGORY]
        for r in items_frame(
            spark,
            [(1, 1, 10.0), (2, 1, 20.0), (3, 1, 30.0), (4, 2, 7.0), (5, 1, None), (6, None, 3.0)],
        ).collect()
    }
    assert got == {1: 0.0, 2: 0.5, 3: 1.0, 4: 0.5, 5: None, 6: None}


def test_item_features_windows_trend_and_age(spark: Any, features: Any) -> None:
    daily = table_frame(
        spark,
        ITEM_DAILY,
        [
            (ago(0), 1, 2, 1, 0, 2),
            (ago(6), 1, 3, 0, 0, 3),
            (ago(7), 1, 5, 0, 0, 5),
            (ago(13), 1, 1, 0, 0, 1),
            (ago(14), 1, 10, 0, 0, 9),
            (ago(29), 1, 1, 0, 1, 1),
            (ago(30), 1, 100, 0, 0, 50),
        ],
    )
    items = spark.createDataFrame(
        [(1, 10, 5.0, ago(40)), (2, 10, 6.0, D)],
        f"{C.ITEM_ID} long, {C.CATEGORY_ID} long, {C.PRICE} double, {C.FIRST_SEEN} date",
    )
    rows = {r[C.ITEM_ID]: r for r in item_features(daily, items, D, features).collect()}
    one = rows[1]
    assert [one[f"views_{n}d"] for n in (1, 7, 30)] == [2, 5, 22]
    assert (one["carts_30d"], one["purchases_30d"], one[C.USERS_30D]) == (1, 1, 21)
    # Weighted events: last 7 days (2 + 4 * 1) + 3 = 9; the 7 before 5 + 1 = 6.
    assert one[C.TREND_7D] == pytest.approx(10 / 7)
    assert one[C.AGE_DAYS] == 40
    # An item without events: zeros, trend 1, rates at the population's prior.
    two = rows[2]
    assert (two["views_30d"], two[C.TREND_7D], two[C.AGE_DAYS]) == (0, 1.0, 0)
    prior_cart = 1 / 22
    assert two[C.CART_RATE] == pytest.approx(prior_cart)
    assert one[C.CART_RATE] == pytest.approx((1 + 20 * prior_cart) / (22 + 20))
