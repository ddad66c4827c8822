"""Stage ``samples``: yesterday's candidates with their ranking features, labelled by today.

The features (:mod:`recsys_lib.transforms.ranking_features`) of a candidate list of day A
use only tables of day A. The recommend stage computes them for today's candidates; this
stage computes them for yesterday's candidates and labels each with the user's best event
on the item today
(3 purchase, 2 cart, 1 view, 0 none), so a sample never sees its own label day
(``features.training_samples``, dt = the label day). Rules: docs/ranker.md.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.evaluation import day_labels
from recsys_lib.models.importance import (
    ITEM_VIEWS_30D,
    LossPredictor,
    median_item_views,
    static_components,
    with_importance,
)
from recsys_lib.models.registry import load_predictor
from recsys_lib.runtime import tracking
from recsys_lib.runtime.spark import concurrently
from recsys_lib.stages.inputs import features_of_day
from recsys_lib.transforms.ranking_features import labelled
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_partition
from recsys_lib.warehouse.tables import (
    CANDIDATES,
    CLEAN_EVENTS,
    ITEM_FEATURES,
    TRAINING_SAMPLES,
)

log = logging.getLogger(__name__)

STAGE = C.SAMPLES


def candidate_item_views(spark: SparkSession, settings: Settings, as_of: dt.date) -> DataFrame:
    """(item_id, item_views_30d) of every item among the candidates of ``as_of``: what the
    median of the propensity weight is taken over."""
    items = read_partition(spark, settings, CANDIDATES, as_of).select(C.ITEM_ID).distinct()
    views = read_partition(spark, settings, ITEM_FEATURES, as_of).select(
        C.ITEM_ID,
        F.col(C.ITEM_FEATURE_SOURCES[C.ITEM_FEATURES.index(ITEM_VIEWS_30D)]).alias(ITEM_VIEWS_30D),
    )
    return items.join(views, C.ITEM_ID, "left")


def training_samples(
    spark: SparkSession,
    settings: Settings,
    label_day: dt.date,
    predictor: LossPredictor | None,
) -> DataFrame:
    """``features.training_samples`` of ``label_day``: yesterday's candidates of the users
    with an event on the label day, with their features, today's label and their importance
    under ``predictor``.

    The candidates of users without an event on the day are left out: their groups hold no
    positive label, and lambdarank learns nothing from such a group. The propensity
    weight's median is taken over every candidate item of yesterday, as before the cut.
    """
    as_of = label_day - dt.timedelta(days=1)
    events = read_partition(spark, settings, CLEAN_EVENTS, label_day)
    active = events.select(C.USER_ID).distinct()
    features = features_of_day(spark, settings, as_of, active)
    median = median_item_views(candidate_item_views(spark, settings, as_of))
    samples = labelled(features, day_labels(events))
    weighted = with_importance(
        static_components(samples, median, settings.importance), predictor, settings.importance
    )
    return weighted.withColumn(C.DT, F.lit(label_day))


def samples_day(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``samples``: the training samples labelled by ``run_date``'s events."""
    as_of = run_date - dt.timedelta(days=1)
    # The loss predictor comes from MLflow while Spark looks for yesterday's candidates.
    has_candidates, (predictor, run_id) = concurrently(
        [
            lambda: read_partition(spark, settings, CANDIDATES, as_of).limit(1).count() > 0,
            lambda: latest_predictor(settings, as_of),
        ]
    )
    if not has_candidates:
        log.warning("no candidates for %s: no training samples labelled on %s", as_of, run_date)
        return {"rows.features.training_samples": 0.0}
    if predictor is None:
        log.info("no loss predictor from the %s ranker run: learned weight 1.0", as_of)
    samples = training_samples(spark, settings, run_date, predictor).cache()
    stats = samples.agg(
        F.count(F.when(F.col(C.LABEL) > 0, 1)).alias("positives"),
        F.avg(C.IMPORTANCE).alias("mean_importance"),
    ).first()
    assert stats is not None
    figures = quality.write_checked(spark, settings, [(TRAINING_SAMPLES, samples)], run_date)
    return {
        **figures,
        "positives": float(stats["positives"]),
        "mean_importance": float(stats["mean_importance"] or 0.0),
        "learned_weight_from_predictor": 1.0 if run_id else 0.0,
    }


def latest_predictor(settings: Settings, day: dt.date) -> tuple[LossPredictor | None, str]:
    """The loss predictor the ranker stage of ``day`` trained, and its run id (none: None, "")."""
    try:
        run = tracking.latest_run(settings, C.TRAIN_RANKER, day)
    except LookupError:
        return None, ""
    predictor = load_predictor(run.info.run_id)
    return predictor, run.info.run_id if predictor is not None else ""
