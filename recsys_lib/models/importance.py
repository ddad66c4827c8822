"""Sample importance of ``features.training_samples``: a weight in (0, 1] per sample.

importance = clip(event value x recency x propensity x learned, floor, 1)  (docs/importance.md)

The three documented components are Spark expressions (:func:`static_components`); the learned
one is a LightGBM regressor that predicts each sample's out-of-fold pairwise loss under a
pilot ranker (:func:`out_of_fold_losses`, :func:`fit_loss_predictor`), applied in the executors
by :func:`with_importance`. :func:`importance_sample` down-samples negatives in proportion to
importance and corrects the kept ones by inverse probability.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import ImportanceSettings, RankerSettings
from recsys_lib.models.ranker import by_group, fit_ranker, group_sizes, predict

log = logging.getLogger(__name__)

USER_DAYS_SINCE_LAST_EVENT = f"user_{C.DAYS_SINCE_LAST_EVENT}"
ITEM_VIEWS_30D = "item_views_30d"
EVENT_NAMES = ("none", "view", "cart", "purchase")  # by label 0..3; keys of event_values
MODEL_FILE = "loss_predictor.txt"
META_FILE = "loss_predictor.json"
_POSITION = "_position"


# --- documented components (Spark) ---------------------------------------------------------


def _check_event_values(settings: ImportanceSettings) -> list[float]:
    missing = [name for name in EVENT_NAMES if name not in settings.event_values]
    if missing:
        raise ValueError(f"importance.event_values lacks {missing}")
    values = [float(settings.event_values[name]) for name in EVENT_NAMES]
    if not all(0.0 < v <= 1.0 for v in values):
        raise ValueError(f"importance.event_values must lie in (0, 1], got {values}")
    return values


def _bounded(column: Column, floor: float) -> Column:
    # Clipping a component at the floor never changes the importance (the product is
    # clipped there anyway) but keeps each component strictly positive despite underflow.
    return F.least(F.greatest(column, F.lit(floor)), F.lit(1.0)).cast("double")


def median_item_views(samples: DataFrame) -> float:
    """Median of ``item_views_30d`` over the distinct items of ``samples`` (an item's mean
    when it appears on several days; null = 0 views); 0.0 without rows."""
    per_item = samples.groupBy(C.ITEM_ID).agg(
        F.avg(F.coalesce(F.col(ITEM_VIEWS_30D).cast("double"), F.lit(0.0))).alias("views")
    )
    row = per_item.agg(F.percentile_approx("views", 0.5).alias("median")).first()
    return float(row["median"]) if row is not None and row["median"] is not None else 0.0


def static_components(
    samples: DataFrame, median_item_views: float, settings: ImportanceSettings
) -> DataFrame:
    """``samples`` with the documented components as double columns in (0, 1]:

    - ``event_value_weight`` = ``event_values[none|view|cart|purchase]`` for label 0..3;
    - ``recency_weight`` = 0.5 ** (user_days_since_last_event / recency_half_life_days)
      (1.0 for null days or a half-life <= 0);
    - ``propensity_weight`` = (1 + item_views_30d / m) ** -propensity_power with
      m = max(median_item_views, 1) (null views count as 0).

    Example: label 2, 30 days, views = median, defaults -> 0.75, 0.5, 2 ** -0.5.
    """
    values = _check_event_values(settings)
    floor = settings.floor
    label = F.col(C.LABEL)
    event = F.when(label <= 0, F.lit(values[0]))
    for grade in range(1, C.MAX_LABEL):
        event = event.when(label == grade, F.lit(values[grade]))
    event = event.otherwise(F.lit(values[C.MAX_LABEL]))

    half_life = settings.recency_half_life_days
    days = F.greatest(F.col(USER_DAYS_SINCE_LAST_EVENT).cast("double"), F.lit(0.0))
    if half_life > 0:
        recency = F.coalesce(F.pow(F.lit(0.5), days / F.lit(half_life)), F.lit(1.0))
    else:
        recency = F.lit(1.0)

    scale = max(float(median_item_views), 1.0)
    views = F.greatest(F.coalesce(F.col(ITEM_VIEWS_30D).cast("double"), F.lit(0.0)), F.lit(0.0))
    propensity = F.pow(F.lit(1.0) + views / F.lit(scale), F.lit(-settings.propensity_power))

    return samples.withColumns(
        {
            C.EVENT_VALUE_WEIGHT: _bounded(event, floor),
            C.RECENCY_WEIGHT: _bounded(recency, floor),
            C.PROPENSITY_WEIGHT: _bounded(propensity, floor),
        }
    )


def importance_of(frame: pd.DataFrame, settings: ImportanceSettings) -> np.ndarray:
    """clip(product of :data:`~recsys_lib.constants.IMPORTANCE_COMPONENTS`, floor, 1) per row;
    the one implementation of the formula (Spark applies it through :func:`with_importance`)."""
    missing = [c for c in C.IMPORTANCE_COMPONENTS if c not in frame.columns]
    if missing:
        raise ValueError(f"importance components missing: {missing}")
    parts = frame[list(C.IMPORTANCE_COMPONENTS)].to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(parts).any():
        raise ValueError("importance components contain nulls")
    return np.clip(np.prod(parts, axis=1), settings.floor, 1.0)


# --- the learned component -----------------------------------------------------------------


def pairwise_losses(scores: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per sample, the mean of log(1 + exp(-(s_hi - s_lo))) over the pairs of its group whose
    labels differ (hi = the higher label; the sample is either side); 0 without such a pair.
    Groups are consecutive runs of ``sizes`` rows."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    sizes = np.asarray(sizes, dtype=np.int64)
    if len(scores) != len(labels) or int(sizes.sum()) != len(scores):
        raise ValueError("scores, labels and sizes do not describe the same rows")
    losses = np.zeros(len(scores))
    start = 0
    for size in sizes:
        end = start + int(size)
        s, y = scores[start:end], labels[start:end]
        sign = np.sign(y[:, None] - y[None, :])  # +1 where the row's sample is the higher
        margin = sign * (s[:, None] - s[None, :])
        pair = np.logaddexp(0.0, -margin) * (sign != 0)
        counts = np.count_nonzero(sign, axis=1)
        losses[start:end] = np.divide(
            pair.sum(axis=1), counts, out=np.zeros(end - start), where=counts > 0
        )
        start = end
    return losses


def user_folds(user_ids: pd.Series, folds: int) -> np.ndarray:
    """Fold of each row: crc32 of the utf-8 user id modulo ``folds`` (stable across runs)."""
    return np.fromiter(
        (zlib.crc32(str(u).encode("utf-8")) % folds for u in user_ids),
        dtype=np.int64,
        count=len(user_ids),
    )


def out_of_fold_losses(
    frame: pd.DataFrame,
    features: Sequence[str],
    ranker: RankerSettings,
    settings: ImportanceSettings,
) -> np.ndarray:
    """Each sample's :func:`pairwise_losses` under a pilot ranker that did not see its user:
    users split into ``settings.folds`` folds by :func:`user_folds`; for each fold a ranker of
    ``pilot_rounds`` rounds is fit on the other folds and scores it. Aligned with ``frame``'s
    rows; zeros with fewer than two users (or a fold with nothing to learn from)."""
    if settings.folds < 2:
        raise ValueError(f"importance.folds must be >= 2, got {settings.folds}")
    losses = np.zeros(len(frame))
    if frame[C.USER_ID].nunique() < 2:
        return losses
    data = frame.assign(**{_POSITION: np.arange(len(frame))})
    fold = user_folds(data[C.USER_ID], settings.folds)
    for k in range(settings.folds):
        held_out, train = data[fold == k], data[fold != k]
        if held_out.empty or train.empty:
            continue
        pilot = fit_ranker(train, None, features, ranker, rounds=settings.pilot_rounds)
        held_out = by_group(held_out)
        scores = predict(pilot, held_out, features)
        fold_losses = pairwise_losses(scores, held_out[C.LABEL].to_numpy(), group_sizes(held_out))
        losses[held_out[_POSITION].to_numpy()] = fold_losses
    return losses


@dataclass(frozen=True)
class LossPredictor:
    """A LightGBM regressor of a sample's out-of-fold loss, turned into a weight in (0, 1]:
    ``clip(prediction / scale, floor, 1) ** power``."""

    booster: lgb.Booster
    inputs: tuple[str, ...]  # ranking features and the label
    scale: float  # > 0: the 99th percentile of the in-sample predictions
    floor: float
    power: float

    def predicted_losses(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw predictions for ``frame``'s rows."""
        if len(frame) == 0:
            return np.zeros(0)
        x = frame[list(self.inputs)].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)

    def weights(self, frame: pd.DataFrame) -> np.ndarray:
        """Learned weight of each row in [floor, 1]; all 1.0 when ``power`` is 0."""
        if self.power == 0:
            return np.ones(len(frame))
        scaled = np.clip(self.predicted_losses(frame) / self.scale, self.floor, 1.0)
        return np.asarray(scaled**self.power, dtype=np.float64)

    def to_payload(self) -> tuple[str, str]:
        """(model text, JSON of the other fields): what :meth:`save` writes."""
        meta = {
            "inputs": list(self.inputs),
            "scale": self.scale,
            "floor": self.floor,
            "power": self.power,
        }
        return self.booster.model_to_string(), json.dumps(meta, indent=2)

    @classmethod
    def from_payload(cls, model_text: str, meta_json: str) -> LossPredictor:
        meta = json.loads(meta_json)
        return cls(
            booster=lgb.Booster(model_str=model_text),
            inputs=tuple(meta["inputs"]),
            scale=float(meta["scale"]),
            floor=float(meta["floor"]),
            power=float(meta["power"]),
        )

    def save(self, directory: Path) -> Path:
        """Write ``loss_predictor.txt`` (booster) and ``loss_predictor.json`` to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        model_text, meta_json = self.to_payload()
        (directory / MODEL_FILE).write_text(model_text)
        (directory / META_FILE).write_text(meta_json)
        return directory

    @classmethod
    def load(cls, directory: Path) -> LossPredictor:
        """The predictor :meth:`save` wrote to ``directory``."""
        return cls.from_payload(
            (directory / MODEL_FILE).read_text(), (directory / META_FILE).read_text()
        )


def fit_loss_predictor(
    frame: pd.DataFrame,
    losses: np.ndarray,
    features: Sequence[str],
    settings: ImportanceSettings,
) -> LossPredictor:
    """A deterministic LightGBM regressor of ``losses`` on ``features`` and the label
    (``predictor_rounds`` rounds, one thread). When the losses carry no signal (the 99th
    percentile of the predictions is not positive) the learned weight is switched off."""
    inputs = (*features, C.LABEL)
    model = lgb.LGBMRegressor(
        n_estimators=settings.predictor_rounds,
        random_state=settings.seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbosity=-1,
    )
    x = frame[list(inputs)].to_numpy(dtype=np.float64, na_value=np.nan)
    model.fit(x, np.asarray(losses, dtype=np.float64))
    # The text form is what executors and later nights load: predict with it here too.
    booster = lgb.Booster(model_str=model.booster_.model_to_string())
    predictions = np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)
    scale = float(np.percentile(predictions, 99)) if len(predictions) else 0.0
    power = settings.learned_power
    if not scale > 0:
        log.warning("predicted losses are not positive; the learned weight is off (1.0)")
        scale, power = 1.0, 0.0
    return LossPredictor(booster, inputs, scale, settings.floor, power)


# --- importance in Spark -------------------------------------------------------------------


def with_importance(
    samples: DataFrame, predictor: LossPredictor | None, settings: ImportanceSettings
) -> DataFrame:
    """``samples`` (with the :func:`static_components`) plus ``learned_weight`` (1.0 without a
    predictor, e.g. the first night) and ``importance``, computed in the executors; the
    predictor travels once, as a broadcast of its text form."""
    samples = samples.drop(C.LEARNED_WEIGHT, C.IMPORTANCE)
    schema = T.StructType(
        [
            *samples.schema.fields,
            T.StructField(C.LEARNED_WEIGHT, T.DoubleType(), False),
            T.StructField(C.IMPORTANCE, T.DoubleType(), False),
        ]
    )
    payload = predictor.to_payload() if predictor is not None else None
    shared = samples.sparkSession.sparkContext.broadcast(payload)
    # A plain dict: the settings' mapping proxy cannot be pickled for the executors.
    plain = dataclasses.replace(settings, event_values=dict(settings.event_values))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        shipped = shared.value
        model = LossPredictor.from_payload(*shipped) if shipped is not None else None
        for batch in batches:
            learned = model.weights(batch) if model is not None else np.ones(len(batch))
            batch = batch.assign(**{C.LEARNED_WEIGHT: learned})
            yield batch.assign(**{C.IMPORTANCE: importance_of(batch, plain)})

    return samples.mapInPandas(score, schema)


# --- importance sampling -------------------------------------------------------------------


def uniforms(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A uniform in [0, 1) per row from a hash of (seed, group, item_id): the same for a
    sample whatever the row order or the other rows."""
    keys = zip(frame[C.GROUP].to_numpy(), frame[C.ITEM_ID].to_numpy(), strict=True)
    hashes = np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(f"{seed}\x1f{g}\x1f{i}".encode(), digest_size=8).digest(), "big"
            )
            >> 11
            for g, i in keys
        ),
        dtype=np.float64,
        count=len(frame),
    )
    return hashes / float(1 << 53)


