"""Category completion: predict a missing category from behaviour, with LightGBM.

Evidence about an item's category is the company it keeps: the items the same user touched on
the same day. Per item and top-level category ``c`` the features hold the share of that
co-occurrence weight (views, carts and purchases weighted by ``features.event_weights``) that
goes to items whose *catalogue* top category is ``c``; an item's own label is never part of
its own features. Price and the shape of its popularity complete the picture.

Steps of :func:`complete_categories`:

1. features of every item, in Spark (:func:`item_behaviour_features`); linear in the rows of
   ``features.user_item_daily``: per user-day category sums first, then each item subtracts
   its own contribution (no item x item pairs);
2. the single-node step (rule 9): the categorised items' features are collected to the driver
   after checking their count against ``completion.max_training_rows``, split by a hash of
   the item id into train / validation (early stopping) / holdout, and a multiclass LightGBM
   model is fitted; holdout top-1 / top-3 accuracy is compared with predicting the most
   frequent category. The model is then refitted on all categorised items with the number
   of rounds early stopping chose; that refit is the one that fills;
3. prediction for the uncategorised items with behaviour, distributed with ``mapInPandas``
   (the model is broadcast as its text dump);
4. leaf refinement: among the catalogue leaves of co-occurring items under the predicted top
   category, the most voted one, with confidence ``probability x vote share``;
5. fill: the leaf if its confidence reaches ``leaf_min_confidence``, else the top category if
   its probability reaches ``min_confidence``, else nothing. Only rows without a category
   source are filled, marked ``predicted``; nothing is filled when the model does not beat the
   baseline on the holdout.

The Spark-side alternative to step 2 at larger scale is Spark MLlib's multiclass classifiers
on the same feature frame; it is not needed at the catalogue sizes we run (one row per
categorised item).

The rules cited by number are those of docs/architecture.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import CompletionSettings, Settings
from recsys_lib.dates import window
from recsys_lib.spark import concurrently
from recsys_lib.top_n import top_n_per
from recsys_lib.windows import event_weight, within

if TYPE_CHECKING:
    import lightgbm as lgb

log = logging.getLogger(__name__)

# MLflow stage tag and the model name in ops.model_evaluation.
STAGE = "items"
MODEL_NAME = "category_completion"
MODEL_ARTIFACT = "model"
MODEL_FILE = "category_model.txt"
META_FILE = "category_model.json"
VARIANT_MODEL = "lightgbm"
VARIANT_BASELINE = "most_frequent"
VARIANT_LEAF = "leaf_vote"
METRIC_ACCURACY = "accuracy"
METRIC_FILLED_PRECISION = "filled_precision"
METRIC_FILLED_COVERAGE = "filled_coverage"

# Single-node training: threads (one below SMALL_TRAINING_ROWS: on a busy 2-core machine a
# second OpenMP thread made a 1.4k-row fit 10x slower), and the share of the non-holdout
# items used for early stopping.
TRAIN_THREADS = 2
SMALL_TRAINING_ROWS = 100_000
VALID_SHARE = 0.15
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {C.VIEW: 1.0, C.CART: 4.0, C.PURCHASE: 8.0}
# Features are rounded so that Spark's summation order cannot move a histogram bin edge.
FEATURE_DECIMALS = 9

# Feature columns besides the per-category shares.
SHARE = "share_"  # mean over the item's user-days of the other items' category distribution
MASS_SHARE = "mass_share_"  # share of the summed co-occurrence weight
COOC_MASS = "cooc_log_mass"
COOC_USER_DAYS = "cooc_user_days"
KNOWN_SHARE = "cooc_known_share"
LOG_PRICE = "log_price"
PRICE_MISSING = "price_missing"
LOG_VIEWS = "log_views"
LOG_CARTS = "log_carts"
LOG_PURCHASES = "log_purchases"
CART_RATE = "cart_rate"
PURCHASE_RATE = "purchase_rate"
LOG_USERS = "log_users"
ACTIVE_DAYS = "active_days"
HAS_BEHAVIOUR = "has_behaviour"
BASE_FEATURES = (
    COOC_MASS,
    COOC_USER_DAYS,
    KNOWN_SHARE,
    LOG_PRICE,
    PRICE_MISSING,
    LOG_VIEWS,
    LOG_CARTS,
    LOG_PURCHASES,
    CART_RATE,
    PURCHASE_RATE,
    LOG_USERS,
    ACTIVE_DAYS,
)

# Intermediate and output columns.
WEIGHT = "_weight"
OWN_TOP = "_own_top"
OWN_LEAF = "_own_leaf"
LEAF_ID = "leaf_id"
VOTE = "vote"
LEAF_SHARE = "leaf_share"
PREDICTED_TOP = "predicted_top_category_id"
PROBABILITY = "probability"
TOP_K_CATEGORIES = "top_k_categories"
TOP_K_PROBABILITIES = "top_k_probabilities"
FILL_CATEGORY = "fill_category_id"
FILL_CONFIDENCE = "fill_confidence"
FILL_IS_LEAF = "fill_is_leaf"

PREDICTION_SCHEMA = T.StructType(
    [
        T.StructField(C.ITEM_ID, T.LongType(), False),
        T.StructField(PREDICTED_TOP, T.LongType(), False),
        T.StructField(PROBABILITY, T.DoubleType(), False),
        T.StructField(TOP_K_CATEGORIES, T.ArrayType(T.LongType(), False), False),
        T.StructField(TOP_K_PROBABILITIES, T.ArrayType(T.DoubleType(), False), False),
    ]
)


class CompletionMemoryError(MemoryError):
    """More categorised items than the single-node training step accepts."""


@dataclass(frozen=True)
class CompletionResult:
    """``items``: the input rows, the filled ones with source ``predicted``; ``evaluation``:
    (variant, metric, k, value) rows on the holdout; ``figures``: counts, accuracies and
    seconds; ``predictions``: every prediction for an uncategorised item (before the
    confidence thresholds), or None without an accepted model; ``note``: why nothing was
    filled, if so. ``items`` and ``predictions`` rest on cached frames (the predictions and
    fills, a few rows per uncategorised item): write them, then let them go."""

    items: DataFrame
    evaluation: list[tuple[str, str, int, float]]
    figures: dict[str, float]
    predictions: DataFrame | None = None
    run_id: str | None = None
    note: str = ""


@dataclass
class TrainedModel:
    """The holdout evaluation of the model and the refit that fills."""

    classes: list[int]
    feature_columns: list[str]
    model_text: str
    best_iteration: int
    evaluation: list[tuple[str, str, int, float]]
    figures: dict[str, float]
    holdout: pd.DataFrame  # item_id, true class, predicted class, probability
    importance: dict[str, float] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """Beats the most-frequent baseline at top-1 on a non-empty holdout."""
        return self.figures["n_holdout"] > 0 and (
            self.figures["holdout_top1"] > self.figures["baseline_top1"]
        )

    @property
    def version(self) -> str:
        return "catmodel-" + hashlib.sha256(self.model_text.encode()).hexdigest()[:16]


# --- features (Spark) ----------------------------------------------------------------------


def share_columns(top_categories: Sequence[int]) -> list[str]:
    """Names of the per-category share features, in ``top_categories`` order."""
    return [f"{prefix}{c}" for prefix in (SHARE, MASS_SHARE) for c in top_categories]


def feature_columns(top_categories: Sequence[int]) -> list[str]:
    """Every model feature of :func:`item_behaviour_features`, in a fixed order."""
    return [*share_columns(top_categories), *BASE_FEATURES]


def _catalogue_labelled() -> Column:
    return (F.col(C.CATEGORY_SOURCE) == F.lit(C.SOURCE_CATALOGUE)) & F.col(
        C.TOP_CATEGORY_ID
    ).isNotNull()


def _weighted(interactions: DataFrame, event_weights: Mapping[str, float]) -> DataFrame:
    return interactions.select(
        C.DT,
        C.USER_ID,
        C.ITEM_ID,
        C.VIEWS,
        C.CARTS,
        C.PURCHASES,
        event_weight(event_weights).cast("double").alias(WEIGHT),
    ).filter(F.col(WEIGHT) > 0)


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def item_behaviour_features(
    interactions: DataFrame,
    items: DataFrame,
    top_categories: list[int],
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
) -> DataFrame:
    """One row per item of ``items``: ``item_id`` and :func:`feature_columns` (doubles).

    ``interactions`` has ``features.user_item_daily``'s columns (dt, user_id, item_id, views,
    carts, purchases); ``items`` has ``clean.items``' (item_id, top_category_id,
    category_source, price). A row's weight ``w`` is its event counts times
    ``event_weights``. For item ``i`` seen in user-day ``d``, the other items of ``d`` with a
    catalogue top category give ``o_c(i, d)``: their weight in category ``c`` (``i``'s own
    weight taken out of its own category), and ``o(i, d) = sum_c o_c``. Then:

    - ``share_<c>``: mean over the user-days with ``o > 0`` of ``o_c / o`` (each user-day
      votes once, so a bot's day with hundreds of views weighs as one);
    - ``mass_share_<c>``: ``sum_d o_c / sum_d o``;
    - ``cooc_log_mass``: ``ln(1 + sum_d o)``; ``cooc_user_days``: user-days with ``o > 0``;
      ``cooc_known_share``: ``sum_d o`` over the weight of all other items of its user-days;
    - ``log_price`` ``ln(1 + price)`` and ``price_missing`` (1/0); ``log_views``,
      ``log_carts``, ``log_purchases`` (``ln(1 + count)``), ``cart_rate`` and
      ``purchase_rate`` (per view), ``log_users`` (distinct users), ``active_days``.

    Shares are null for an item without categorised company. Work is linear in the rows of
    ``interactions`` times the top categories present in their user-days.

    Example: a user-day with item 1 (top 10, weight 1), item 2 (top 20, weight 4) and item 3
    (uncategorised) gives item 1 ``share_20 = 1``, item 2 ``share_10 = 1`` and item 3
    ``share_10 = 0.2``.
    """
    tops = [int(c) for c in top_categories]
    known = items.filter(_catalogue_labelled() & F.col(C.TOP_CATEGORY_ID).isin(tops)).select(
        C.ITEM_ID, F.col(C.TOP_CATEGORY_ID).alias(OWN_TOP)
    )
    rows = _weighted(interactions, event_weights).join(known, C.ITEM_ID, "left")
    # Long format throughout (one row per user-day and category): wide per-category
    # expressions make Spark's optimizer blow up at a few dozen categories.
    own_known = F.when(F.col(OWN_TOP).isNotNull(), F.col(WEIGHT)).otherwise(F.lit(0.0))
    per_day = rows.groupBy(C.DT, C.USER_ID).agg(
        F.sum(WEIGHT).alias("_day_all"), F.sum(own_known).alias("_day_known")
    )
    per_day_top = (
        rows.filter(F.col(OWN_TOP).isNotNull())
        .groupBy(C.DT, C.USER_ID, F.col(OWN_TOP).alias("_top"))
        .agg(F.sum(WEIGHT).alias("_day_top"))
    )
    item_days = rows.join(per_day, [C.DT, C.USER_ID]).select(
        C.DT,
        C.USER_ID,
        C.ITEM_ID,
        C.VIEWS,
        C.CARTS,
        C.PURCHASES,
        WEIGHT,
        OWN_TOP,
        (F.col("_day_all") - F.col(WEIGHT)).alias("_other_all"),
        (F.col("_day_known") - own_known).alias("_other"),
    )
    own_here = F.when(F.col(OWN_TOP) == F.col("_top"), F.col(WEIGHT)).otherwise(F.lit(0.0))
    pivot_values: list[bool | float | int | str] = list(tops)
    per_top = (
        item_days.filter(F.col("_other") > 0)
        .join(per_day_top, [C.DT, C.USER_ID])
        .select(C.ITEM_ID, "_top", "_other", (F.col("_day_top") - own_here).alias("_o"))
        .filter(F.col("_o") > 0)
        .groupBy(C.ITEM_ID)
        .pivot("_top", pivot_values)
        .agg(F.sum("_o").alias("m"), F.sum(F.col("_o") / F.col("_other")).alias("n"))
    )
    agg = (
        item_days.groupBy(C.ITEM_ID)
        .agg(
            F.sum(C.VIEWS).alias(C.VIEWS),
            F.sum(C.CARTS).alias(C.CARTS),
            F.sum(C.PURCHASES).alias(C.PURCHASES),
            F.countDistinct(C.USER_ID).alias("_users"),
            F.countDistinct(C.DT).alias("_days"),
            F.sum("_other_all").alias("_mass_all"),
            F.sum("_other").alias("_mass"),
            F.count(F.when(F.col("_other") > 0, F.lit(1))).alias("_cooc_days"),
        )
        .join(per_top, C.ITEM_ID, "left")
    )
    features = items.select(C.ITEM_ID, C.PRICE).join(agg, C.ITEM_ID, "left")
    views, carts, purchases = (
        F.coalesce(F.col(n), F.lit(0)) for n in (C.VIEWS, C.CARTS, C.PURCHASES)
    )
    mass = F.coalesce(F.col("_mass"), F.lit(0.0))
    cooc_days = F.coalesce(F.col("_cooc_days"), F.lit(0))
    values: dict[str, Column] = {}
    for c in tops:
        values[f"{SHARE}{c}"] = _ratio(F.coalesce(F.col(f"{c}_n"), F.lit(0.0)), cooc_days)
        values[f"{MASS_SHARE}{c}"] = _ratio(F.coalesce(F.col(f"{c}_m"), F.lit(0.0)), mass)
    values.update(
        {
            COOC_MASS: F.log1p(mass),
            COOC_USER_DAYS: cooc_days,
            KNOWN_SHARE: _ratio(mass, F.col("_mass_all")),
            LOG_PRICE: F.log1p(F.when(F.col(C.PRICE) >= 0, F.col(C.PRICE))),
            PRICE_MISSING: F.col(C.PRICE).isNull().cast("double"),
            LOG_VIEWS: F.log1p(views),
            LOG_CARTS: F.log1p(carts),
            LOG_PURCHASES: F.log1p(purchases),
            CART_RATE: _ratio(carts, views),
            PURCHASE_RATE: _ratio(purchases, views),
            LOG_USERS: F.log1p(F.coalesce(F.col("_users"), F.lit(0))),
            ACTIVE_DAYS: F.coalesce(F.col("_days"), F.lit(0)),
        }
    )
    return features.select(
        C.ITEM_ID,
        *[
            F.round(values[name].cast("double"), FEATURE_DECIMALS).alias(name)
            for name in feature_columns(tops)
        ],
        (views + carts + purchases > 0).alias(HAS_BEHAVIOUR),
    )


def item_leaf_votes(
    interactions: DataFrame,
    items: DataFrame,
    categories: DataFrame,
    targets: DataFrame | None = None,
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
) -> DataFrame:
    """(item_id, top_category_id, leaf_id, vote): the catalogue leaves (below the top level)
    of the items co-occurring with each item of ``targets`` (item_id; all items if None).

    Per user-day, each leaf's share of the weight of the other items with a catalogue leaf
    (the item's own weight out), summed over the item's user-days. Rows are only built for
    the targets, so the work is their rows times the distinct leaves of their user-days.
    """
    leaves = (
        items.filter(F.col(C.CATEGORY_SOURCE) == F.lit(C.SOURCE_CATALOGUE))
        .select(C.ITEM_ID, C.CATEGORY_ID)
        .join(
            categories.filter(
                F.col("is_leaf")
                & (F.col(C.CATEGORY_DEPTH) > 0)
                & F.col(C.TOP_CATEGORY_ID).isNotNull()
            ).select(C.CATEGORY_ID, C.TOP_CATEGORY_ID),
            C.CATEGORY_ID,
        )
        .select(C.ITEM_ID, F.col(C.CATEGORY_ID).alias(OWN_LEAF), C.TOP_CATEGORY_ID)
    )
    rows = _weighted(interactions, event_weights).select(C.DT, C.USER_ID, C.ITEM_ID, WEIGHT)
    with_leaf = rows.join(leaves, C.ITEM_ID)
    per_leaf = with_leaf.groupBy(C.DT, C.USER_ID, OWN_LEAF, C.TOP_CATEGORY_ID).agg(
        F.sum(WEIGHT).alias("_leaf_weight")
    )
    per_day = per_leaf.groupBy(C.DT, C.USER_ID).agg(F.sum("_leaf_weight").alias("_day_leaves"))
    wanted = rows if targets is None else rows.join(targets.select(C.ITEM_ID), C.ITEM_ID, "semi")
    wanted = wanted.join(
        leaves.select(C.ITEM_ID, F.col(OWN_LEAF).alias("_target_leaf")), C.ITEM_ID, "left"
    )
    own = F.when(F.col("_target_leaf").isNotNull(), F.col(WEIGHT)).otherwise(F.lit(0.0))
    own_here = F.when(F.col("_target_leaf") == F.col(OWN_LEAF), F.col(WEIGHT)).otherwise(F.lit(0.0))
    votes = (
        wanted.join(per_day, [C.DT, C.USER_ID])
        .withColumn("_other", F.col("_day_leaves") - own)
        .filter(F.col("_other") > 0)
        .join(per_leaf, [C.DT, C.USER_ID])
        .select(
            C.ITEM_ID,
            C.TOP_CATEGORY_ID,
            F.col(OWN_LEAF).alias(LEAF_ID),
            ((F.col("_leaf_weight") - own_here) / F.col("_other")).alias(VOTE),
        )
        .filter(F.col(VOTE) > 0)
    )
    return votes.groupBy(C.ITEM_ID, C.TOP_CATEGORY_ID, LEAF_ID).agg(
        F.round(F.sum(VOTE), FEATURE_DECIMALS).alias(VOTE)
    )


def best_leaves(votes: DataFrame) -> DataFrame:
    """(item_id, top_category_id, leaf_id, leaf_share): per item and top category the most
    voted leaf (ties: the smaller id) and its share of the votes under that top category."""
    group = Window.partitionBy(C.ITEM_ID, C.TOP_CATEGORY_ID)
    totalled = votes.withColumn("_total", F.sum(VOTE).over(group))
    best = top_n_per(
        totalled, [C.ITEM_ID, C.TOP_CATEGORY_ID], [F.desc(VOTE), F.asc(LEAF_ID)], 1, "_rank"
    )
    return best.select(
        C.ITEM_ID, C.TOP_CATEGORY_ID, LEAF_ID, (F.col(VOTE) / F.col("_total")).alias(LEAF_SHARE)
    )


# --- training (driver) ---------------------------------------------------------------------


def unit_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-uniform value in [0, 1) per id (splitmix64 of id and seed)."""
    mask = (1 << 64) - 1
    with np.errstate(over="ignore"):
        z = np.asarray(ids).astype(np.int64).astype(np.uint64)
        z = z ^ np.uint64((seed * 0x9E3779B97F4A7C15) & mask)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_parts(ids: np.ndarray, holdout_share: float, seed: int) -> np.ndarray:
    """'holdout', 'valid' or 'train' per id: a stable split by :func:`unit_hash`.

    The holdout is ``holdout_share`` of the ids; the validation part (early stopping) is
    ``VALID_SHARE`` of the rest. An id keeps its part whatever other ids are present.
    """
    u = unit_hash(ids, seed)
    parts = np.full(len(u), "train", dtype=object)
    parts[u >= 1.0 - VALID_SHARE * (1.0 - holdout_share)] = "valid"
    parts[u < holdout_share] = "holdout"
    return parts


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among their ``k`` most probable classes (ties: the lower
    class index first); 0 for no rows."""
    if len(labels) == 0:
        return 0.0
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean((order == labels[:, None]).any(axis=1)))


def most_frequent_accuracy(train_labels: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Accuracy of always guessing the ``k`` most frequent training classes (ties: lower)."""
    if len(labels) == 0:
        return 0.0
    classes, counts = np.unique(train_labels, return_counts=True)
    best = classes[np.lexsort((classes, -counts))][:k]
    return float(np.isin(labels, best).mean())


def _params(cs: CompletionSettings, n_classes: int, num_threads: int) -> dict[str, Any]:
    return {
        "objective": "multiclass",
        "num_class": n_classes,
        "learning_rate": cs.learning_rate,
        "num_leaves": cs.num_leaves,
        "seed": cs.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
        "verbosity": -1,
    }


def fit_booster(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    cs: CompletionSettings,
    *,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    num_boost_round: int | None = None,
    num_threads: int = TRAIN_THREADS,
) -> lgb.Booster:
    """Multiclass LightGBM; with ``valid``, early stopping on it (multi_logloss)."""
    import lightgbm as lgb

    names = [f"f{i}" for i in range(x.shape[1])]
    train = lgb.Dataset(x, y, feature_name=names, free_raw_data=False)
    callbacks: list[Callable[..., Any]] = []
    valid_sets: list[lgb.Dataset] = []
    if valid is not None and len(valid[1]) > 0:
        valid_sets = [lgb.Dataset(valid[0], valid[1], reference=train, feature_name=names)]
        callbacks = [lgb.early_stopping(cs.early_stopping_rounds, verbose=False)]
    return lgb.train(
        _params(cs, n_classes, num_threads),
        train,
        num_boost_round=num_boost_round or cs.num_boost_round,
        valid_sets=valid_sets,
        callbacks=callbacks,
    )


def train_category_model(
    frame: pd.DataFrame,
    columns: list[str],
    cs: CompletionSettings,
    *,
    num_threads: int | None = None,
) -> TrainedModel:
    """Fit, evaluate on the holdout, refit on everything (see the module docstring).

    ``frame`` has ``item_id``, ``top_category_id`` (the label) and ``columns``; it needs at
    least two classes. ``num_threads``: LightGBM's threads (default: 1 below
    ``SMALL_TRAINING_ROWS`` rows, else ``TRAIN_THREADS``).
    """
    frame = frame.sort_values(C.ITEM_ID, kind="stable").reset_index(drop=True)
    classes = sorted(int(c) for c in frame[C.TOP_CATEGORY_ID].unique())
    if len(classes) < 2:
        raise ValueError(f"need at least two categories to train, got {classes}")
    ids = frame[C.ITEM_ID].to_numpy(dtype=np.int64)
    x = frame[columns].to_numpy(dtype=np.float64)
    y = np.searchsorted(classes, frame[C.TOP_CATEGORY_ID].to_numpy(dtype=np.int64))
    parts = split_parts(ids, cs.holdout_share, cs.seed)
    fit_rows, valid_rows, holdout_rows = (parts == p for p in ("train", "valid", "holdout"))
    if num_threads is None:
        num_threads = 1 if len(frame) < SMALL_TRAINING_ROWS else TRAIN_THREADS

    started = time.perf_counter()
    booster = fit_booster(
        x[fit_rows],
        y[fit_rows],
        len(classes),
        cs,
        valid=(x[valid_rows], y[valid_rows]),
        num_threads=num_threads,
    )
    best = booster.best_iteration or booster.current_iteration()
    proba = np.asarray(booster.predict(x[holdout_rows], num_iteration=best, num_threads=1))
    proba = proba.reshape(len(y[holdout_rows]), len(classes))
    y_holdout = y[holdout_rows]
    y_known = y[~holdout_rows]
    predicted = proba.argmax(axis=1) if len(y_holdout) else np.zeros(0, dtype=np.int64)
    probability = proba.max(axis=1) if len(y_holdout) else np.zeros(0)
    above = probability >= cs.min_confidence
    figures = {
        "n_train": float(fit_rows.sum()),
        "n_valid": float(valid_rows.sum()),
        "n_holdout": float(holdout_rows.sum()),
        "n_classes": float(len(classes)),
        "best_iteration": float(best),
        "train_threads": float(num_threads),
        "holdout_top1": top_k_accuracy(proba, y_holdout, 1),
        "holdout_top3": top_k_accuracy(proba, y_holdout, 3),
        "baseline_top1": most_frequent_accuracy(y_known, y_holdout, 1),
        "baseline_top3": most_frequent_accuracy(y_known, y_holdout, 3),
        "holdout_filled_coverage": float(above.mean()) if len(above) else 0.0,
        "holdout_filled_precision": (
            float((predicted[above] == y_holdout[above]).mean()) if above.any() else 0.0
        ),
    }
    evaluation = [
        (VARIANT_MODEL, METRIC_ACCURACY, 1, figures["holdout_top1"]),
        (VARIANT_MODEL, METRIC_ACCURACY, 3, figures["holdout_top3"]),
        (VARIANT_BASELINE, METRIC_ACCURACY, 1, figures["baseline_top1"]),
        (VARIANT_BASELINE, METRIC_ACCURACY, 3, figures["baseline_top3"]),
        (VARIANT_MODEL, METRIC_FILLED_COVERAGE, 1, figures["holdout_filled_coverage"]),
        (VARIANT_MODEL, METRIC_FILLED_PRECISION, 1, figures["holdout_filled_precision"]),
    ]
    # The model that fills sees every categorised item, for as many rounds as early stopping
    # found best on the validation part.
    final = fit_booster(x, y, len(classes), cs, num_boost_round=best, num_threads=num_threads)
    figures["train_seconds"] = time.perf_counter() - started
    gains = final.feature_importance(importance_type="gain")
    importance = {
        name: round(float(g), 3)
        for name, g in sorted(zip(columns, gains, strict=True), key=lambda p: -p[1])
    }
    holdout = pd.DataFrame(
        {
            C.ITEM_ID: ids[holdout_rows],
            C.TOP_CATEGORY_ID: np.asarray(classes, dtype=np.int64)[y_holdout],
            PREDICTED_TOP: np.asarray(classes, dtype=np.int64)[predicted],
            PROBABILITY: probability,
        }
    )
    return TrainedModel(
        classes=classes,
        feature_columns=list(columns),
        model_text=final.model_to_string(),
        best_iteration=int(best),
        evaluation=evaluation,
        figures=figures,
        holdout=holdout,
        importance=importance,
    )


# --- prediction (distributed) --------------------------------------------------------------


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
    predictions: DataFrame, leaves: DataFrame, min_confidence: float, leaf_min_confidence: float
) -> DataFrame:
    """(item_id, fill_category_id, fill_confidence, fill_is_leaf) for the predictions that
    reach a threshold: the best leaf under the predicted top category when
    ``probability x leaf_share >= leaf_min_confidence``, else the top category when
    ``probability >= min_confidence``. ``leaves`` is :func:`best_leaves`' output."""
    joined = predictions.join(
        leaves.withColumnRenamed(C.TOP_CATEGORY_ID, PREDICTED_TOP),
        [C.ITEM_ID, PREDICTED_TOP],
        "left",
    )
    leaf_confidence = F.col(PROBABILITY) * F.coalesce(F.col(LEAF_SHARE), F.lit(0.0))
    leaf_ok = F.col(LEAF_ID).isNotNull() & (leaf_confidence >= F.lit(leaf_min_confidence))
    top_ok = F.col(PROBABILITY) >= F.lit(min_confidence)
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


# --- the stage -----------------------------------------------------------------------------


def _window(interactions: DataFrame, run_date: dt.date, window_days: int) -> DataFrame:
    return interactions.filter(within(window(run_date, window_days)))


def _leaf_evaluation(
    spark: SparkSession,
    holdout: pd.DataFrame,
    leaves: DataFrame,
    items: DataFrame,
    categories: DataFrame,
    cs: CompletionSettings,
) -> list[tuple[str, str, int, float]]:
    """Leaf refinement on the holdout items whose catalogue category is a leaf below the top
    level: accuracy of the voted leaf under the *true* top category, and the precision and
    coverage of the leaf fill (under the predicted one) at ``leaf_min_confidence``."""
    if holdout.empty:
        return []
    predicted = spark.createDataFrame(
        holdout[[C.ITEM_ID, PREDICTED_TOP, PROBABILITY]].astype(
            {C.ITEM_ID: "int64", PREDICTED_TOP: "int64", PROBABILITY: "float64"}
        )
    )
    truth = (
        items.select(C.ITEM_ID, C.CATEGORY_ID, C.TOP_CATEGORY_ID)
        .join(predicted.select(C.ITEM_ID, PREDICTED_TOP, PROBABILITY), C.ITEM_ID)
        .join(
            categories.filter(F.col("is_leaf") & (F.col(C.CATEGORY_DEPTH) > 0)).select(
                C.CATEGORY_ID
            ),
            C.CATEGORY_ID,
        )
    )
    both = truth.join(leaves, [C.ITEM_ID, C.TOP_CATEGORY_ID], "left").join(
        leaves.select(
            C.ITEM_ID,
            F.col(C.TOP_CATEGORY_ID).alias(PREDICTED_TOP),
            F.col(LEAF_ID).alias("_pred_leaf"),
            F.col(LEAF_SHARE).alias("_pred_share"),
        ),
        [C.ITEM_ID, PREDICTED_TOP],
        "left",
    )
    confident = (F.col(PROBABILITY) * F.col("_pred_share")) >= F.lit(cs.leaf_min_confidence)
    right = F.col("_pred_leaf") == F.col(C.CATEGORY_ID)
    a = both.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(F.when(F.col(LEAF_ID) == F.col(C.CATEGORY_ID), F.lit(1))).alias("right"),
        F.count(F.when(confident, F.lit(1))).alias("filled"),
        F.count(F.when(confident & right, F.lit(1))).alias("filled_right"),
    ).first()
    if a is None or not a["n"]:
        return []
    return [
        (VARIANT_LEAF, METRIC_ACCURACY, 1, a["right"] / a["n"]),
        (VARIANT_LEAF, METRIC_FILLED_COVERAGE, 1, a["filled"] / a["n"]),
        (
            VARIANT_LEAF,
            METRIC_FILLED_PRECISION,
            1,
            a["filled_right"] / a["filled"] if a["filled"] else 0.0,
        ),
    ]


