"""The pipeline's stages by name, and running one of them for a day.

The DAG, the ``jobs/`` entry points and ``recsys run`` all go through :func:`run_stage`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.aggregates import aggregate_day
from recsys_lib.candidates import candidates_day
from recsys_lib.cleaning import clean_day
from recsys_lib.config import Settings
from recsys_lib.features import features_day
from recsys_lib.ingest import ingest_events
from recsys_lib.items import items_day
from recsys_lib.models.als import train_als
from recsys_lib.ranking import train_ranker
from recsys_lib.recommend import recommend_day
from recsys_lib.samples import samples_day
from recsys_lib.storage import create_missing_tables, write_partition
from recsys_lib.tables import STAGE_RUNS

log = logging.getLogger(__name__)

StageFunction = Callable[[SparkSession, Settings, dt.date], dict[str, float]]

STAGES: dict[str, StageFunction] = {
    "ingest": ingest_events,
    "clean": clean_day,
    "aggregate": aggregate_day,
    "items": items_day,
    "features": features_day,
    "train_als": train_als,
    "candidates": candidates_day,
    "samples": samples_day,
    "train_ranker": train_ranker,
    "recommend": recommend_day,
}
NIGHTLY = C.NIGHTLY_STAGES
HISTORY_STAGES = C.HISTORY_STAGES
assert set(NIGHTLY) == set(STAGES), "constants.NIGHTLY_STAGES must list every stage"


def run_stage(
    spark: SparkSession, settings: Settings, stage: str, run_date: dt.date
) -> dict[str, float]:
    """Run one stage for one day; returns its figures plus ``seconds``."""
    try:
        function = STAGES[stage]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}") from None
    create_missing_tables(spark, settings)
    started = time.perf_counter()
    log.info("stage %s for %s: start", stage, run_date)
    figures = function(spark, settings, run_date)
    figures["seconds"] = time.perf_counter() - started
    record_stage_run(spark, settings, stage, run_date, figures)
    log.info("stage %s for %s: done in %.1fs %s", stage, run_date, figures["seconds"], figures)
    return figures


def record_stage_run(
    spark: SparkSession,
    settings: Settings,
    stage: str,
    run_date: dt.date,
    figures: dict[str, float],
) -> None:
    """Replace the ``ops.stage_runs`` row of (run_date, stage)."""
    row = spark.createDataFrame(
        [(run_date, stage, figures["seconds"], {k: float(v) for k, v in figures.items()})],
        f"{C.DT} date, {C.STAGE} string, {C.SECONDS} double, {C.FIGURES} map<string,double>",
    ).withColumn(C.FINISHED_AT, F.current_timestamp())
    write_partition(row, settings, STAGE_RUNS, run_date, {C.STAGE: stage})
