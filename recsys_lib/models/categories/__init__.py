"""Category completion: predict a missing category from behaviour, with LightGBM.

Evidence about an item's category is the company it keeps: the items the same user touched on
the same day. Per item and top-level category ``c`` the features hold the share of that
co-occurrence weight (views, carts and purchases weighted by ``features.event_weights``) that
goes to items whose *catalogue* top category is ``c``; an item's own label is never part of
its own features. Price and the shape of its popularity complete the picture.

Steps of :func:`completion.complete_categories` (modules :mod:`.features`,
:mod:`.training`, :mod:`.prediction`, :mod:`.completion`):

1. features of every item, in Spark (:func:`item_behaviour_features`); linear in the rows of
   ``features.user_item_daily``: per user-day category sums first, then each item subtracts
   its own contribution (no item x item pairs);
2. the single-node step (rule 9): the categorised items' features are collected to the driver
   after checking their count against ``completion.max_training_rows``, split by a hash of
   the item id into train / validation (early stopping) / holdout, and a multiclass LightGBM
   model is fitted; holdout top-1 / top-3 accuracy is compared with predicting the most
   frequent category. The model measured is the model that fills (a refit on all
   categorised items, tried before, diverged on catalogues with classes of one or two
   items: 8 % of the uncategorised items right where the measured model gets 58 %);
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

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from recsys_lib import constants as C

# MLflow stage tag and the model name in ops.model_evaluation.
STAGE = C.ITEMS_STAGE
MODEL_NAME = C.MODEL_CATEGORIES
MODEL_ARTIFACT = "model"
MODEL_FILE = "category_model.txt"
META_FILE = "category_model.json"
VARIANT_MODEL = "lightgbm"
VARIANT_BASELINE = "most_frequent"
VARIANT_LEAF = "leaf_vote"
VARIANT_VOTE = "category_vote"  # the neighbour vote, above completion.max_classes
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
# The neighbour vote's fill threshold is set on at least this many held-out items; a
# threshold no share reaches (shares are at most 1) means it fills nothing.
VOTE_MIN_SUPPORT = 10
NO_FILL = 2.0

PREDICTION_SCHEMA = T.StructType(
    [
        T.StructField(C.ITEM_ID, T.LongType(), False),
        T.StructField(PREDICTED_TOP, T.LongType(), False),
        T.StructField(PROBABILITY, T.DoubleType(), False),
        T.StructField(TOP_K_CATEGORIES, T.ArrayType(T.LongType(), False), False),
        T.StructField(TOP_K_PROBABILITIES, T.ArrayType(T.DoubleType(), False), False),
    ]
)


def beats_baseline(figures: Mapping[str, float]) -> bool:
    """A holdout's figures beat the most-frequent baseline at top-1, on a non-empty holdout:
    the bar a model or the vote must pass to fill anything."""
    return figures["n_holdout"] > 0 and figures["holdout_top1"] > figures["baseline_top1"]


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
    """The model that fills (its text dump) and its holdout evaluation."""

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
        return beats_baseline(self.figures)

    @property
    def version(self) -> str:
        return "catmodel-" + hashlib.sha256(self.model_text.encode()).hexdigest()[:16]
