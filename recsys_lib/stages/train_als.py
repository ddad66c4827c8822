"""Stage ``train_als``: the ALS model of the window ending on the run date, logged to
MLflow, and the day's ``recs.similar_items`` from its item factors.

The model and its backends are :mod:`recsys_lib.models.als`; the neighbours are
:mod:`recsys_lib.sources.similar`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from pathlib import Path

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.models.als import MODEL_ARTIFACT, MODEL_FILE, backend, interactions, train_model
from recsys_lib.runtime import tracking
from recsys_lib.sources.similar import similar_items
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_window, table_version
from recsys_lib.warehouse.tables import CLEAN_EVENTS, SIMILAR_ITEMS

log = logging.getLogger(__name__)

STAGE = C.TRAIN_ALS


def train_als(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``train_als``: fit on the window ending ``run_date``; log the model to MLflow and
    write ``recs.similar_items`` for ``run_date``.

    The similar items are written inside the MLflow run: if their checks or write fail, the
    run ends FAILED and later stages do not pick this model up. Returns the training figures
    and ``rows.recs.similar_items``.
    """
    als = settings.als
    backend(als.backend)  # an unknown backend fails before any work
    days = window(run_date, als.window_days)
    events = read_window(spark, settings, CLEAN_EVENTS, days)
    if events.filter(F.col(C.DT) == F.lit(run_date)).limit(1).count() == 0:
        raise RuntimeError(f"clean.events has no rows for {run_date}: run `clean` for it first")
    input_version = table_version(spark, settings, CLEAN_EVENTS)
    pairs = interactions(events, als, run_date).cache()
    model, figures = train_model(spark, pairs, als)
    pairs.unpersist()
    similar = (
        similar_items(spark, model, als.similar_top_n, als.similar_batch_rows)
        .withColumn(C.DT, F.lit(run_date))
        .withColumn(C.MODEL_VERSION, F.lit(model.version))
    )

    with tracking.stage_run(
        settings, STAGE, run_date, tags={tracking.MODEL_VERSION_TAG: model.version}
    ):
        mlflow.log_params(
            {
                "backend": als.backend,
                "window_days": als.window_days,
                "window_first_day": days.first.isoformat(),
                "factors": als.factors,
                "regularization": als.regularization,
                "iterations": als.iterations,
                "alpha": als.alpha,
                "seed": als.seed,
                "event_weights": json.dumps(dict(als.event_weights), sort_keys=True),
                "half_life_days": als.half_life_days,
                "similar_top_n": als.similar_top_n,
                "similar_batch_rows": als.similar_batch_rows,
                "input.clean.events.delta_version": input_version,
            }
        )
        mlflow.log_metrics(figures)
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / MODEL_FILE)
            mlflow.log_artifacts(tmp, MODEL_ARTIFACT)
        started = time.perf_counter()
        written = quality.write_checked(spark, settings, [(SIMILAR_ITEMS, similar)], run_date)
        figures["similar_seconds"] = time.perf_counter() - started
        figures.update(written)
        mlflow.log_metrics({k: figures[k] for k in ("similar_seconds", *written)})
    log.info("ALS model %s: %s", model.version, figures)
    return figures
