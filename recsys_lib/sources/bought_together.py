"""Bought together: items that the same users cart or buy close together.

Rule (``bought_together`` settings). Only events whose type is in ``event_types`` count.
Two events of one user on different items a and b are an occurrence of the pair when they
share a transaction id or lie at most ``hours`` hours apart. Over the users kept:

- ``support(a, b)``: distinct users with an occurrence of the pair (symmetric);
- ``users(a)``: distinct users with a qualifying event on a; ``N``: distinct users with any;
- ``confidence(a -> b) = support(a, b) / users(a)``;
- ``lift(a -> b) = confidence(a -> b) / (users(b) / N)``.

Pairs with ``support >= min_support`` and ``lift >= min_lift`` are ranked per item a by
confidence, then lift (both descending), then ``other_item_id``; the best ``top_n`` are kept.

Bound. A user with more than ``max_items_per_user`` distinct qualifying items (a bot, a
reseller) is left out entirely, of the pairs, of ``users(a)`` and of ``N``
(:func:`skipped_users` counts them). The self-join is an equi-join on the user over the
de-duplicated (user, item, event_ts, transaction_id) rows, with the time and transaction
condition inside the join, so its work per user is at most the square of that user's rows.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import BoughtTogetherSettings
from recsys_lib.transforms.top_n import top_n_per

USERS_A = "_users_a"
USERS_B = "_users_b"
N_USERS = "_n_users"
N_ITEMS = "_n_items"
MICROS_PER_HOUR = 3_600_000_000


def qualifying_events(events: DataFrame, settings: BoughtTogetherSettings) -> DataFrame:
    """De-duplicated (user_id, item_id, event_ts, transaction_id) of the qualifying types."""
    return (
        events.filter(F.col(C.EVENT_TYPE).isin(*settings.event_types))
        .select(C.USER_ID, C.ITEM_ID, C.EVENT_TS, C.TRANSACTION_ID)
        .distinct()
    )


def user_item_counts(qualifying: DataFrame) -> DataFrame:
    """(user_id, _n_items): distinct qualifying items of each user."""
    return qualifying.groupBy(C.USER_ID).agg(F.countDistinct(C.ITEM_ID).alias(N_ITEMS))


def skipped_users(events: DataFrame, settings: BoughtTogetherSettings) -> int:
    """Users left out of :func:`bought_together` for having more than
    ``max_items_per_user`` distinct qualifying items (runs a Spark job)."""
    counts = user_item_counts(qualifying_events(events, settings))
    return counts.filter(F.col(N_ITEMS) > settings.max_items_per_user).count()


def bought_together(events: DataFrame, settings: BoughtTogetherSettings) -> DataFrame:
    """(item_id, rank, other_item_id, support, confidence, lift): for each item a, the
    ``top_n`` items b most often carted or bought with it by the same users.

    ``events`` are clean.events rows already limited by the caller to the
    ``window_days`` days ending on the run date; the ``dt`` column is not used. Rank 1 is
    the highest confidence. The result has no ``dt``: the caller adds the run date.

    Example::

        bought_together(events.filter(within(window(run_date, settings.window_days))), settings)
    """
    qualifying = qualifying_events(events, settings)
    kept_users = (
        user_item_counts(qualifying)
        .filter(F.col(N_ITEMS) <= settings.max_items_per_user)
        .select(C.USER_ID)
    )
    rows = qualifying.join(kept_users, C.USER_ID, "left_semi")

    user_items = rows.select(C.USER_ID, C.ITEM_ID).distinct()
    item_users = user_items.groupBy(C.ITEM_ID).agg(F.count(F.lit(1)).alias(USERS_A))
    n_users = user_items.agg(F.countDistinct(C.USER_ID).alias(N_USERS))

    a, b = rows.alias("a"), rows.alias("b")
    max_micros = int(round(settings.hours * MICROS_PER_HOUR))
    apart = F.abs(F.unix_micros(F.col(f"a.{C.EVENT_TS}")) - F.unix_micros(F.col(f"b.{C.EVENT_TS}")))
    occurs = (F.col(f"a.{C.USER_ID}") == F.col(f"b.{C.USER_ID}")) & (
        F.col(f"a.{C.ITEM_ID}") != F.col(f"b.{C.ITEM_ID}")
    )
    close = (F.col(f"a.{C.TRANSACTION_ID}") == F.col(f"b.{C.TRANSACTION_ID}")) | (
        apart <= F.lit(max_micros)
    )
    occurrences = (
        a.join(b, occurs & close)
        .select(
            F.col(f"a.{C.USER_ID}").alias(C.USER_ID),
            F.col(f"a.{C.ITEM_ID}").alias(C.ITEM_ID),
            F.col(f"b.{C.ITEM_ID}").alias(C.OTHER_ITEM_ID),
        )
        .distinct()
    )
    support = occurrences.groupBy(C.ITEM_ID, C.OTHER_ITEM_ID).agg(
        F.count(F.lit(1)).alias(C.SUPPORT)
    )
    # lift = support * N / (users(a) * users(b)): one rounding, so a pair exactly at
    # chance level has lift 1.0 and passes min_lift = 1.
    scored = (
        support.filter(F.col(C.SUPPORT) >= settings.min_support)
        .join(item_users, C.ITEM_ID)
        .join(
            item_users.select(
                F.col(C.ITEM_ID).alias(C.OTHER_ITEM_ID), F.col(USERS_A).alias(USERS_B)
            ),
            C.OTHER_ITEM_ID,
        )
        .crossJoin(F.broadcast(n_users))
        .withColumn(C.CONFIDENCE, F.col(C.SUPPORT) / F.col(USERS_A))
        .withColumn(
            C.LIFT,
            (F.col(C.SUPPORT) * F.col(N_USERS)).cast("double")
            / (F.col(USERS_A) * F.col(USERS_B)).cast("double"),
        )
        .filter(F.col(C.LIFT) >= F.lit(float(settings.min_lift)))
    )
    by_confidence = [F.desc(C.CONFIDENCE), F.desc(C.LIFT), F.asc(C.OTHER_ITEM_ID)]
    return top_n_per(scored, [C.ITEM_ID], by_confidence, settings.top_n).select(
        C.ITEM_ID,
        C.RANK,
        C.OTHER_ITEM_ID,
        F.col(C.SUPPORT).cast("long").alias(C.SUPPORT),
        F.col(C.CONFIDENCE).cast("double").alias(C.CONFIDENCE),
        F.col(C.LIFT).cast("double").alias(C.LIFT),
    )
