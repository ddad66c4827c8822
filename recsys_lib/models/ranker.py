"""The LightGBM ranker: lambdarank over candidates grouped by user x label day.

This module holds the single-node training step (pandas in, ``LGBMRanker`` out), the trained
:class:`Ranker` and its distributed scoring (:func:`score_frame`: the booster's text is
broadcast and each partition scored with ``mapInPandas``). The registry and the gate are in
:mod:`recsys_lib.models.registry`, the nightly stage in :mod:`recsys_lib.stages.train_ranker`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

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


@dataclass(frozen=True)
class Ranker:
    """A trained ranker: LightGBM model text cut at its best iteration, and its features."""

    model_text: str
    features: tuple[str, ...]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.model_text.encode()).hexdigest()[:16]

    @classmethod
    def of(cls, model: lgb.LGBMRanker, features: Sequence[str]) -> Ranker:
        best = model.best_iteration_ or None
        return cls(model.booster_.model_to_string(num_iteration=best), tuple(features))

    def booster(self) -> lgb.Booster:
        return lgb.Booster(model_str=self.model_text)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0)
        return np.asarray(self.booster().predict(frame[list(self.features)]), dtype=float)


def score_frame(features: DataFrame, ranker: Ranker) -> DataFrame:
    """(user_id, item_id, score) of every row of ``features``, scored on the executors with
    the booster's text broadcast once."""
    shared = features.sparkSession.sparkContext.broadcast((ranker.model_text, ranker.features))
    schema = T.StructType(
        [
            T.StructField(C.USER_ID, T.StringType(), False),
            T.StructField(C.ITEM_ID, T.LongType(), False),
            T.StructField(C.SCORE, T.DoubleType(), False),
        ]
    )

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        text, names = shared.value
        booster = lgb.Booster(model_str=text)
        for batch in batches:
            values = batch[list(names)].astype(float)
            yield pd.DataFrame(
                {
                    C.USER_ID: batch[C.USER_ID],
                    C.ITEM_ID: batch[C.ITEM_ID].astype("int64"),
                    C.SCORE: np.asarray(booster.predict(values), dtype=float),
                }
            )

    return features.select(C.USER_ID, C.ITEM_ID, *ranker.features).mapInPandas(score, schema)
