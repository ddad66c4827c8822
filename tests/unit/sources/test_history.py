"""Users' history groups and the cheap path for thin histories, on hand-made cases."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys_lib import constants as C
from recsys_lib.config import ConfigError
from recsys_lib.sources.history import (
    cut_thin,
    full_path_users,
    user_history,
)
from recsys_lib.sources.union import combine

DAY = dt.date(2026, 3, 10)
EVENTS = (
    f"{C.DT} date, {C.EVENT_TS} timestamp, {C.USER_ID} string, {C.ITEM_ID} bigint, "
    f"{C.EVENT_TYPE} string"
)
RANKED = f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.SCORE} double, {C.RANK} int"


def _events(spark, rows):
    ts = dt.datetime(2026, 3, 10, 12)
    return spark.createDataFrame(
        [(DAY - dt.timedelta(days=ago), ts, u, i, t) for ago, u, i, t in rows], EVENTS
    )


def test_history_groups_count_events_days_and_carts_in_the_active_window(spark) -> None:
    events = _events(
        spark,
        [
            (0, "once", 1, C.VIEW),
            (40, "once", 2, C.VIEW),  # outside 30 days: not counted
            (3, "day", 1, C.VIEW),
            (3, "day", 2, C.VIEW),
            (1, "days", 1, C.VIEW),
            (5, "days", 1, C.VIEW),
            (9, "cart", 1, C.CART),  # one event, but a cart: the carted group
            (2, "buyer", 1, C.VIEW),
            (2, "buyer", 1, C.PURCHASE),
            (31, "gone", 1, C.VIEW),  # not active
        ],
    )
    got = {r[C.USER_ID]: r[C.HISTORY_GROUP] for r in user_history(events, DAY, 30).collect()}
    assert got == {
        "once": C.HISTORY_ONE_EVENT,
        "day": C.HISTORY_ONE_DAY,
        "days": C.HISTORY_DAYS,
        "cart": C.HISTORY_CARTED,
        "buyer": C.HISTORY_CARTED,
    }


def test_the_thin_path_leaves_out_its_users_and_cuts_their_union(spark) -> None:
    events = _events(
        spark, [(0, "thin", 1, C.VIEW), (0, "full", 1, C.VIEW), (4, "full", 2, C.VIEW)]
    )
    history = user_history(events, DAY, 30)
    full = {r[C.USER_ID] for r in full_path_users(history, (C.HISTORY_ONE_EVENT,)).collect()}
    assert full == {"full"}
    assert {r[C.USER_ID] for r in full_path_users(history, ()).collect()} == {"thin", "full"}

    popular = spark.createDataFrame(
        [(u, 10 + n, 1.0 / (n + 1), n + 1) for u in ("thin", "full") for n in range(5)], RANKED
    )
    union = combine({C.SOURCE_POPULAR: popular})
    cut = cut_thin(union, history, (C.HISTORY_ONE_EVENT,), 2)
    kept = {(r[C.USER_ID], r[C.ITEM_ID]) for r in cut.collect()}
    assert kept == {("thin", 10), ("thin", 11), *{("full", 10 + n) for n in range(5)}}
    assert cut.columns == union.columns
    assert cut_thin(union, history, (), 2) is union


def test_an_unknown_group_is_refused(spark) -> None:
    history = user_history(_events(spark, [(0, "u", 1, C.VIEW)]), DAY, 30)
    with pytest.raises(ConfigError, match="one_visit.*one_event"):
        full_path_users(history, ("one_visit",))
