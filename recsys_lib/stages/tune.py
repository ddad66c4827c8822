"""``recsys tune als|ease``: the search, on the warehouse's ``clean.events``, tracked in MLflow.

Not a DAG task: a command a data engineer runs when the shop has changed. The validation
split, the search spaces and the tuned file are :mod:`recsys_lib.models.tuning`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

import mlflow
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.models import als as als_model
from recsys_lib.models import ease as ease_model
from recsys_lib.models.tuning import (
    ALS,
    ALS_FACTORS,
    MODELS,
    Params,
    Trial,
    TuningResult,
    als_lists,
    als_trials,
    best_trial,
    ease_lists,
    ease_trials,
    judge,
    validation_relevance,
)
from recsys_lib.runtime import tracking
from recsys_lib.warehouse.storage import read_partition, read_window
from recsys_lib.warehouse.tables import CLEAN_EVENTS

log = logging.getLogger(__name__)


def split_days(run_date: dt.date) -> tuple[dt.date, dt.date]:
    """(last day of the fit's window, validation day) of a search as of night ``run_date``."""
    valid_day = run_date - dt.timedelta(days=1)
    return valid_day - dt.timedelta(days=1), valid_day


def validation_users(relevant: DataFrame, known: np.ndarray) -> np.ndarray:
    """Positions in ``known`` (sorted ids) of the users with an item on the validation day."""
    active = np.asarray(
        [r[C.USER_ID] for r in relevant.select(C.USER_ID).distinct().collect()], dtype=str
    )
    return np.flatnonzero(np.isin(known, active))


def tune(
    spark: SparkSession,
    settings: Settings,
    model: str,
    run_date: dt.date,
    trials: int,
    k: int = 10,
    seed: int = C.DEFAULT_SEED,
) -> TuningResult:
    """Search ``model``'s (``als`` or ``ease``) settings as of night ``run_date``: fit on the
    window ending two days before it, judge on the day before, never read the night itself."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(MODELS)}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if model == ALS and settings.als.backend != "implicit":
        raise ValueError(
            f"recsys tune als fits with the implicit backend; als.backend is "
            f"{settings.als.backend!r}, whose model differs (docs/candidates.md)"
        )
    fit_end, valid_day = split_days(run_date)
    days = settings.als.window_days if model == ALS else settings.ease.window_days
    events = read_window(spark, settings, CLEAN_EVENTS, window(fit_end, days)).cache()
    relevant = validation_relevance(read_partition(spark, settings, CLEAN_EVENTS, valid_day))
    relevant = relevant.cache()
    if relevant.limit(1).count() == 0 or events.limit(1).count() == 0:
        raise RuntimeError(
            f"tuning as of {run_date} needs clean.events of {valid_day} (validation) and of "
            f"the window ending {fit_end}: run `recsys backfill` for them first"
        )
    if model == ALS:
        # The bound is checked for the largest factors a trial may draw.
        widest = dataclasses.replace(settings.als, factors=max(ALS_FACTORS))
        pairs = als_model.interactions(events, settings.als, fit_end)
        collected = als_model.build_matrix(spark, pairs, widest)
        candidates = als_trials(settings, trials, seed)
    else:
        matrix, user_ids, item_ids, _ = ease_model.collect_matrix(
            ease_model.presence(events), settings.ease
        )
        collected = (matrix, user_ids, item_ids)
        candidates = ease_trials(settings, trials, seed)
    events.unpersist()
    rows = validation_users(relevant, collected[1])
    users = spark.createDataFrame([(str(u),) for u in collected[1][rows]], f"{C.USER_ID} string")

    def lists(params: Params) -> pd.DataFrame:
        if model == ALS:
            return als_lists(collected, rows, settings.als, params, k)
        return ease_lists(collected, rows, params, k)

    done: list[Trial] = []
    with tracking.stage_run(settings, f"tune_{model}", run_date) as parent:
        mlflow.log_params(
            {"model": model, "trials": trials, "k": k, "valid_day": valid_day.isoformat()}
        )
        for index, params in enumerate(candidates):
            started = time.perf_counter()
            ndcg, recall = judge(spark, lists(params), relevant, users, k)
            done.append(Trial(params, ndcg, recall, time.perf_counter() - started))
            with mlflow.start_run(
                run_name=f"trial {index}",
                nested=True,
                experiment_id=parent.info.experiment_id,
            ):
                mlflow.log_params(params)
                mlflow.log_metrics(
                    {f"ndcg.at_{k}": ndcg, f"recall.at_{k}": recall, "seconds": done[-1].seconds}
                )
            log.info("tune %s trial %d %s: NDCG@%d %.4f", model, index, params, k, ndcg)
        best = best_trial(done)
        mlflow.log_metrics({f"best.ndcg.at_{k}": done[best].ndcg, "best.trial": float(best)})
        mlflow.log_params({f"best.{name}": value for name, value in done[best].params.items()})
    relevant.unpersist()
    return TuningResult(
        model, run_date, valid_day, len(rows), k, tuple(done), best, parent.info.run_id
    )
