"""The ALS model: interactions from a window of ``clean.events``, two backends, MLflow I/O.

Confidence of a (user, item) pair is the sum of its events' weights over the window
(``als.event_weights``), each halved every ``als.half_life_days`` of age, scaled by
``alpha``. Two backends behind one interface (:func:`train_model`), chosen by
``als.backend``; both return the same :class:`AlsModel` (ids sorted, factor rows aligned
with them, float32):

- ``implicit`` (default): aggregation and id indexing run in Spark, the model is fitted on
  the driver (the explicit single-node step, rule 9), on the GPU if implicit has CUDA. Its
  memory bound is estimated before anything is collected, and the stage refuses to run
  above ``als.max_matrix_mb``.
- ``spark``: Spark MLlib's ALS (``implicitPrefs``) on the executors; the interaction matrix
  never reaches the driver, only the factors do (``model_mb``).

The backends differ in two documented ways, so the same settings give similar, not equal,
models: implicit's confidence is ``alpha * weight`` where MLlib's is ``1 + alpha * weight``,
and MLlib scales ``regParam`` by each user's (item's) number of ratings.

The stage that trains it nightly is :mod:`recsys_lib.stages.train_als`.

The rules cited by number are those of docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import AlsSettings, Settings
from recsys_lib.runtime import tracking
from recsys_lib.transforms.windows import decay, with_age

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
MODEL_FILE = "als_model.npz"
USER_INDEX = "user_idx"
ITEM_INDEX = "item_idx"
WEIGHT = "weight"
FEATURES = "features"  # MLlib's factor column
# Weights are summed as integers in these units: exact, so the sum does not depend on the
# order Spark adds the events in (rule 2), and finer than any weight that matters.
WEIGHT_UNITS = 1_000_000


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

    def without_users(self, users: Collection[str]) -> AlsModel:
        """The model without the rows of ``users`` (their ids and factors)."""
        keep = ~np.isin(self.user_ids, np.asarray(list(users), dtype=str))
        return AlsModel(
            self.user_ids[keep], self.item_ids, self.user_factors[keep], self.item_factors
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


def event_type_weight(event_type: F.Column, weights: dict[str, float]) -> F.Column:
    """Configured weight of an event type (0 for a type without a weight)."""
    weight = F.lit(0.0)
    for name, value in sorted(weights.items()):
        weight = F.when(event_type == name, F.lit(float(value))).otherwise(weight)
    return weight


def interactions(events: DataFrame, als: AlsSettings, run_date: dt.date) -> DataFrame:
    """(user_id, item_id, weight): decayed event weights summed per pair, zero pairs dropped.

    An event of type ``t`` on day ``dt`` weighs ``event_weights[t] * 0.5 ** (age /
    half_life_days)`` with ``age = run_date - dt`` in days; ``half_life_days <= 0`` means no
    decay. Types without a weight count 0. Sums are exact to ``1 / WEIGHT_UNITS``.
    """
    weight = event_type_weight(F.col(C.EVENT_TYPE), dict(als.event_weights))
    if als.half_life_days > 0:
        events = with_age(events, run_date)
        weight = weight * decay(als.half_life_days)
    units = F.sum(F.round(weight * F.lit(WEIGHT_UNITS)).cast("long"))
    return (
        events.groupBy(C.USER_ID, C.ITEM_ID)
        .agg(units.alias(WEIGHT))
        .filter(F.col(WEIGHT) > 0)
        .select(C.USER_ID, C.ITEM_ID, (F.col(WEIGHT) / F.lit(float(WEIGHT_UNITS))).alias(WEIGHT))
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

    The pairs arrive as a pandas frame with the 64-character user id of each pair (~130
    bytes a non-zero as Python strings) and become two CSR matrices (user x item and its
    transpose), ~12 bytes a non-zero each; factors are float32, with a working copy; the
    distinct user ids stay as strings.
    """
    pairs = nnz * (130 + 12 * 3)
    factor_bytes = (n_users + n_items) * factors * 4 * 2
    ids = n_users * 120 + n_items * 8
    return (pairs + factor_bytes + ids) / 2**20


