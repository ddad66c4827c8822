"""Reading, registering and writing the Delta tables declared in ``tables.py``.

Every write replaces exactly one ``dt`` partition with ``replaceWhere`` (rule 1: idempotent).
A stage that writes several tables uses :func:`write_partitions`, which restores the tables
it already committed if a later write fails (rule 3: atomic).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.tables import ALL_TABLES, TableContract

log = logging.getLogger(__name__)


def table_path(settings: Settings, table: TableContract) -> str:
    return f"{settings.warehouse}/{table.relative_path}"


_registered: dict[int, str] = {}


def create_missing_tables(spark: SparkSession, settings: Settings) -> None:
    """Create, empty and with their partitioning, the tables that do not exist yet."""
    for table in ALL_TABLES:
        path = table_path(settings, table)
        if not DeltaTable.isDeltaTable(spark, path):
            (
                DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(table.schema)
                .partitionedBy(*table.partition_by)
                .execute()
            )


def register_tables(spark: SparkSession, settings: Settings) -> None:
    """Register every table as ``schema.table`` in this session's catalog (for SQL).

    Done once per session and warehouse; a session that moves to another warehouse (tests
    do) re-points the names.
    """
    if _registered.get(id(spark)) == settings.warehouse:
        return
    create_missing_tables(spark, settings)
    for table in ALL_TABLES:
        if not spark.catalog.databaseExists(table.schema_name):
            spark.sql(f"CREATE SCHEMA {table.schema_name}")
        # The tables are external (they have a LOCATION): dropping forgets the name only.
        spark.sql(f"DROP TABLE IF EXISTS {table.name}")
        spark.sql(f"CREATE TABLE {table.name} USING DELTA LOCATION '{table_path(settings, table)}'")
    _registered[id(spark)] = settings.warehouse


def read_table(spark: SparkSession, settings: Settings, table: TableContract) -> DataFrame:
    return spark.read.format("delta").load(table_path(settings, table))


def table_version(spark: SparkSession, settings: Settings, table: TableContract) -> int:
    """Current Delta version of a table (-1 if it does not exist yet)."""
    path = table_path(settings, table)
    if not DeltaTable.isDeltaTable(spark, path):
        return -1
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row[0]) if row else -1


def conform(df: DataFrame, table: TableContract) -> DataFrame:
    """Columns of the contract, in its order and types; fails on a missing column."""
    missing = [c for c in table.column_names if c not in df.columns]
    if missing:
        raise ValueError(f"{table.name}: missing columns {missing}")
    return df.select([F.col(c.name).cast(c.dtype).alias(c.name) for c in table.columns])


Scope = Mapping[str, str | tuple[str, ...]]


def _slice_predicate(run_date: dt.date, scope: Scope) -> str:
    terms = [f"{C.DT} = DATE'{run_date.isoformat()}'"]
    for column, value in sorted(scope.items()):
        values = (value,) if isinstance(value, str) else value
        terms.append(f"{column} IN ({', '.join(repr(v) for v in values)})")
    return " AND ".join(terms)


def write_partition(
    df: DataFrame,
    settings: Settings,
    table: TableContract,
    run_date: dt.date,
    scope: Scope | None = None,
) -> None:
    """Replace the slice ``dt = run_date`` (and ``column = value``, or ``column IN values``
    for a tuple, for each ``scope`` item: tables that several stages share) of ``table``
    with ``df`` in one Delta commit."""
    scope = scope or {}
    rows = conform(df, table)
    # Delta checks that every written row matches replaceWhere and fails the commit if not.
    (
        rows.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", _slice_predicate(run_date, scope))
        .save(table_path(settings, table))
    )


def write_partitions(
    spark: SparkSession,
    settings: Settings,
    writes: Sequence[tuple[TableContract, DataFrame, Scope]],
    run_date: dt.date,
) -> None:
    """Write several tables' ``dt`` partitions; on failure restore those already written.

    Delta commits are atomic per table. A failure between two commits is rolled back here by
    restoring the earlier tables to their previous versions; a process killed between commits
    is repaired by rerunning the stage, which is idempotent.
    """
    before = {t.name: table_version(spark, settings, t) for t, _, _ in writes}
    done: list[TableContract] = []
    try:
        for table, df, scope in writes:
            write_partition(df, settings, table, run_date, scope)
            done.append(table)
    except BaseException:
        for table in reversed(done):
            version = before[table.name]
            log.error("rolling back %s to version %d", table.name, version)
            DeltaTable.forPath(spark, table_path(settings, table)).restoreToVersion(version)
        raise


def read_partition(
    spark: SparkSession, settings: Settings, table: TableContract, run_date: dt.date
) -> DataFrame:
    return read_table(spark, settings, table).filter(F.col(C.DT) == F.lit(run_date))


def read_window(
    spark: SparkSession, settings: Settings, table: TableContract, first: dt.date, last: dt.date
) -> DataFrame:
    """Rows with ``first <= dt <= last`` (partition-pruned)."""
    return read_table(spark, settings, table).filter(
        (F.col(C.DT) >= F.lit(first)) & (F.col(C.DT) <= F.lit(last))
    )
