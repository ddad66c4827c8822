"""Stage ``items``: ``clean.items`` of a day, with categories completed from behaviour.

The catalogue snapshot (``catalogue.item_snapshot``) takes every ``raw.items`` row stamped up
to the run date and every item seen in ``features.item_daily``; category completion
(``models.categories``) then fills missing categories from the last
``completion.window_days`` of ``features.user_item_daily``. Its held-out accuracy goes to
``ops.model_evaluation`` (model ``category_completion``) and to MLflow.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.evaluation import evaluation_frame
from recsys_lib.io.catalogue import read_category_tree
from recsys_lib.models.categories import MODEL_NAME
from recsys_lib.models.categories.completion import complete_categories
from recsys_lib.transforms.catalogue import (
    CATEGORIES_SCHEMA,
    categories_frame,
    flat_categories,
    item_snapshot,
)
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_table, read_window, table_version
from recsys_lib.warehouse.tables import (
    CLEAN_ITEMS,
    ITEM_DAILY,
    MODEL_EVALUATION,
    RAW_ITEMS,
    USER_ITEM_DAILY,
)

log = logging.getLogger(__name__)


def categories(spark: SparkSession, settings: Settings) -> DataFrame:
    """The category tree with paths; empty if the shop has no tree file."""
    path = settings.input.category_tree_path
    if not path:
        return spark.createDataFrame([], CATEGORIES_SCHEMA)
    return categories_frame(spark, read_category_tree(settings.resolve(path), spark))


def event_attributes(item_daily: DataFrame, run_date: dt.date) -> DataFrame:
    """(item_id, first_seen, category_id, price): each item's first day with an event, and
    the latest category and price its event rows carried, up to the run date."""

    def latest(column: str) -> Column:
        value = F.col(column)
        return F.max(F.when(value.isNotNull(), F.struct(C.DT, column))).getField(column)

    return (
        item_daily.filter(F.col(C.DT) <= F.lit(run_date))
        .groupBy(C.ITEM_ID)
        .agg(
            F.min(C.DT).alias(C.FIRST_SEEN),
            latest(C.CATEGORY_ID).alias(C.CATEGORY_ID),
            latest(C.PRICE).alias(C.PRICE),
        )
    )


def items_day(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``items``: catalogue snapshot + category completion -> ``clean.items``."""
    properties = read_table(spark, settings, RAW_ITEMS).filter(F.col(C.DT) <= F.lit(run_date))
    seen = event_attributes(read_table(spark, settings, ITEM_DAILY), run_date)
    flat = not settings.input.category_tree_path
    tree = categories(spark, settings)
    snapshot = item_snapshot(properties, seen, tree, run_date, flat=flat).cache()
    if flat:
        log.info("input.category_tree_path is empty: every category is a top-level one")
        tree = flat_categories(snapshot)
    tree = tree.cache()
    days = window(run_date, settings.completion.window_days)
    interactions = read_window(spark, settings, USER_ITEM_DAILY, days)
    versions = {
        f"input.{t.name}.delta_version": table_version(spark, settings, t)
        for t in (RAW_ITEMS, USER_ITEM_DAILY, ITEM_DAILY)
    }
    result = complete_categories(
        spark, settings, snapshot, interactions, tree, run_date, input_versions=versions
    )
    if result.note:
        log.warning("category completion for %s: %s", run_date, result.note)
    figures = quality.write_checked(
        spark,
        settings,
        [(CLEAN_ITEMS, result.items)],
        run_date,
        extra_checks=[
            quality.measure(CLEAN_ITEMS.name, f"completion.{k}", v)
            for k, v in sorted(result.figures.items())
        ],
        extra_writes=[
            (
                MODEL_EVALUATION,
                evaluation_frame(spark, MODEL_NAME, result.evaluation, run_date),
                {C.MODEL: MODEL_NAME},
            )
        ],
    )
    snapshot.unpersist()
    tree.unpersist()
    return {**figures, **{f"completion.{k}": v for k, v in result.figures.items()}}