def fit(matrix: sp.csr_matrix, als: AlsSettings) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors (float32) of implicit's ALS on a user x item confidence matrix.

    Runs on the GPU when implicit was built with CUDA and sees a device
    (``implicit.gpu.HAS_CUDA``), on the CPU otherwise; only the CPU fit is bit-for-bit
    reproducible.
    """
    import implicit.gpu
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    use_gpu = bool(implicit.gpu.HAS_CUDA)
    # implicit parallelises over users itself; a threaded BLAS underneath only oversubscribes.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=als.factors,
            regularization=als.regularization,
            alpha=als.alpha,
            iterations=als.iterations,
            num_threads=als.threads,
            random_state=als.seed,
            use_gpu=use_gpu,
        )
        model.fit(matrix, show_progress=False)
    if use_gpu:
        model = model.to_cpu()
    return (
        np.ascontiguousarray(model.user_factors, dtype=np.float32),
        np.ascontiguousarray(model.item_factors, dtype=np.float32),
    )


def build_matrix(
    spark: SparkSession, pairs: DataFrame, als: AlsSettings
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Collect the confidence matrix and the id arrays, within the memory bound.

    Two Spark jobs: the shape (distinct users and items, non-zeros), checked against
    ``als.max_matrix_mb`` before anything is collected, then the pairs themselves. Ids are
    numbered 0..n-1 in sorted order on the driver (as ``np.unique`` would number them)."""
    shape = pairs.agg(
        F.countDistinct(C.USER_ID).alias("users"),
        F.countDistinct(C.ITEM_ID).alias("items"),
        F.count(F.lit(1)).alias("nnz"),
    ).first()
    assert shape is not None
    n_users, n_items, nnz = int(shape["users"]), int(shape["items"]), int(shape["nnz"])
    bound = memory_bound_mb(n_users, n_items, nnz, als.factors)
    log.info(
        "ALS matrix %d users x %d items, %d non-zeros: ~%.0f MiB", n_users, n_items, nnz, bound
    )
    if bound > als.max_matrix_mb:
        raise AlsMemoryError(
            f"the implicit ALS backend needs ~{bound:.0f} MiB for {n_users} users x {n_items} "
            f"items ({nnz} non-zeros), above als.max_matrix_mb={als.max_matrix_mb}. Set "
            "`als.backend: spark` (RECSYS__ALS__BACKEND=spark) to train with Spark MLlib on "
            "the executors, shorten als.window_days, or raise als.max_matrix_mb if the driver "
            "has the memory."
        )
    frame = pairs.select(C.USER_ID, C.ITEM_ID, F.col(WEIGHT).cast("float")).toPandas()
    # Sorted codes straight from the pairs' strings: a fixed-width copy of every non-zero's
    # id (256 bytes each) would break the memory bound; only the distinct ids are converted.
    user_index, users = pd.factorize(frame[C.USER_ID], sort=True)
    item_index, items = pd.factorize(frame[C.ITEM_ID].astype(np.int64), sort=True)
    user_ids, item_ids = np.asarray(users, dtype=str), np.asarray(items, dtype=np.int64)
    matrix = sp.csr_matrix(
        (frame[WEIGHT].to_numpy(), (user_index, item_index)),
        shape=(len(user_ids), len(item_ids)),
        dtype=np.float32,
    )
    # The rows arrive in shuffle order; the solver's sums must not depend on it.
    matrix.sort_indices()
    return matrix, user_ids, item_ids


Figures = dict[str, float]


def _shape_figures(n_users: int, n_items: int, nnz: int) -> Figures:
    return {
        "n_users": float(n_users),
        "n_items": float(n_items),
        "nnz": float(nnz),
        "density": nnz / max(1, n_users * n_items),
    }


