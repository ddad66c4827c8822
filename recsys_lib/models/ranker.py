"""The LightGBM ranker: lambdarank over candidates grouped by user x label day.

This module holds the single-node training step (pandas in, ``LGBMRanker`` out); the Spark
side (samples, distributed scoring, the stage) is in ``recsys_lib.ranking``.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd

from recsys_lib import constants as C
from recsys_lib.config import RankerSettings


def group_sizes(frame: pd.DataFrame) -> np.ndarray:
    """Rows per group, in order of appearance (``frame`` must be sorted by group)."""
    groups = frame[C.GROUP].to_numpy()
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.diff(np.r_[starts, len(groups)])


def by_group(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by group then item id (a stable, input-order-free layout)."""
    return frame.sort_values([C.GROUP, C.ITEM_ID], kind="mergesort").reset_index(drop=True)


def fit_ranker(
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    features: Sequence[str],
    settings: RankerSettings,
    weight_column: str | None = None,
    rounds: int | None = None,
) -> lgb.LGBMRanker:
    """A lambdarank model on ``train`` (columns: ``group``, ``item_id``, ``label`` and the
    features; ``weight_column``: per-sample weights), with early stopping on ``valid``'s
    NDCG@``gate_k`` when given. ``rounds`` overrides ``num_boost_round`` (pilot models)."""
    train = by_group(train)
    model = lgb.LGBMRanker(
        objective="lambdarank",
        n_estimators=rounds or settings.num_boost_round,
        learning_rate=settings.learning_rate,
        num_leaves=settings.num_leaves,
        min_child_samples=settings.min_child_samples,
        colsample_bytree=settings.feature_fraction,
        lambdarank_truncation_level=settings.lambdarank_truncation_level,
        label_gain=[float(2**g - 1) for g in range(C.MAX_LABEL + 1)],
        random_state=settings.seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbosity=-1,
    )
    fit_args: dict[str, object] = {}
    if valid is not None and len(valid) and rounds is None:
        valid = by_group(valid)
        fit_args = {
            "eval_X": (valid[list(features)],),
            "eval_y": (valid[C.LABEL],),
            "eval_group": [group_sizes(valid)],
            "eval_at": [settings.gate_k],
            "callbacks": [
                lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
            ],
        }
    model.fit(
        train[list(features)],
        train[C.LABEL],
        group=group_sizes(train),
        sample_weight=train[weight_column] if weight_column else None,
        **fit_args,  # type: ignore[arg-type]
    )
    return model


def predict(model: lgb.LGBMRanker, frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Scores of ``frame``'s rows (any order), at the model's best iteration."""
    if len(frame) == 0:
        return np.zeros(0)
    best = model.best_iteration_ or None
    return np.asarray(model.predict(frame[list(features)], num_iteration=best), dtype=float)
