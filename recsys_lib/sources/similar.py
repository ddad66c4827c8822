"""Similar items: each item's nearest items by cosine of its ALS item factors.

Exact and brute force, in batches: the L2-normalised item factors are broadcast to every
executor, and a ``mapInPandas`` over the items, in batches of ``batch_rows`` item positions,
scores one batch at a time against all items (:func:`recsys_lib.models.scoring.top_k_similar`).
The all-pairs matrix never exists anywhere.

Scale path. Memory per task is one score block, ``batch_rows x n_items`` float32 (1024 x
250k items: ~1 GiB), so ``als.similar_batch_rows`` is the knob for executor memory. The
broadcast is ``n_items x factors`` float32 plus the ids (250k x 64: ~63 MiB), held by the
driver and each executor. Work grows as ``n_items**2 x factors``, spread over the tasks.
Beyond a few million items, or when that work no longer fits the nightly slot, the next
step is an approximate nearest-neighbour index over the normalised factors (e.g. HNSW or
IVF), queried in the same ``mapInPandas``.

Zero factor rows (an item ALS left without a direction) have an undefined cosine: such an
item gets no neighbours and is nobody's neighbour, rather than a row of NaN or of zeros.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.models.scoring import normalise_rows, top_k_similar

if TYPE_CHECKING:
    from recsys_lib.models.als import AlsModel

BATCH = "id"  # spark.range's column: batch b holds item positions [b, b + 1) x batch_rows
SIMILAR_SCHEMA = T.StructType(
    [
        T.StructField(C.ITEM_ID, T.LongType(), False),
        T.StructField(C.RANK, T.IntegerType(), False),
        T.StructField(C.SIMILAR_ITEM_ID, T.LongType(), False),
        T.StructField(C.SCORE, T.DoubleType(), False),
    ]
)


def similar_items(spark: SparkSession, model: AlsModel, top_n: int, batch_rows: int) -> DataFrame:
    """(item_id, rank, similar_item_id, score): each item's ``top_n`` nearest items.

    ``score`` is the cosine of the two items' factors; rank 1 is the most similar; an item
    is never its own neighbour and ties go to the smaller ``similar_item_id``. Items with
    fewer than ``top_n`` other items with a defined cosine get fewer rows. For a given model
    and ``batch_rows`` the rows are identical on every run, whatever the number of tasks.

    Example::

        similar_items(spark, model, top_n=20, batch_rows=1024)
    """
    if top_n < 1 or batch_rows < 1:
        raise ValueError(f"top_n and batch_rows must be at least 1, got {top_n}, {batch_rows}")
    item_ids = np.asarray(model.item_ids, dtype=np.int64)
    n_items = len(item_ids)
    shared = spark.sparkContext.broadcast((item_ids, normalise_rows(model.item_factors)))
    n_batches = math.ceil(n_items / batch_rows)
    # One row per batch of item positions: a batch is always the same block of items, so its
    # float32 sums (and the ranking) do not depend on the number of tasks or Arrow batches.
    batches = spark.range(
        0,
        n_batches,
        numPartitions=max(1, min(n_batches, spark.sparkContext.defaultParallelism * 4)),
    )

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ids, normed = shared.value
        for frame in frames:
            for batch in frame[BATCH].to_numpy(dtype=np.int64):
                rows = np.arange(batch * batch_rows, min(n_items, (batch + 1) * batch_rows))
                item, rank, neighbour, cosine = top_k_similar(rows, normed, ids, top_n)
                yield pd.DataFrame(
                    {
                        C.ITEM_ID: ids[item],
                        C.RANK: rank,
                        C.SIMILAR_ITEM_ID: ids[neighbour],
                        C.SCORE: cosine,
                    }
                )

    return batches.mapInPandas(score, SIMILAR_SCHEMA)