def _model_mb(model: AlsModel) -> float:
    """Driver memory the model itself takes (factors and ids), in MiB."""
    arrays = (model.user_ids, model.item_ids, model.user_factors, model.item_factors)
    return sum(a.nbytes for a in arrays) / 2**20


def train_implicit(
    spark: SparkSession, pairs: DataFrame, als: AlsSettings
) -> tuple[AlsModel, Figures]:
    """Backend ``implicit``: collect the matrix (within ``als.max_matrix_mb``), fit on driver."""
    started = time.perf_counter()
    matrix, user_ids, item_ids = build_matrix(spark, pairs, als)
    prepared = time.perf_counter()
    user_factors, item_factors = fit(matrix, als)
    fitted = time.perf_counter()
    model = AlsModel(user_ids, item_ids, user_factors, item_factors)
    n_users, n_items = matrix.shape
    figures = {
        "prepare_seconds": prepared - started,
        "train_seconds": fitted - prepared,
        **_shape_figures(n_users, n_items, matrix.nnz),
        "memory_bound_mb": memory_bound_mb(n_users, n_items, matrix.nnz, als.factors),
        "model_mb": _model_mb(model),
    }
    return model, figures


def _collect_factors(
    factors: DataFrame, index: DataFrame, id_column: str, index_column: str, rank: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ids in index (= sorted id) order and their MLlib factor rows, float32."""
    columns = [f"f{i}" for i in range(rank)]
    frame = (
        index.join(factors.withColumnRenamed("id", index_column), index_column)
        .select(
            index_column,
            id_column,
            *[F.col(FEATURES)[i].alias(c) for i, c in enumerate(columns)],
        )
        .orderBy(index_column)
        .toPandas()
    )
    return frame[id_column].to_numpy(), frame[columns].to_numpy(dtype=np.float32)


def train_spark(
    spark: SparkSession, pairs: DataFrame, als: AlsSettings
) -> tuple[AlsModel, Figures]:
    """Backend ``spark``: MLlib ALS on the executors; only the factors come to the driver."""
    from pyspark.ml.recommendation import ALS

    started = time.perf_counter()
    users = dense_index(pairs, C.USER_ID, USER_INDEX).cache()
    items = dense_index(pairs, C.ITEM_ID, ITEM_INDEX).cache()
    ratings = (
        pairs.join(users, C.USER_ID)
        .join(items, C.ITEM_ID)
        .select(USER_INDEX, ITEM_INDEX, F.col(WEIGHT).cast("float"))
        .cache()
    )
    n_users, n_items, nnz = users.count(), items.count(), ratings.count()
    log.info("MLlib ALS on %d users x %d items, %d non-zeros", n_users, n_items, nnz)
    prepared = time.perf_counter()
    # MLlib's default of 10 blocks ignores the cluster; the shuffle partitions are its size.
    blocks = int(spark.conf.get("spark.sql.shuffle.partitions") or 10)
    estimator = ALS(
        rank=als.factors,
        maxIter=als.iterations,
        regParam=als.regularization,
        alpha=als.alpha,
        implicitPrefs=True,
        seed=als.seed,
        userCol=USER_INDEX,
        itemCol=ITEM_INDEX,
        ratingCol=WEIGHT,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    fitted = estimator.fit(ratings)  # materialises both factor tables
    trained = time.perf_counter()
    user_ids, user_factors = _collect_factors(
        fitted.userFactors, users, C.USER_ID, USER_INDEX, als.factors
    )
    item_ids, item_factors = _collect_factors(
        fitted.itemFactors, items, C.ITEM_ID, ITEM_INDEX, als.factors
    )
    for frame in (ratings, users, items):
        frame.unpersist()
    if (len(user_ids), len(item_ids)) != (n_users, n_items):
        raise RuntimeError(
            f"MLlib ALS returned factors for {len(user_ids)} of {n_users} users and "
            f"{len(item_ids)} of {n_items} items"
        )
    model = AlsModel(user_ids.astype(str), item_ids.astype(np.int64), user_factors, item_factors)
    figures = {
        "prepare_seconds": (prepared - started) + (time.perf_counter() - trained),
        "train_seconds": trained - prepared,
        **_shape_figures(n_users, n_items, nnz),
        "model_mb": _model_mb(model),
    }
    return model, figures


Backend = Callable[[SparkSession, DataFrame, AlsSettings], tuple[AlsModel, Figures]]
BACKENDS: dict[str, Backend] = {"implicit": train_implicit, "spark": train_spark}


def backend(name: str) -> Backend:
    """The training function of ``als.backend`` ``name``; ValueError for an unknown one."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown als.backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}"
        ) from None


