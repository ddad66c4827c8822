"""Stage ``train_als``: an ``implicit`` ALS model on a window of ``clean.events``, in MLflow.

Confidence of a (user, item) pair is the sum of its events' weights over the window
(``als.event_weights``), scaled by implicit's ``alpha``. Aggregation and id indexing run in
Spark; the model is fitted on the driver (the explicit single-node step, rule 9). Its memory
bound is estimated before anything is collected, and the stage refuses to run above
``als.max_matrix_mb``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

import mlflow
from recsys_lib import constants as C
from recsys_lib import tracking
from recsys_lib.config import AlsSettings, Settings
from recsys_lib.storage import read_window, table_version
from recsys_lib.tables import CLEAN_EVENTS

log = logging.getLogger(__name__)

STAGE = "train_als"
MODEL_ARTIFACT = "model"
MODEL_FILE = "als_model.npz"
USER_INDEX = "user_idx"
ITEM_INDEX = "item_idx"
WEIGHT = "weight"


class AlsMemoryError(MemoryError):
    """The interaction matrix and factors would not fit the single-node memory bound."""


@dataclass(frozen=True)
class AlsModel:
    """Factors with their dense id mappings: row ``k`` of ``user_factors`` is ``user_ids[k]``."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray

    @property
    def version(self) -> str:
        """Content hash: the same training data and parameters give the same version."""
        digest = hashlib.sha256()
        for array in (self.user_ids, self.item_ids, self.user_factors, self.item_factors):
            digest.update(np.ascontiguousarray(array).tobytes())
        return "als-" + digest.hexdigest()[:16]

    def save(self, path: Path) -> None:
        np.savez(
            path,
            user_ids=self.user_ids.astype("S"),
            item_ids=self.item_ids,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
        )

    @classmethod
    def load(cls, path: Path) -> AlsModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                user_ids=data["user_ids"].astype(str),
                item_ids=data["item_ids"],
                user_factors=data["user_factors"],
                item_factors=data["item_factors"],
            )


def window_bounds(run_date: dt.date, window_days: int) -> tuple[dt.date, dt.date]:
    """First and last day of the ``window_days`` days ending with ``run_date``."""
    return run_date - dt.timedelta(days=window_days - 1), run_date


def event_weight(event_type: F.Column, weights: dict[str, float]) -> F.Column:
    """Configured weight of an event type (0 for a type without a weight)."""
    weight = F.lit(0.0)
    for name, value in sorted(weights.items()):
        weight = F.when(event_type == name, F.lit(float(value))).otherwise(weight)
    return weight


def interactions(events: DataFrame, weights: dict[str, float]) -> DataFrame:
    """(user_id, item_id, weight): summed event weights per pair, pairs of weight 0 dropped."""
    return (
        events.groupBy(C.USER_ID, C.ITEM_ID)
        .agg(F.sum(event_weight(F.col(C.EVENT_TYPE), weights)).alias(WEIGHT))
        .filter(F.col(WEIGHT) > 0)
    )


def dense_index(ids: DataFrame, column: str, index: str) -> DataFrame:
    """Distinct values of ``column`` numbered 0..n-1 in sorted order (distributed)."""
    spark = ids.sparkSession
    ordered = ids.select(column).distinct().orderBy(column)
    schema = T.StructType([ordered.schema[column], T.StructField(index, T.IntegerType(), False)])
    return spark.createDataFrame(
        ordered.rdd.zipWithIndex().map(lambda pair: (pair[0][0], int(pair[1]))), schema
    )


def memory_bound_mb(n_users: int, n_items: int, nnz: int, factors: int) -> float:
    """Peak driver memory of the single-node fit, in MiB (an upper estimate).

    The pairs arrive as a pandas frame and become two CSR matrices (user x item and its
    transpose), ~12 bytes a non-zero each; factors are float32, with a working copy; user ids
    are 64-character hashes.
    """
    pairs = nnz * (12 * 3)
    factor_bytes = (n_users + n_items) * factors * 4 * 2
    ids = n_users * 120 + n_items * 8
    return (pairs + factor_bytes + ids) / 2**20


