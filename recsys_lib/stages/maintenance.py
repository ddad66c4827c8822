"""The tasks of the ``recsys_maintenance`` DAG, each ``(spark, settings, run_date) -> figures``
(docs/operations.md, "Maintenance").

- ``compact``: OPTIMIZE the partitions of ``run_date`` and the ``maintenance.compact_days``
  - 1 days before it in every table;
- ``vacuum``: VACUUM every table with ``maintenance.vacuum_retention_hours``;
- ``clean_staging``: delete ``_staging/`` partitions older than ``staging_keep_days``;
- ``prune_mlflow``: delete MLflow runs older than ``mlflow_keep_days`` that no alias needs.

The three that touch tables hold the warehouse alone (``runtime.claims.alone``): each waits
for the running stages to end, and stages that start meanwhile wait for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import SparkSession

from recsys_lib.config import Settings
from recsys_lib.dates import window
from recsys_lib.runtime.claims import alone
from recsys_lib.runtime.tracking import prune_runs
from recsys_lib.warehouse import maintenance

Figures = dict[str, float]


def compact(spark: SparkSession, settings: Settings, run_date: dt.date) -> Figures:
    days = window(run_date, settings.maintenance.compact_days)
    with alone(settings, f"maintenance compact for {run_date}"):
        done = maintenance.compact(spark, settings, days)
    return {
        "tables": float(len(done)),
        "files_removed": float(sum(c.files_removed for c in done)),
        "files_added": float(sum(c.files_added for c in done)),
    }


def vacuum(spark: SparkSession, settings: Settings, run_date: dt.date) -> Figures:
    with alone(settings, f"maintenance vacuum for {run_date}"):
        deleted = maintenance.vacuum(spark, settings)
    return {"tables": float(len(deleted)), "files_deleted": float(sum(deleted.values()))}


def clean_staging(spark: SparkSession, settings: Settings, run_date: dt.date) -> Figures:
    with alone(settings, f"maintenance clean_staging for {run_date}"):
        deleted = maintenance.clean_staging(spark, settings, run_date)
    return {"partitions_deleted": float(len(deleted))}


def prune_mlflow(spark: SparkSession | None, settings: Settings, run_date: dt.date) -> Figures:
    return {"runs_deleted": float(len(prune_runs(settings)))}


TASKS: dict[str, Callable[..., Figures]] = {
    "compact": compact,
    "vacuum": vacuum,
    "clean_staging": clean_staging,
    "prune_mlflow": prune_mlflow,
}
SPARK_TASKS = ("compact", "vacuum", "clean_staging")
