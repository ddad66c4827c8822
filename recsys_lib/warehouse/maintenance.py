"""Upkeep of the warehouse: compaction, VACUUM and the staging area (the
``recsys_maintenance`` DAG; docs/operations.md, "Maintenance").

Every nightly write adds small files to the day's partitions (a few per table and stage
run, more with reruns). ``compact`` rewrites the partitions of recent days into few files
(Delta's OPTIMIZE; the rows and the table's contents are unchanged, a new version is
committed). ``vacuum`` deletes the files no version younger than the retention uses, so
time travel keeps working within the retention and stops beyond it. ``clean_staging``
deletes the audited copies of ``_staging/`` once they are older than the days kept for
inspection.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.runtime.claims import table_lock
from recsys_lib.runtime.spark import concurrently
from recsys_lib.warehouse.publish import STAGING
from recsys_lib.warehouse.storage import table_path, table_version
from recsys_lib.warehouse.tables import ALL_TABLES, TableContract, by_name

log = logging.getLogger(__name__)

# Delta refuses a VACUUM retention below 7 days unless this check is off for the call.
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
_DELTA_DEFAULT_RETENTION_HOURS = 168.0
_LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
_VACUUM_LOGGING = "spark.databricks.delta.vacuum.logging.enabled"
_VACUUM_CONF = (_RETENTION_CHECK, _LISTING_PARALLELISM, _VACUUM_LOGGING)


class RetentionError(ValueError):
    """A VACUUM retention below ``maintenance.min_retention_hours``."""


@dataclass(frozen=True)
class Compaction:
    table: str
    files_removed: int
    files_added: int


def active_files(spark: SparkSession, settings: Settings, table: TableContract) -> int:
    """The number of data files the table's current version uses."""
    detail = DeltaTable.forPath(spark, table_path(settings, table)).detail().first()
    return int(detail["numFiles"]) if detail else 0


def _compact_table(
    spark: SparkSession, settings: Settings, table: TableContract, days: DayRange
) -> Compaction:
    where = f"{C.DT} >= '{days.first.isoformat()}' AND {C.DT} <= '{days.last.isoformat()}'"
    delta = DeltaTable.forPath(spark, table_path(settings, table))
    with table_lock(settings, table.name):
        row = delta.optimize().where(where).executeCompaction().first()
    metrics = row["metrics"] if row else None
    removed = int(metrics["numFilesRemoved"]) if metrics else 0
    added = int(metrics["numFilesAdded"]) if metrics else 0
    if removed:
        log.info("%s %s: %d files compacted into %d", table.name, days, removed, added)
    return Compaction(table.name, removed, added)


def _existing(spark: SparkSession, settings: Settings) -> list[TableContract]:
    return [t for t in ALL_TABLES if table_version(spark, settings, t) >= 0]


def compact(spark: SparkSession, settings: Settings, days: DayRange) -> list[Compaction]:
    """OPTIMIZE the ``days`` partitions of every table (each a Delta commit only when it had
    files to merge; the tables side by side); what each table's compaction removed and
    added."""
    tables = _existing(spark, settings)
    return concurrently(
        [functools.partial(_compact_table, spark, settings, t, days) for t in tables]
    )


def retention_hours(settings: Settings, hours: float | None = None) -> float:
    """The VACUUM retention: ``hours`` or ``maintenance.vacuum_retention_hours``; refused
    below ``maintenance.min_retention_hours``."""
    maintenance = settings.maintenance
    chosen = maintenance.vacuum_retention_hours if hours is None else hours
    if chosen < maintenance.min_retention_hours:
        raise RetentionError(
            f"a VACUUM retention of {chosen:g} h is below maintenance.min_retention_hours "
            f"({maintenance.min_retention_hours:g} h): readers still running and the rollback "
            "of a failed write need the files of the versions they started from"
        )
    return chosen