def train_model(
    spark: SparkSession, pairs: DataFrame, als: AlsSettings
) -> tuple[AlsModel, Figures]:
    """ALS factors of ``pairs`` (user_id, item_id, weight) with the ``als.backend`` backend.

    Both backends give an :class:`AlsModel` with sorted ids and float32 factors, and figures:
    ``prepare_seconds`` (indexing and collection), ``train_seconds`` (the fit), ``n_users``,
    ``n_items``, ``nnz``, ``density``, ``model_mb`` (and ``memory_bound_mb`` for implicit).

    Example::

        model, figures = train_model(spark, interactions(events, als, run_date), als)
    """
    return backend(als.backend)(spark, pairs, als)


def model_factors(spark: SparkSession, model: AlsModel) -> DataFrame:
    """(user_id, factors) of the model as a DataFrame."""
    frame = pd.DataFrame(
        {C.USER_ID: model.user_ids, C.FACTORS: list(model.user_factors.astype(np.float32))}
    )
    schema = T.StructType(
        [
            T.StructField(C.USER_ID, T.StringType(), False),
            T.StructField(C.FACTORS, T.ArrayType(T.FloatType(), False), False),
        ]
    )
    return spark.createDataFrame(frame, schema)


def load_model(settings: Settings, run_date: dt.date) -> tuple[AlsModel, str]:
    """The model trained for ``run_date`` (latest finished run) and its MLflow run id."""
    run = tracking.latest_run(settings, C.TRAIN_ALS, run_date)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=f"{MODEL_ARTIFACT}/{MODEL_FILE}", dst_path=tmp
        )
        return AlsModel.load(Path(local)), run.info.run_id


ERASURE_TAG = "recsys.erasure"


def erase_users(settings: Settings, users: Collection[str], erasure_id: str) -> int:
    """Rewrite every ``train_als`` run's model artifact that holds one of ``users``
    (pseudonyms) without their ids and factors, in place (same artifact path; the run gets
    the tag ``recsys.erasure``). Runs marked deleted but not yet garbage-collected are
    rewritten too. Returns the number of artifacts rewritten."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    experiment = tracking.use_experiment(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    runs = client.search_runs(
        [experiment],
        filter_string=f"tags.`{tracking.STAGE_TAG}` = '{C.TRAIN_ALS}'",
        run_view_type=ViewType.ALL,
        max_results=50000,
    )
    wanted = np.asarray(sorted(users), dtype=str)
    rewritten = 0
    for run in runs:
        run_id = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"{MODEL_ARTIFACT}/{MODEL_FILE}", dst_path=tmp
                )
            except (MlflowException, OSError):
                continue  # a failed run saved no model
            model = AlsModel.load(Path(local))
            if not np.isin(model.user_ids, wanted).any():
                continue
            out = Path(tmp) / "erased"
            out.mkdir()
            model.without_users(users).save(out / MODEL_FILE)
            deleted = run.info.lifecycle_stage == "deleted"
            if deleted:
                client.restore_run(run_id)
            client.log_artifact(run_id, str(out / MODEL_FILE), MODEL_ARTIFACT)
            client.set_tag(run_id, ERASURE_TAG, erasure_id)
            if deleted:
                client.delete_run(run_id)
            rewritten += 1
    log.info("ALS: %d model artifacts rewritten without %d users", rewritten, len(wanted))
    return rewritten