def _scale_for(importance: np.ndarray, budget: float) -> float:
    """c with sum(min(1, c * importance)) = budget, by bisection (0 < budget < len)."""
    ordered = np.sort(importance)  # sums in a fixed order: c does not depend on row order
    lo, hi = 0.0, 1.0 / float(ordered[0])
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, mid * ordered).sum() < budget:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


def importance_sample(frame: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Keep every positive and each negative with p = min(1, c * importance), c such that
    the expected number of kept rows is ``fraction * len(frame)``. Adds ``keep_probability``
    (1 for positives) and ``sample_weight`` = importance / p, so the kept rows' weighted loss
    is an unbiased estimate of the full set's importance-weighted loss. ``fraction >= 1``:
    every row, ``sample_weight`` = importance."""
    if fraction <= 0:
        raise ValueError(f"fraction must be > 0, got {fraction}")
    importance = frame[C.IMPORTANCE].to_numpy(dtype=np.float64)
    if len(frame) and not (importance > 0).all():
        raise ValueError("importance must be > 0 to sample by it")
    if fraction >= 1 or len(frame) == 0:
        return frame.assign(
            **{C.KEEP_PROBABILITY: np.ones(len(frame)), C.SAMPLE_WEIGHT: importance}
        )
    negative = frame[C.LABEL].to_numpy() <= 0
    budget = fraction * len(frame) - float(np.count_nonzero(~negative))
    probability = np.ones(len(frame))
    if budget <= 0:
        log.warning(
            "positives alone reach %.0f%% of %d samples: no negative is kept",
            100 * fraction,
            len(frame),
        )
        probability[negative] = 0.0
    else:
        c = _scale_for(importance[negative], budget)
        probability[negative] = np.minimum(1.0, c * importance[negative])
    keep = uniforms(frame, seed) < probability
    kept = frame[keep].assign(
        **{
            C.KEEP_PROBABILITY: probability[keep],
            C.SAMPLE_WEIGHT: importance[keep] / probability[keep],
        }
    )
    return kept.reset_index(drop=True)


# --- the plot logged to MLflow -------------------------------------------------------------


def importance_plot(frame: pd.DataFrame, path: Path) -> Path:
    """PNG at ``path``: histograms of importance and of each of its components present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in (C.IMPORTANCE, *C.IMPORTANCE_COMPONENTS) if c in frame.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        ax.hist(values[~np.isnan(values)], bins=50, range=(0.0, 1.0), color="tab:blue")
        ax.set_title(column)
        ax.set_xlabel("weight")
    axes[0][0].set_ylabel("samples")
    fig.suptitle(f"Sample importance ({len(frame)} samples)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