def _vacuum_table(
    spark: SparkSession, settings: Settings, table: TableContract, keep: float
) -> int:
    delta = DeltaTable.forPath(spark, table_path(settings, table))
    delta.vacuum(keep)
    last = delta.history(2).filter("operation = 'VACUUM END'").select("operationMetrics").first()
    deleted = int(last[0].get("numDeletedFiles", 0)) if last else 0
    if deleted:
        log.info("%s: VACUUM deleted %d files older than %g h", table.name, deleted, keep)
    return deleted


def vacuum(spark: SparkSession, settings: Settings, hours: float | None = None) -> dict[str, int]:
    """VACUUM every table (side by side) with the retention of :func:`retention_hours`; per
    table, the number of files deleted (from the table's history: Delta records a VACUUM
    as two commits, VACUUM START and VACUUM END, with the count)."""
    keep = retention_hours(settings, hours)
    saved = {key: spark.conf.get(key, None) for key in _VACUUM_CONF}
    spark.conf.set(_VACUUM_LOGGING, "true")
    if keep < _DELTA_DEFAULT_RETENTION_HOURS:  # allowed by our own, configured floor
        spark.conf.set(_RETENTION_CHECK, "false")
    # VACUUM lists a table's files in a job of this many tasks (Spark's default, 10000, costs
    # minutes per table in local mode): as many as the shuffles use.
    spark.conf.set(_LISTING_PARALLELISM, str(settings.spark.shuffle_partitions))
    try:
        tables = _existing(spark, settings)
        counts = concurrently(
            [functools.partial(_vacuum_table, spark, settings, t, keep) for t in tables]
        )
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    return {t.name: n for t, n in zip(tables, counts, strict=True)}


def _staged_partitions(
    spark: SparkSession, settings: Settings
) -> Iterator[tuple[str, dt.date, Any]]:
    """Every ``_staging/<schema>/<table>/dt=<day>`` partition: (``schema.table``, day, its
    Hadoop path). Works on any Hadoop file system (local, s3a)."""
    jvm, jsc = spark._jvm, spark._jsc
    assert jvm is not None and jsc is not None
    root = jvm.org.apache.hadoop.fs.Path(f"{settings.warehouse}/{STAGING}")
    fs = root.getFileSystem(jsc.hadoopConfiguration())
    if not fs.exists(root):
        return
    for schema in fs.listStatus(root):
        for table in fs.listStatus(schema.getPath()):
            name = f"{schema.getPath().getName()}.{table.getPath().getName()}"
            for part in fs.listStatus(table.getPath()):
                label = part.getPath().getName()
                try:
                    day = dt.date.fromisoformat(label.removeprefix(f"{C.DT}="))
                except ValueError:
                    continue
                if label.startswith(f"{C.DT}="):
                    yield name, day, part.getPath()


def _delete(spark: SparkSession, path: Any) -> None:
    jsc = spark._jsc
    assert jsc is not None
    path.getFileSystem(jsc.hadoopConfiguration()).delete(path, True)


def clean_staging(spark: SparkSession, settings: Settings, run_date: dt.date) -> list[str]:
    """Delete the ``_staging/`` partitions of days more than ``maintenance.staging_keep_days``
    before ``run_date``; the paths deleted."""
    oldest_kept = run_date - dt.timedelta(days=settings.maintenance.staging_keep_days)
    deleted = []
    for _, day, path in list(_staged_partitions(spark, settings)):
        if day < oldest_kept:
            _delete(spark, path)
            deleted.append(str(path))
    log.info("_staging: %d partitions older than %s deleted", len(deleted), oldest_kept)
    return deleted


def erase_from_staging(spark: SparkSession, settings: Settings, users: Sequence[str]) -> int:
    """Delete every ``_staging/`` partition holding a row of ``users`` (pseudonyms): they are
    copies kept for inspection, deleted whole and at once. The number deleted."""
    deleted = 0
    for name, _, path in list(_staged_partitions(spark, settings)):
        if C.USER_ID not in by_name(name).column_names:
            continue
        staged = spark.read.format("delta").load(str(path.toString()))
        if not staged.filter(F.col(C.USER_ID).isin(*users)).isEmpty():
            _delete(spark, path)
            deleted += 1
    return deleted