def complete_categories(
    spark: SparkSession,
    settings: Settings,
    items: DataFrame,
    interactions: DataFrame,
    categories: DataFrame,
    run_date: dt.date,
    *,
    input_versions: Mapping[str, int] | None = None,
) -> CompletionResult:
    """Fill missing categories of ``items`` (``clean.items`` rows) from behaviour.

    ``interactions``: ``features.user_item_daily`` rows (only the ``completion.window_days``
    ending ``run_date`` are used); ``categories``: (category_id, category_path,
    top_category_id, category_depth, is_leaf). Tracked as an MLflow run (tag
    ``recsys.stage=items``); ``input_versions`` (parameter name -> Delta version, e.g.
    ``input.raw.items.delta_version``) are logged as parameters, as given. Raises
    :class:`CompletionMemoryError` above ``completion.max_training_rows`` categorised items.
    """
    cs = settings.completion
    started = time.perf_counter()
    weights = dict(settings.features.event_weights)
    window = _window(interactions, run_date, cs.window_days)
    labelled = _catalogue_labelled()
    tops = sorted(
        int(r[0]) for r in items.filter(labelled).select(C.TOP_CATEGORY_ID).distinct().collect()
    )
    features = item_behaviour_features(window, items, tops, event_weights=weights).join(
        items.select(
            C.ITEM_ID,
            C.TOP_CATEGORY_ID,
            labelled.alias("_labelled"),
            F.col(C.CATEGORY_SOURCE).isNull().alias("_missing"),
        ),
        C.ITEM_ID,
    )
    features = features.cache()
    counts = features.agg(
        F.count(F.when(F.col("_labelled"), F.lit(1))).alias("labelled"),
        F.count(F.when(F.col("_labelled") & F.col(HAS_BEHAVIOUR), F.lit(1))).alias("train"),
        F.count(F.when(F.col("_missing"), F.lit(1))).alias("missing"),
        F.count(F.when(F.col("_missing") & F.col(HAS_BEHAVIOUR), F.lit(1))).alias("targets"),
        F.countDistinct(
            F.when(F.col("_labelled") & F.col(HAS_BEHAVIOUR), F.col(C.TOP_CATEGORY_ID))
        ).alias("classes"),
    ).first()
    assert counts is not None
    figures: dict[str, float] = {
        "labelled": float(counts["labelled"]),
        "labelled_with_behaviour": float(counts["train"]),
        "uncategorised": float(counts["missing"]),
        "uncategorised_with_behaviour": float(counts["targets"]),
        "top_categories": float(len(tops)),
        "model_trained": 0.0,
        "model_accepted": 0.0,
        "predicted": 0.0,
        "filled": 0.0,
        "filled_leaf": 0.0,
        "filled_top": 0.0,
        "features_seconds": time.perf_counter() - started,
    }
    log.info("category completion inputs: %s", figures)
    n_labelled, n_classes = int(counts["train"]), int(counts["classes"])
    note = ""
    if n_labelled < cs.min_labelled_items:
        note = (
            f"only {n_labelled} categorised items with behaviour in the window, below "
            f"completion.min_labelled_items={cs.min_labelled_items}: no model, nothing filled"
        )
    elif n_classes < 2:
        note = f"categorised items span {n_classes} top category: no model, nothing filled"
    if note:
        log.warning("category completion: %s", note)
        figures["seconds"] = time.perf_counter() - started
        run_id = _track(settings, run_date, figures, [], None, note, input_versions, weights)
        features.unpersist()
        return CompletionResult(items, [], figures, None, run_id, note)

    if n_labelled > cs.max_training_rows:
        features.unpersist()
        raise CompletionMemoryError(
            f"category completion trains on the driver and would collect {n_labelled} "
            f"categorised items, above completion.max_training_rows={cs.max_training_rows} "
            f"({len(feature_columns(tops)) + 2} doubles each, "
            f"~{n_labelled * (len(feature_columns(tops)) + 2) * 8 / 2**20:.0f} MiB). "
            "Shorten completion.window_days, raise the bound if the driver has the memory, "
            "or train with a Spark MLlib classifier on the same features."
        )
    columns = feature_columns(tops)
    frame = (
        features.filter(F.col("_labelled") & F.col(HAS_BEHAVIOUR))
        .select(C.ITEM_ID, C.TOP_CATEGORY_ID, *columns)
        .toPandas()
    )
    model = train_category_model(frame, columns, cs)
    del frame
    figures.update(model.figures)
    figures["model_trained"] = 1.0
    evaluation = list(model.evaluation)

    predict_started = time.perf_counter()
    targets = features.filter(F.col("_missing") & F.col(HAS_BEHAVIOUR))
    holdout_ids = spark.createDataFrame(
        model.holdout[[C.ITEM_ID]].astype("int64"), T.StructType([PREDICTION_SCHEMA[C.ITEM_ID]])
    )
    vote_targets = targets.select(C.ITEM_ID).unionByName(holdout_ids)
    leaves = best_leaves(
        item_leaf_votes(window, items, categories, vote_targets, event_weights=weights)
    ).cache()
    predictions = fill = None
    if model.accepted:
        figures["model_accepted"] = 1.0
        predictions = predict_top_categories(
            targets, model.model_text, model.feature_columns, model.classes
        ).cache()
        fill = choose_fill(predictions, leaves, cs.min_confidence, cs.leaf_min_confidence)
        fill = fill.cache()

    def fill_counts() -> tuple[float, float, float]:
        if predictions is None or fill is None:
            return 0.0, 0.0, 0.0
        row = fill.agg(
            F.count(F.lit(1)).alias("filled"),
            F.count(F.when(F.col(FILL_IS_LEAF), F.lit(1))).alias("leaf"),
        ).first()
        assert row is not None
        return float(predictions.count()), float(row["filled"]), float(row["leaf"])

    # The holdout's leaf evaluation and the fill's counts do not depend on each other.
    leaf_figures, (predicted, filled, filled_leaf) = concurrently(
        [
            lambda: _leaf_evaluation(spark, model.holdout, leaves, items, categories, cs),
            fill_counts,
        ]
    )
    evaluation += leaf_figures
    for variant, metric, _k, value in evaluation:
        if variant == VARIANT_LEAF:
            figures[f"leaf_{metric}"] = value

    if fill is None:
        note = (
            f"the model does not beat the most-frequent baseline on the holdout (top-1 "
            f"{figures['holdout_top1']:.3f} vs {figures['baseline_top1']:.3f}): nothing filled"
        )
        log.warning("category completion: %s", note)
        result_items = items
    else:
        figures["predicted"] = predicted
        figures["filled"] = filled
        figures["filled_leaf"] = filled_leaf
        figures["filled_top"] = filled - filled_leaf
        result_items = apply_fill(items, fill, categories)
    figures["predict_seconds"] = time.perf_counter() - predict_started
    figures["seconds"] = time.perf_counter() - started
    run_id = _track(settings, run_date, figures, evaluation, model, note, input_versions, weights)
    features.unpersist()
    log.info("category completion: %s", figures)
    return CompletionResult(result_items, evaluation, figures, predictions, run_id, note)


