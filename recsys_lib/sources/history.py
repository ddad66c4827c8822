"""How much history an active user has: the groups that decide which candidate path serves
them (:data:`recsys_lib.constants.HISTORY_GROUPS`).

Counted over the user's events in the ``candidates.active_days`` days ending on D:

- ``one_event``: a single event;
- ``one_day``: several events, all on one day, no cart or purchase;
- ``several_days``: events on two or more days, no cart or purchase;
- ``carted``: a cart or a purchase in the window, whatever else.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import ConfigError
from recsys_lib.dates import window, within

N_EVENTS = "_events"
N_DAYS = "_days"
CARTED = "_carted"


def user_history(events: DataFrame, run_date: dt.date, active_days: int) -> DataFrame:
    """(user_id, history_group) of every user with an event in the ``active_days`` days
    ending on ``run_date``."""
    counted = (
        events.filter(within(window(run_date, active_days)))
        .groupBy(C.USER_ID)
        .agg(
            F.count(F.lit(1)).alias(N_EVENTS),
            F.countDistinct(C.DT).alias(N_DAYS),
            F.max(F.col(C.EVENT_TYPE).isin(C.CART, C.PURCHASE)).alias(CARTED),
        )
    )
    return counted.select(C.USER_ID, history_group().alias(C.HISTORY_GROUP))


def history_group() -> Column:
    """The group of a row of counted events (see the module docstring)."""
    return (
        F.when(F.col(CARTED), F.lit(C.HISTORY_CARTED))
        .when(F.col(N_EVENTS) == 1, F.lit(C.HISTORY_ONE_EVENT))
        .when(F.col(N_DAYS) == 1, F.lit(C.HISTORY_ONE_DAY))
        .otherwise(F.lit(C.HISTORY_DAYS))
    )


def checked_groups(groups: tuple[str, ...]) -> tuple[str, ...]:
    """``candidates.thin_groups``, refused when one is not a history group."""
    unknown = sorted(set(groups) - set(C.HISTORY_GROUPS))
    if unknown:
        raise ConfigError(
            f"candidates.thin_groups: {unknown} are not history groups "
            f"({', '.join(C.HISTORY_GROUPS)})"
        )
    return groups


def full_path_users(history: DataFrame, thin_groups: tuple[str, ...]) -> DataFrame:
    """(user_id) of the users of ``history`` outside ``thin_groups``: those the ALS source
    scores."""
    full = history
    if thin_groups:
        full = history.filter(~F.col(C.HISTORY_GROUP).isin(*checked_groups(thin_groups)))
    return full.select(C.USER_ID)


def cut_thin(
    union: DataFrame, history: DataFrame, thin_groups: tuple[str, ...], n: int
) -> DataFrame:
    """``union`` (features.candidates rows) with the users of ``thin_groups`` cut to their
    first ``n`` in the union's order."""
    if not thin_groups:
        return union
    thin = history.filter(F.col(C.HISTORY_GROUP).isin(*checked_groups(thin_groups))).select(
        C.USER_ID, F.lit(True).alias("_thin")
    )
    kept = union.join(thin, C.USER_ID, "left").filter(
        F.col("_thin").isNull() | (F.col(C.UNION_RANK) <= n)
    )
    return kept.select(*union.columns)
