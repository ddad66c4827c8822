"""Completion by a neighbour vote, for catalogues with more top categories than a classifier
can learn from (``completion.max_classes``; flat catalogues of ~1,000 category ids).

An item's top category is voted by the catalogue top categories of the items the same users
touched on the same days (:func:`.features.item_top_votes`: the item's own label never
votes); its probability is the category's share of the item's votes. Nothing is fitted: the
work is the targets' user-days times the categories in them, whatever the number of classes.
It is measured on the same hashed holdout as the LightGBM model, against the same
most-frequent baseline, and fills under the same rules but one: a share is not a
probability, so the share a top category needs to be filled is set on the holdout
(:func:`vote_threshold`), where the fills are right at least ``completion.min_confidence``
of the time.
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
NO_FILL = 2.0  # a vote threshold no share reaches (shares are at most 1)


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


def vote_threshold(
    shares: np.ndarray, right: np.ndarray, precision: float, min_support: int = VOTE_MIN_SUPPORT
) -> float:
    """The smallest vote share whose held-out items at or above it are right at least
    ``precision`` of the time, counting at least ``min_support`` of them; ``precision``
    itself when fewer than ``min_support`` held-out items have a vote (too few to set it);
    :data:`NO_FILL` (above every share: fill nothing) when no share reaches it.

    ``shares``: the held-out items' top vote shares; ``right``: whether that top was right.
    Example: shares (0.9, 0.4, 0.3, 0.2), right (yes, yes, no, no), precision 0.7 and
    ``min_support`` 2 give 0.4 (two of two right); 0.3 would give two of three.
    """
    if len(shares) < min_support:
        return float(precision)
    order = np.argsort(-shares, kind="stable")
    ranked, hits = shares[order], np.cumsum(right[order])
    n = np.arange(1, len(ranked) + 1)
    # A cut can only fall between distinct shares: items of equal share fill together.
    last_of_share = np.append(ranked[1:] != ranked[:-1], True)
    ok = last_of_share & (n >= min_support) & (hits >= precision * n)
    return float(ranked[ok].min()) if ok.any() else NO_FILL


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
