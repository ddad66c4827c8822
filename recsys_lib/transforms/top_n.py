"""The first ``n`` rows of each group in a given order: the one top-n of the pipeline.

Every list the pipeline keeps (a source's candidates, a category's popular items, an
item's bought-together partners, a user's recommendations, a portrait's top categories)
is cut this way. The order must end in a unique key (an item or category id), so that
ties at the cut are broken the same way on every run.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C


def top_n_per(
    frame: DataFrame,
    keys: Sequence[str],
    order: Sequence[Column],
    n: int | None,
    rank: str = C.RANK,
) -> DataFrame:
    """``frame``'s first ``n`` rows of each ``keys`` group by ``order``, numbered 1, 2, …
    in column ``rank``; ``n=None`` numbers every row and keeps them all.

    >>> top_n_per(scored, [C.USER_ID], [F.desc(C.SCORE), F.asc(C.ITEM_ID)], 10)  # doctest: +SKIP
    """
    numbered = frame.withColumn(
        rank, F.row_number().over(Window.partitionBy(*keys).orderBy(*order))
    )
    return numbered if n is None else numbered.filter(F.col(rank) <= n)
