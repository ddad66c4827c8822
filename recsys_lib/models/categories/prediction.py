"""Distributed prediction of the uncategorised items and the fill that follows it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C

if TYPE_CHECKING:
    pass

from recsys_lib.models.categories import (
    FILL_CATEGORY,
    FILL_CONFIDENCE,
    FILL_IS_LEAF,
    LEAF_ID,
    LEAF_SHARE,
    PREDICTED_TOP,
    PREDICTION_SCHEMA,
    PROBABILITY,
    TOP_K_CATEGORIES,
    TOP_K_PROBABILITIES,
)

log = logging.getLogger(__name__)


def top_k_classes(
    probabilities: np.ndarray, classes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and probabilities of each row's ``k`` most probable classes, best first."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return classes[order], np.take_along_axis(probabilities, order, axis=1)


def predict_top_categories(
    features: DataFrame,
    model_text: str,
    columns: list[str],
    classes: list[int],
    k: int = 3,
    batch_rows: int = 4096,
) -> DataFrame:
    """:data:`PREDICTION_SCHEMA` rows for ``features`` (item_id and ``columns``), scored in
    the executors with the model broadcast as its text dump."""
    shared = features.sparkSession.sparkContext.broadcast(model_text)
    class_ids = np.asarray(classes, dtype=np.int64)

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=shared.value)
        for batch in batches:
            for start in range(0, len(batch), batch_rows):
                part = batch.iloc[start : start + batch_rows]
                x = part[columns].to_numpy(dtype=np.float64, na_value=np.nan)
                proba = np.asarray(booster.predict(x, num_threads=1)).reshape(len(part), -1)
                best, best_p = top_k_classes(proba, class_ids, k)
                yield pd.DataFrame(
                    {
                        C.ITEM_ID: part[C.ITEM_ID].to_numpy(dtype=np.int64),
                        PREDICTED_TOP: best[:, 0],
                        PROBABILITY: best_p[:, 0],
                        TOP_K_CATEGORIES: list(best),
                        TOP_K_PROBABILITIES: list(best_p),
                    }
                )

    selected = features.select(C.ITEM_ID, *[F.col(c).cast("double") for c in columns])
    return selected.mapInPandas(predict, PREDICTION_SCHEMA)


def choose_fill(
    predictions: DataFrame,
    leaves: DataFrame,
    min_confidence: float,
    leaf_min_confidence: float,
    *,
    min_probability: float = 0.0,
) -> DataFrame:
    """(item_id, fill_category_id, fill_confidence, fill_is_leaf) for the predictions that
    reach a threshold: the best leaf under the predicted top category when
    ``probability x leaf_share >= leaf_min_confidence``, else the top category when
    ``probability >= min_confidence``; neither below ``min_probability`` (the vote's
    threshold from its holdout). ``leaves`` is :func:`best_leaves`' output."""
    joined = predictions.join(
        leaves.withColumnRenamed(C.TOP_CATEGORY_ID, PREDICTED_TOP),
        [C.ITEM_ID, PREDICTED_TOP],
        "left",
    )
    leaf_confidence = F.col(PROBABILITY) * F.coalesce(F.col(LEAF_SHARE), F.lit(0.0))
    gate = F.col(PROBABILITY) >= F.lit(min_probability)
    leaf_ok = F.col(LEAF_ID).isNotNull() & (leaf_confidence >= F.lit(leaf_min_confidence)) & gate
    top_ok = (F.col(PROBABILITY) >= F.lit(min_confidence)) & gate
    return joined.filter(leaf_ok | top_ok).select(
        C.ITEM_ID,
        F.when(leaf_ok, F.col(LEAF_ID)).otherwise(F.col(PREDICTED_TOP)).alias(FILL_CATEGORY),
        F.when(leaf_ok, leaf_confidence).otherwise(F.col(PROBABILITY)).alias(FILL_CONFIDENCE),
        leaf_ok.alias(FILL_IS_LEAF),
    )


def apply_fill(items: DataFrame, fill: DataFrame, categories: DataFrame) -> DataFrame:
    """``items`` with the ``fill`` categories written into the rows without a category
    source (path, top level and depth from ``categories``); other rows unchanged."""
    described = fill.join(
        categories.select(
            F.col(C.CATEGORY_ID).alias(FILL_CATEGORY),
            F.col(C.CATEGORY_PATH).alias("_path"),
            F.col(C.TOP_CATEGORY_ID).alias("_top"),
            F.col(C.CATEGORY_DEPTH).alias("_depth"),
        ),
        FILL_CATEGORY,
    ).select(C.ITEM_ID, FILL_CATEGORY, FILL_CONFIDENCE, "_path", "_top", "_depth")
    joined = items.join(described, C.ITEM_ID, "left")
    filled = F.col(C.CATEGORY_SOURCE).isNull() & F.col(FILL_CATEGORY).isNotNull()
    replacements = {
        C.CATEGORY_ID: F.col(FILL_CATEGORY),
        C.CATEGORY_PATH: F.col("_path"),
        C.TOP_CATEGORY_ID: F.col("_top"),
        C.CATEGORY_DEPTH: F.col("_depth"),
        C.CATEGORY_SOURCE: F.lit(C.SOURCE_PREDICTED),
        C.CATEGORY_CONFIDENCE: F.col(FILL_CONFIDENCE),
    }
    schema = items.schema
    return joined.select(
        *[
            (
                F.when(filled, replacements[f.name].cast(f.dataType))
                .otherwise(F.col(f.name))
                .alias(f.name)
                if f.name in replacements
                else F.col(f.name)
            )
            for f in schema.fields
        ]
    )