def fit(matrix: sp.csr_matrix, als: AlsSettings) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors of implicit's ALS on a user x item confidence matrix."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; a threaded BLAS underneath only oversubscribes.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=als.factors,
            regularization=als.regularization,
            alpha=als.alpha,
            iterations=als.iterations,
            num_threads=als.threads,
            random_state=als.seed,
        )
        model.fit(matrix, show_progress=False)
    if hasattr(model, "to_cpu"):
        model = model.to_cpu()
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def build_matrix(
    spark: SparkSession, pairs: DataFrame, als: AlsSettings
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Collect the indexed confidence matrix and the id arrays, within the memory bound."""
    users = dense_index(pairs, C.USER_ID, USER_INDEX).cache()
    items = dense_index(pairs, C.ITEM_ID, ITEM_INDEX).cache()
    n_users, n_items = users.count(), items.count()
    nnz = pairs.count()
    bound = memory_bound_mb(n_users, n_items, nnz, als.factors)
    log.info(
        "ALS matrix %d users x %d items, %d non-zeros: ~%.0f MiB", n_users, n_items, nnz, bound
    )
    if bound > als.max_matrix_mb:
        raise AlsMemoryError(
            f"the implicit ALS backend needs ~{bound:.0f} MiB for {n_users} users x {n_items} "
            f"items ({nnz} non-zeros), above als.max_matrix_mb={als.max_matrix_mb}. Shorten "
            "als.window_days, raise als.max_matrix_mb if the driver has the memory, or train "
            "on a cluster with the Spark MLlib backend."
        )
    indexed = (
        pairs.join(users, C.USER_ID)
        .join(items, C.ITEM_ID)
        .select(USER_INDEX, ITEM_INDEX, F.col(WEIGHT).cast("float"))
        .toPandas()
    )
    matrix = sp.csr_matrix(
        (indexed[WEIGHT].to_numpy(), (indexed[USER_INDEX], indexed[ITEM_INDEX])),
        shape=(n_users, n_items),
        dtype=np.float32,
    )
    user_ids = users.orderBy(USER_INDEX).toPandas()[C.USER_ID].to_numpy().astype(str)
    item_ids = items.orderBy(ITEM_INDEX).toPandas()[C.ITEM_ID].to_numpy().astype(np.int64)
    users.unpersist()
    items.unpersist()
    return matrix, user_ids, item_ids


def train_als(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``train_als``: fit on the window ending ``run_date``; log the run to MLflow."""
    als = settings.als
    first, last = window_bounds(run_date, als.window_days)
    events = read_window(spark, settings, CLEAN_EVENTS, first, last)
    if events.filter(F.col(C.DT) == F.lit(run_date)).limit(1).count() == 0:
        raise RuntimeError(f"clean.events has no rows for {run_date}: run `clean` for it first")
    input_version = table_version(spark, settings, CLEAN_EVENTS)
    pairs = interactions(events, dict(als.event_weights)).cache()
    matrix, user_ids, item_ids = build_matrix(spark, pairs, als)
    pairs.unpersist()

    started = time.perf_counter()
    user_factors, item_factors = fit(matrix, als)
    train_seconds = time.perf_counter() - started
    model = AlsModel(user_ids, item_ids, user_factors, item_factors)

    metrics = {
        "train_seconds": train_seconds,
        "n_users": float(matrix.shape[0]),
        "n_items": float(matrix.shape[1]),
        "nnz": float(matrix.nnz),
        "density": matrix.nnz / max(1, matrix.shape[0] * matrix.shape[1]),
        "memory_bound_mb": memory_bound_mb(
            matrix.shape[0], matrix.shape[1], matrix.nnz, als.factors
        ),
    }
    experiment_id = tracking.use_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{STAGE} {run_date.isoformat()}"):
        mlflow.set_tags(
            {
                tracking.STAGE_TAG: STAGE,
                tracking.RUN_DATE_TAG: run_date.isoformat(),
                tracking.MODEL_VERSION_TAG: model.version,
            }
        )
        mlflow.log_params(
            {
                "backend": "implicit",
                "window_days": als.window_days,
                "window_first_day": first.isoformat(),
                "factors": als.factors,
                "regularization": als.regularization,
                "iterations": als.iterations,
                "alpha": als.alpha,
                "seed": als.seed,
                "event_weights": json.dumps(dict(als.event_weights), sort_keys=True),
                "input.clean.events.delta_version": input_version,
            }
        )
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / MODEL_FILE)
            mlflow.log_artifacts(tmp, MODEL_ARTIFACT)
    log.info("ALS model %s: %s", model.version, metrics)
    return metrics


def load_model(settings: Settings, run_date: dt.date) -> tuple[AlsModel, str]:
    """The model trained for ``run_date`` (latest finished run) and its MLflow run id."""
    run = tracking.latest_run(settings, STAGE, run_date)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=f"{MODEL_ARTIFACT}/{MODEL_FILE}", dst_path=tmp
        )
        return AlsModel.load(Path(local)), run.info.run_id
