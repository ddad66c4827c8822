"""Table reads that more than one stage needs: the ranking features of a day's candidates
(``samples`` for yesterday's, ``recommend`` for today's). Not a stage: stages import this,
never each other.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.transforms.ranking_features import INTERACTION_DAYS, ranking_features
from recsys_lib.warehouse.storage import read_partition, read_window
from recsys_lib.warehouse.tables import CANDIDATES, ITEM_FEATURES, USER_ITEM_DAILY, USER_PORTRAIT


def features_of_day(
    spark: SparkSession, settings: Settings, as_of: dt.date, users: DataFrame | None = None
) -> DataFrame:
    """Ranking features of the candidates of ``as_of`` (empty when it has none); with
    ``users`` (user_id), only of those users' candidates."""
    candidates = read_partition(spark, settings, CANDIDATES, as_of)
    if users is not None:
        candidates = candidates.join(users, C.USER_ID, "left_semi")
    return ranking_features(
        candidates,
        read_partition(spark, settings, USER_PORTRAIT, as_of),
        read_partition(spark, settings, ITEM_FEATURES, as_of),
        read_window(spark, settings, USER_ITEM_DAILY, window(as_of, INTERACTION_DAYS)),
        as_of,
    )
