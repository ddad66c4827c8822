"""Stage ``samples``: ranking features of candidates, and the labelled training samples.

The features of a candidate list of day A (``features.candidates``, dt = A) use only tables
of day A: the candidate's source scores and ranks, the user's portrait, the item's
features, and the user's events on the item and its category in the 30 days ending on A.
The recommend stage computes them for today's candidates; this stage computes them for
yesterday's candidates and labels each with the user's best event on the item today
(3 purchase, 2 cart, 1 view, 0 none), so a sample never sees its own label day
(``features.training_samples``, dt = the label day). Rules: docs/ranker.md.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib import quality, tracking
from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.importance import (
    ITEM_VIEWS_30D,
    LossPredictor,
    median_item_views,
    static_components,
    with_importance,
)
from recsys_lib.spark import concurrently
from recsys_lib.storage import read_partition, read_window
from recsys_lib.tables import (
    CANDIDATES,
    CLEAN_EVENTS,
    ITEM_FEATURES,
    TRAINING_SAMPLES,
    USER_ITEM_DAILY,
    USER_PORTRAIT,
)
from recsys_lib.windows import within

log = logging.getLogger(__name__)

STAGE = "samples"
INTERACTION_DAYS = 30  # the user x item and user x category features look this far back
_LAST_DAY = "_last_day"


def _as_double(column: str | Column) -> Column:
    value = F.col(column) if isinstance(column, str) else column
    return value.cast("double")


def user_item_history(user_items: DataFrame, as_of: dt.date) -> DataFrame:
    """(user_id, item_id, views, carts, last day) of the ``features.user_item_daily`` rows
    of the 30 days ending on ``as_of``."""
    recent = user_items.filter(within(window(as_of, INTERACTION_DAYS)))
    return recent.groupBy(C.USER_ID, C.ITEM_ID).agg(
        F.sum(C.VIEWS).alias(C.USER_ITEM_VIEWS_30D),
        F.sum(C.CARTS).alias(C.USER_ITEM_CARTS_30D),
        F.max(C.DT).alias(_LAST_DAY),
    )


def category_affinities(portraits: DataFrame, items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """The portraits' top categories as (user_id, category_id, affinity) and their sums per
    top-level category (user_id, top_category_id, affinity)."""
    top = portraits.select(C.USER_ID, F.explode(C.TOP_CATEGORIES).alias("_top")).select(
        C.USER_ID,
        F.col("_top")[C.CATEGORY_ID].alias(C.CATEGORY_ID),
        F.col("_top")[C.AFFINITY].alias(C.AFFINITY),
    )
    tops_of = items.select(C.CATEGORY_ID, C.TOP_CATEGORY_ID).distinct()
    by_top = (
        top.join(tops_of, C.CATEGORY_ID)
        .groupBy(C.USER_ID, C.TOP_CATEGORY_ID)
        .agg(F.sum(C.AFFINITY).alias(C.AFFINITY))
    )
    return top, by_top


def ranking_features(
    candidates: DataFrame,
    portraits: DataFrame,
    items: DataFrame,
    user_items: DataFrame,
    as_of: dt.date,
) -> DataFrame:
    """(user_id, item_id, every column of ``constants.RANKING_FEATURES``) for the
    candidates of ``as_of``; the inputs are that day's portraits and item features and the
    ``features.user_item_daily`` rows of (at least) the 30 days ending on it."""
    users = portraits.select(
        C.USER_ID,
        *[
            _as_double(c).alias(f)
            for c, f in zip(C.USER_FEATURE_SOURCES, C.USER_FEATURES, strict=True)
        ],
    )
    item_columns = items.select(
        C.ITEM_ID,
        C.CATEGORY_ID,
        C.TOP_CATEGORY_ID,
        *[
            _as_double(c).alias(f)
            for c, f in zip(C.ITEM_FEATURE_SOURCES, C.ITEM_FEATURES, strict=True)
        ],
    )
    history = user_item_history(user_items, as_of)
    by_category = (
        history.join(items.select(C.ITEM_ID, C.CATEGORY_ID), C.ITEM_ID)
        .groupBy(C.USER_ID, C.CATEGORY_ID)
        .agg(F.max(_LAST_DAY).alias("_category_last_day"))
    )
    leaf, top = category_affinities(portraits, items)
    days_since = F.datediff(F.lit(as_of), F.col(_LAST_DAY))
    joined = (
        candidates.join(users, C.USER_ID, "left")
        .join(item_columns, C.ITEM_ID, "left")
        .join(history, [C.USER_ID, C.ITEM_ID], "left")
        .join(by_category, [C.USER_ID, C.CATEGORY_ID], "left")
        .join(
            leaf.withColumnRenamed(C.AFFINITY, C.CATEGORY_AFFINITY),
            [C.USER_ID, C.CATEGORY_ID],
            "left",
        )
        .join(
            top.withColumnRenamed(C.AFFINITY, C.TOP_CATEGORY_AFFINITY),
            [C.USER_ID, C.TOP_CATEGORY_ID],
            "left",
        )
    )
    pair = {
        C.CATEGORY_AFFINITY: F.coalesce(C.CATEGORY_AFFINITY, F.lit(0.0)),
        C.TOP_CATEGORY_AFFINITY: F.coalesce(C.TOP_CATEGORY_AFFINITY, F.lit(0.0)),
        C.PRICE_BAND_GAP: F.col("item_price_pct_in_category") - F.col("user_price_band_pct"),
        C.DAYS_SINCE_ITEM_EVENT: days_since,
        C.DAYS_SINCE_CATEGORY_EVENT: F.datediff(F.lit(as_of), F.col("_category_last_day")),
        C.USER_ITEM_VIEWS_30D: F.coalesce(C.USER_ITEM_VIEWS_30D, F.lit(0)),
        C.USER_ITEM_CARTS_30D: F.coalesce(C.USER_ITEM_CARTS_30D, F.lit(0)),
    }
    return joined.select(
        C.USER_ID,
        C.ITEM_ID,
        *[_as_double(c).alias(c) for c in C.CANDIDATE_FEATURES],
        *[_as_double(pair[c]).alias(c) for c in C.PAIR_FEATURES],
        *C.USER_FEATURES,
        *C.ITEM_FEATURES,
    )


def day_labels(events: DataFrame) -> DataFrame:
    """(user_id, item_id, label): each user's best event type on each item in ``events``."""
    label = F.lit(C.LABEL_NONE)
    for event_type, value in C.LABEL_OF_EVENT.items():
        label = F.when(F.col(C.EVENT_TYPE) == event_type, F.lit(value)).otherwise(label)
    return events.groupBy(C.USER_ID, C.ITEM_ID).agg(F.max(label).cast("int").alias(C.LABEL))


def labelled(features: DataFrame, labels: DataFrame) -> DataFrame:
    """``features`` with the label of each (user, item): 0 when the user did nothing with it."""
    return features.join(labels, [C.USER_ID, C.ITEM_ID], "left").withColumn(
        C.LABEL, F.coalesce(F.col(C.LABEL), F.lit(C.LABEL_NONE)).cast("int")
    )


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
    from recsys_lib.ranking import load_predictor

    try:
        run = tracking.latest_run(settings, "train_ranker", day)
    except LookupError:
        return None, ""
    predictor = load_predictor(run.info.run_id)
    return predictor, run.info.run_id if predictor is not None else ""
