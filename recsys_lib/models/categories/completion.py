"""The completion of a day's catalogue: features, training, prediction and fill, in MLflow."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import CompletionSettings, Settings
from recsys_lib.dates import window, within
from recsys_lib.models.categories import (
    FILL_IS_LEAF,
    HAS_BEHAVIOUR,
    LEAF_ID,
    LEAF_SHARE,
    META_FILE,
    METRIC_ACCURACY,
    METRIC_FILLED_COVERAGE,
    METRIC_FILLED_PRECISION,
    MODEL_ARTIFACT,
    MODEL_FILE,
    MODEL_NAME,
    NO_FILL,
    PREDICTED_TOP,
    PREDICTION_SCHEMA,
    PROBABILITY,
    STAGE,
    VALID_SHARE,
    VARIANT_LEAF,
    CompletionMemoryError,
    CompletionResult,
    TrainedModel,
    beats_baseline,
)
from recsys_lib.models.categories.features import (
    _catalogue_labelled,
    best_leaves,
    feature_columns,
    item_behaviour_features,
    item_leaf_votes,
    item_top_votes,
)
from recsys_lib.models.categories.prediction import (
    apply_fill,
    choose_fill,
    predict_top_categories,
)
from recsys_lib.models.categories.training import split_parts, train_category_model
from recsys_lib.models.categories.vote import evaluate_votes, vote_predictions
from recsys_lib.runtime.spark import concurrently

log = logging.getLogger(__name__)


def _window(interactions: DataFrame, run_date: dt.date, window_days: int) -> DataFrame:
    return interactions.filter(within(window(run_date, window_days)))


def _leaf_evaluation(
    spark: SparkSession,
    holdout: pd.DataFrame,
    leaves: DataFrame,
    items: DataFrame,
    categories: DataFrame,
    cs: CompletionSettings,
    min_probability: float,
) -> list[tuple[str, str, int, float]]:
    """Leaf refinement on the holdout items whose catalogue category is a leaf below the top
    level: accuracy of the voted leaf under the *true* top category, and the precision and
    coverage of the leaf fill (under the predicted one) at ``leaf_min_confidence`` and
    ``min_probability``, as :func:`.prediction.choose_fill` fills."""
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
    confident = ((F.col(PROBABILITY) * F.col("_pred_share")) >= F.lit(cs.leaf_min_confidence)) & (
        F.col(PROBABILITY) >= F.lit(min_probability)
    )
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
    status = item_status(window, items).cache()
    counts = status.agg(
        F.count(F.when(F.col("_labelled"), F.lit(1))).alias("labelled"),
        F.count(F.when(F.col("_labelled") & F.col(HAS_BEHAVIOUR), F.lit(1))).alias("train"),
        F.count(F.when(F.col("_missing"), F.lit(1))).alias("missing"),
        F.count(F.when(F.col("_missing") & F.col(HAS_BEHAVIOUR), F.lit(1))).alias("targets"),
        F.countDistinct(
            F.when(F.col("_labelled") & F.col(HAS_BEHAVIOUR), F.col(C.TOP_CATEGORY_ID))
        ).alias("classes"),
        F.countDistinct(F.when(F.col("_labelled"), F.col(C.TOP_CATEGORY_ID))).alias("tops"),
    ).first()
    assert counts is not None
    n_labelled, n_classes = int(counts["train"]), int(counts["classes"])
    vote = n_classes > cs.max_classes
    figures: dict[str, float] = {
        "labelled": float(counts["labelled"]),
        "labelled_with_behaviour": float(counts["train"]),
        "uncategorised": float(counts["missing"]),
        "uncategorised_with_behaviour": float(counts["targets"]),
        "top_categories": float(counts["tops"]),
        "method_vote": float(vote),
        "model_trained": 0.0,
        "model_accepted": 0.0,
        "predicted": 0.0,
        "filled": 0.0,
        "filled_leaf": 0.0,
        "filled_top": 0.0,
    }
    log.info("category completion inputs: %s", figures)
    note = ""
    if not counts["targets"]:
        note = "no uncategorised item has behaviour in the window: nothing to fill, no model"
    elif n_labelled < cs.min_labelled_items:
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
        status.unpersist()
        return CompletionResult(items, [], figures, None, run_id, note)

    targets = status.filter(F.col("_missing") & F.col(HAS_BEHAVIOUR)).select(C.ITEM_ID)
    model: TrainedModel | None = None
    features: DataFrame | None = None
    voted: DataFrame | None = None
    evaluation: TrainedModel | VoteEvaluation
    if vote:
        voted, evaluation, holdout = _voted(spark, window, items, status, targets, cs, weights)
        figures.update(evaluation.figures)
        accepted = evaluation.accepted
        figures["train_seconds"] = 0.0
    else:
        model, features = _trained(window, items, status, cs, weights, figures)
        figures.update(model.figures)
        figures["model_trained"] = 1.0
        evaluation, holdout, accepted = model, model.holdout, model.accepted
    # Counting, building the features (or the vote) and collecting them, without the fit.
    figures["features_seconds"] = time.perf_counter() - started - figures["train_seconds"]
    evaluation_rows = list(evaluation.evaluation)

    predict_started = time.perf_counter()
    holdout_ids = spark.createDataFrame(
        holdout[[C.ITEM_ID]].astype("int64"), T.StructType([PREDICTION_SCHEMA[C.ITEM_ID]])
    )
    vote_targets = targets.unionByName(holdout_ids)
    leaves = best_leaves(
        item_leaf_votes(window, items, categories, vote_targets, event_weights=weights)
    ).cache()
    predictions = fill = None
    # The vote's shares are not probabilities: no fill, top or leaf, below the share its
    # holdout set (vote.vote_threshold).
    top_threshold = figures["vote_threshold"] if vote else cs.min_confidence
    gate = top_threshold if vote else 0.0
    if accepted:
        figures["model_accepted"] = 1.0
        if voted is not None:
            predictions = voted.join(targets, C.ITEM_ID, "semi").cache()
        else:
            assert model is not None and features is not None
            predictions = predict_top_categories(
                features.join(targets, C.ITEM_ID, "semi"),
                model.model_text,
                model.feature_columns,
                model.classes,
            ).cache()
        fill = choose_fill(
            predictions,
            leaves,
            top_threshold,
            cs.leaf_min_confidence,
            min_probability=gate,
        )
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
            lambda: _leaf_evaluation(spark, holdout, leaves, items, categories, cs, gate),
            fill_counts,
        ]
    )
    evaluation_rows += leaf_figures
    for variant, metric, _k, value in evaluation_rows:
        if variant == VARIANT_LEAF:
            figures[f"leaf_{metric}"] = value

    if fill is None:
        note = (
            f"the {'vote' if vote else 'model'} does not beat the most-frequent baseline "
            f"on the holdout (top-1 "
            f"{figures['holdout_top1']:.3f} vs {figures['baseline_top1']:.3f}): nothing filled"
        )
        log.warning("category completion: %s", note)
        result_items = items
    else:
        if top_threshold >= NO_FILL:
            note = (
                f"the vote beats the most-frequent baseline, but on the holdout no share is "
                f"right with completion.min_confidence={cs.min_confidence}: nothing filled"
            )
            log.warning("category completion: %s", note)
        figures["predicted"] = predicted
        figures["filled"] = filled
        figures["filled_leaf"] = filled_leaf
        figures["filled_top"] = filled - filled_leaf
        result_items = apply_fill(items, fill, categories)
    figures["predict_seconds"] = time.perf_counter() - predict_started
    figures["seconds"] = time.perf_counter() - started
    run_id = _track(
        settings, run_date, figures, evaluation_rows, model, note, input_versions, weights
    )
    status.unpersist()
    if features is not None:
        features.unpersist()
    log.info("category completion: %s", figures)
    return CompletionResult(result_items, evaluation_rows, figures, predictions, run_id, note)


def item_status(window: DataFrame, items: DataFrame) -> DataFrame:
    """(item_id, top_category_id, _labelled, _missing, has_behaviour) of every item: whether
    its category comes from the catalogue, is missing, and it has an event in ``window``."""
    active = (
        window.filter(F.col(C.VIEWS) + F.col(C.CARTS) + F.col(C.PURCHASES) > 0)
        .select(C.ITEM_ID)
        .distinct()
        .withColumn(HAS_BEHAVIOUR, F.lit(True))
    )
    return (
        items.select(
            C.ITEM_ID,
            C.TOP_CATEGORY_ID,
            _catalogue_labelled().alias("_labelled"),
            F.col(C.CATEGORY_SOURCE).isNull().alias("_missing"),
        )
        .join(active, C.ITEM_ID, "left")
        .fillna(False, [HAS_BEHAVIOUR])
    )


def _trained(
    window: DataFrame,
    items: DataFrame,
    status: DataFrame,
    cs: CompletionSettings,
    weights: Mapping[str, float],
    figures: Mapping[str, float],
) -> tuple[TrainedModel, DataFrame]:
    """The LightGBM model on the categorised items' behaviour features (one share column per
    top category), and the features of every item, cached. Raises
    :class:`CompletionMemoryError` above ``completion.max_training_rows``."""
    n_labelled = int(figures["labelled_with_behaviour"])
    tops = sorted(
        int(r[0])
        for r in status.filter(F.col("_labelled")).select(C.TOP_CATEGORY_ID).distinct().collect()
    )
    columns = feature_columns(tops)
    if n_labelled > cs.max_training_rows:
        raise CompletionMemoryError(
            f"category completion trains on the driver and would collect {n_labelled} "
            f"categorised items, above completion.max_training_rows={cs.max_training_rows} "
            f"({len(columns) + 2} doubles each, "
            f"~{n_labelled * (len(columns) + 2) * 8 / 2**20:.0f} MiB). "
            "Shorten completion.window_days, raise the bound if the driver has the memory, "
            "or train with a Spark MLlib classifier on the same features."
        )
    features = item_behaviour_features(window, items, tops, event_weights=weights).cache()
    frame = (
        features.join(
            status.filter(F.col("_labelled") & F.col(HAS_BEHAVIOUR)).select(
                C.ITEM_ID, C.TOP_CATEGORY_ID
            ),
            C.ITEM_ID,
        )
        .select(C.ITEM_ID, C.TOP_CATEGORY_ID, *columns)
        .toPandas()
    )
    return train_category_model(frame, columns, cs), features


@dataclass(frozen=True)
class VoteEvaluation:
    """The neighbour vote's holdout rows and figures (the counterpart of a trained model's)."""

    evaluation: list[tuple[str, str, int, float]]
    figures: dict[str, float]

    @property
    def accepted(self) -> bool:
        return beats_baseline(self.figures)


def _voted(
    spark: SparkSession,
    window: DataFrame,
    items: DataFrame,
    status: DataFrame,
    targets: DataFrame,
    cs: CompletionSettings,
    weights: Mapping[str, float],
) -> tuple[DataFrame, VoteEvaluation, pd.DataFrame]:
    """The vote for the targets and the held-out categorised items (cached), its holdout
    evaluation, and the holdout's predictions."""
    labelled = (
        status.filter(F.col("_labelled") & F.col(HAS_BEHAVIOUR))
        .select(C.ITEM_ID, C.TOP_CATEGORY_ID)
        .toPandas()
        .sort_values(C.ITEM_ID, kind="stable")
        .reset_index(drop=True)
    )
    in_holdout = split_parts(labelled[C.ITEM_ID].to_numpy(np.int64), cs.holdout_share, cs.seed)
    in_holdout = in_holdout == "holdout"
    held = spark.createDataFrame(
        labelled.loc[in_holdout, [C.ITEM_ID]].astype("int64"),
        T.StructType([PREDICTION_SCHEMA[C.ITEM_ID]]),
    )
    wanted = targets.unionByName(held)
    voted = vote_predictions(item_top_votes(window, items, wanted, event_weights=weights)).cache()
    predicted = voted.join(held, C.ITEM_ID, "semi").toPandas()
    rows, figures, holdout = evaluate_votes(labelled, in_holdout, predicted, cs)
    return voted, VoteEvaluation(rows, figures), holdout


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

    from recsys_lib.runtime import tracking

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