def _track(
    settings: Settings,
    run_date: dt.date,
    figures: Mapping[str, float],
    evaluation: Sequence[tuple[str, str, int, float]],
    model: TrainedModel | None,
    note: str,
    input_versions: Mapping[str, int] | None,
    event_weights: Mapping[str, float],
) -> str:
    """One MLflow run: settings as parameters, figures and evaluation as metrics, the model
    (text dump plus classes and feature names) as an artifact. Returns the run id."""
    import mlflow

    from recsys_lib import tracking

    tags = {tracking.MODEL_VERSION_TAG: model.version} if model is not None else {}
    if note:
        tags["recsys.note"] = note[:5000]
    with tracking.stage_run(settings, STAGE, run_date, tags=tags, name=MODEL_NAME) as run:
        params: dict[str, Any] = {
            **{f"completion.{k}": v for k, v in dataclasses.asdict(settings.completion).items()},
            "event_weights": json.dumps(dict(event_weights), sort_keys=True),
            "valid_share": VALID_SHARE,
        }
        params.update(input_versions or {})
        mlflow.log_params(params)
        metrics = dict(figures)
        metrics.update({f"{variant}.{metric}.{k}": v for variant, metric, k, v in evaluation})
        mlflow.log_metrics(metrics)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / MODEL_FILE).write_text(model.model_text)
                meta = {
                    "classes": model.classes,
                    "feature_columns": model.feature_columns,
                    "best_iteration": model.best_iteration,
                    "feature_importance_gain": model.importance,
                }
                (Path(tmp) / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
                mlflow.log_artifacts(tmp, MODEL_ARTIFACT)
        return str(run.info.run_id)
