"""Completion by a neighbour vote, for catalogues with more top categories than a classifier
can learn from (``completion.max_classes``; flat catalogues of ~1,000 category ids).

An item's top category is voted by the catalogue top categories of the items the same users
touched on the same days (:func:`.features.item_top_votes`: the item's own label never
votes); its probability is the category's share of the item's votes. Nothing is fitted: the
work is the targets' user-days times the categories in them, whatever the number of classes.
It is measured on the same hashed holdout as the LightGBM model, against the same
most-frequent baseline, and fills under the same rules but one: a share is not a
probability, so the share a top category needs to be filled is set on the holdout
(:func:`vote_threshold`: where an isotonic fit of rightness on share reaches
``completion.min_confidence``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import CompletionSettings
from recsys_lib.models.categories import (
    FEATURE_DECIMALS,
    NO_FILL,
    PREDICTED_TOP,
    PROBABILITY,
    TOP_K_CATEGORIES,
    TOP_K_PROBABILITIES,
    VARIANT_VOTE,
    VOTE,
    VOTE_MIN_SUPPORT,
)
from recsys_lib.models.categories.training import evaluation_rows, most_frequent_accuracy
from recsys_lib.transforms.top_n import top_n_per

SHARE = "_share"
BEST = "_best"


def vote_predictions(votes: DataFrame, k: int = 3) -> DataFrame:
    """:data:`PREDICTION_SCHEMA` rows from top-category votes (item_id, top_category_id,
    vote): each item's ``k`` most voted categories (ties: the smaller id) with their share
    of the item's votes; items without a vote get no row."""
    shared = votes.withColumn(
        SHARE,
        F.round(F.col(VOTE) / F.sum(VOTE).over(Window.partitionBy(C.ITEM_ID)), FEATURE_DECIMALS),
    )
    best = top_n_per(shared, [C.ITEM_ID], [F.desc(VOTE), F.asc(C.TOP_CATEGORY_ID)], k, "_rank")
    ranked = best.groupBy(C.ITEM_ID).agg(
        F.sort_array(F.collect_list(F.struct("_rank", C.TOP_CATEGORY_ID, SHARE))).alias(BEST)
    )
    return ranked.select(
        C.ITEM_ID,
        F.col(BEST)[0][C.TOP_CATEGORY_ID].alias(PREDICTED_TOP),
        F.col(BEST)[0][SHARE].alias(PROBABILITY),
        F.transform(BEST, lambda x: x[C.TOP_CATEGORY_ID]).alias(TOP_K_CATEGORIES),
        F.transform(BEST, lambda x: x[SHARE]).alias(TOP_K_PROBABILITIES),
    )


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The non-decreasing fit of ``values`` (in their order) closest in weighted squares:
    pool adjacent violators. Example: (0, 1, 0, 1) with unit weights gives (0, .5, .5, 1)."""
    means: list[float] = []
    sums: list[float] = []
    sizes: list[int] = []
    for value, weight in zip(values, weights, strict=True):
        means.append(float(value))
        sums.append(float(weight))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            total = sums[-2] + sums[-1]
            means[-2] = (means[-2] * sums[-2] + means[-1] * sums[-1]) / total
            sums[-2] = total
            sizes[-2] += sizes[-1]
            del means[-1], sums[-1], sizes[-1]
    return np.repeat(np.asarray(means, dtype=np.float64), sizes)


def vote_threshold(
    shares: np.ndarray, right: np.ndarray, probability: float, min_support: int = VOTE_MIN_SUPPORT
) -> float:
    """The smallest vote share at which a held-out item's top category is right with at least
    ``probability``, by the isotonic fit of rightness on share (the vote's shares made
    probabilities), with at least ``min_support`` held-out items at or above it;
    ``probability`` itself when fewer than ``min_support`` held-out items have a vote (too
    few to fit); :data:`NO_FILL` (above every share: fill nothing) when no share reaches it.

    ``shares``: the held-out items' top vote shares; ``right``: whether that top was right.
    Example: shares (0.9, 0.8, 0.5, 0.4, 0.3) right (yes, no, yes, no, no) fit as (1, .5, .5,
    0, 0): at probability 0.5 the threshold is 0.5; at 0.6 it is 0.9, or nothing to fill
    when ``min_support`` is 2.
    """
    if len(shares) < min_support:
        return float(probability)
    distinct, index, counts = np.unique(shares, return_inverse=True, return_counts=True)
    hits = np.bincount(index, weights=right.astype(np.float64), minlength=len(distinct))
    fitted = isotonic(hits / counts, counts.astype(np.float64))
    at_or_above = np.cumsum(counts[::-1])[::-1]
    ok = (fitted >= probability) & (at_or_above >= min_support)
    return float(distinct[ok].min()) if ok.any() else NO_FILL


def evaluate_votes(
    labelled: pd.DataFrame, in_holdout: np.ndarray, predicted: pd.DataFrame, cs: CompletionSettings
) -> tuple[list[tuple[str, str, int, float]], dict[str, float], pd.DataFrame]:
    """The vote on the holdout: (variant, metric, k, value) rows, figures, and the holdout's
    (item_id, top_category_id, predicted top, probability) for the items with a vote.

    ``labelled``: (item_id, top_category_id) of the categorised items with behaviour;
    ``in_holdout``: which of them are held out; ``predicted``: :func:`vote_predictions` rows
    of (at least) the held-out items. A held-out item without a vote counts as wrong. The
    figures' ``vote_threshold`` is :func:`vote_threshold` at ``completion.min_confidence``;
    the fill coverage and precision are measured at it."""
    truth = labelled[in_holdout]
    known = labelled[~in_holdout][C.TOP_CATEGORY_ID].to_numpy(np.int64)
    both = truth.merge(predicted, on=C.ITEM_ID, how="left")
    actual = both[C.TOP_CATEGORY_ID].to_numpy(np.int64)
    voted = both[PREDICTED_TOP].notna().to_numpy()
    right = voted & (both[PREDICTED_TOP].fillna(-1).to_numpy(np.int64) == actual)
    in_top3 = np.array(
        [
            isinstance(top, list | np.ndarray) and int(a) in list(top)[:3]
            for a, top in zip(actual, both[TOP_K_CATEGORIES], strict=True)
        ],
        dtype=bool,
    )
    shares = both[PROBABILITY].fillna(0.0).to_numpy(np.float64)
    threshold = vote_threshold(shares[voted], right[voted], cs.min_confidence)
    above = voted & (shares >= threshold)
    n = len(both)
    figures = {
        "n_holdout": float(n),
        "n_classes": float(len(np.unique(labelled[C.TOP_CATEGORY_ID]))),
        "holdout_voted": float(voted.sum()),
        "holdout_top1": float(right.mean()) if n else 0.0,
        "holdout_top3": float(in_top3.mean()) if n else 0.0,
        "baseline_top1": most_frequent_accuracy(known, actual, 1),
        "baseline_top3": most_frequent_accuracy(known, actual, 3),
        "holdout_filled_coverage": float(above.mean()) if n else 0.0,
        "holdout_filled_precision": float(right[above].mean()) if above.any() else 0.0,
        "vote_threshold": threshold,
    }
    evaluation = evaluation_rows(VARIANT_VOTE, figures)
    holdout = both.loc[voted, [C.ITEM_ID, C.TOP_CATEGORY_ID, PREDICTED_TOP, PROBABILITY]]
    return evaluation, figures, holdout.astype({PREDICTED_TOP: "int64"})
