"""The single-node step: split, fit the multiclass LightGBM model, evaluate it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys_lib import constants as C
from recsys_lib.config import CompletionSettings

if TYPE_CHECKING:
    import lightgbm as lgb

from recsys_lib.models.categories import (
    METRIC_ACCURACY,
    METRIC_FILLED_COVERAGE,
    METRIC_FILLED_PRECISION,
    PREDICTED_TOP,
    PROBABILITY,
    SMALL_TRAINING_ROWS,
    TRAIN_THREADS,
    VALID_SHARE,
    VARIANT_BASELINE,
    VARIANT_MODEL,
    TrainedModel,
)

log = logging.getLogger(__name__)


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


def evaluation_rows(variant: str, figures: dict[str, float]) -> list[tuple[str, str, int, float]]:
    """(variant, metric, k, value) rows of a holdout's figures: ``variant``'s top-1 / top-3
    accuracy and fill coverage / precision, and the most-frequent baseline's accuracy."""
    return [
        (variant, METRIC_ACCURACY, 1, figures["holdout_top1"]),
        (variant, METRIC_ACCURACY, 3, figures["holdout_top3"]),
        (VARIANT_BASELINE, METRIC_ACCURACY, 1, figures["baseline_top1"]),
        (VARIANT_BASELINE, METRIC_ACCURACY, 3, figures["baseline_top3"]),
        (variant, METRIC_FILLED_COVERAGE, 1, figures["holdout_filled_coverage"]),
        (variant, METRIC_FILLED_PRECISION, 1, figures["holdout_filled_precision"]),
    ]


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
    """Fit with early stopping, evaluate on the holdout: the model that fills is the one
    measured (see the module docstring).

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
    evaluation = evaluation_rows(VARIANT_MODEL, figures)
    # No refit on every categorised item: unmeasured, it diverged where classes have one or
    # two items (docs/benchmarks.md, "Category completion at a real catalogue's shape").
    figures["train_seconds"] = time.perf_counter() - started
    gains = booster.feature_importance(importance_type="gain", iteration=best)
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
        model_text=booster.model_to_string(num_iteration=best),
        best_iteration=int(best),
        evaluation=evaluation,
        figures=figures,
        holdout=holdout,
        importance=importance,
    )
