"""Reading, registering and writing the Delta tables declared in ``warehouse/tables.py``.

Every write replaces exactly its ``dt`` partitions (one run date, or every day of a range)
with ``replaceWhere`` (rule 1: idempotent). A stage that writes several tables uses
:func:`write_partitions`, which restores the tables it already committed if another write
fails (rule 3: atomic).

The rules cited by number are those of docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange, within
from recsys_lib.runtime.claims import table_lock
from recsys_lib.runtime.faults import fault_point, kill_on_new_file
from recsys_lib.runtime.spark import concurrently
from recsys_lib.warehouse.tables import ALL_TABLES, TableContract, conform

log = logging.getLogger(__name__)


def table_path(settings: Settings, table: TableContract) -> str:
    return f"{settings.warehouse}/{table.relative_path}"


_registered: dict[int, str] = {}
_ensured: dict[int, set[str]] = {}


def delta_version(spark: SparkSession, path: str) -> int:
    """Current Delta version of the table at ``path`` (-1 if there is none), read from its log
    on the driver: no Spark job."""
    jvm = spark._jvm
    assert jvm is not None
    empty = jvm.scala.Option.empty()
    log_ = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    return int(log_.update(False, empty, empty).version())


STATS_COLUMNS = "delta.dataSkippingStatsColumns"


def _snapshot(spark: SparkSession, path: str) -> Any:
    jvm = spark._jvm
    assert jvm is not None
    empty = jvm.scala.Option.empty()
    log_ = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    return log_.update(False, empty, empty)


def delta_columns(spark: SparkSession, path: str) -> list[str] | None:
    """The column names of the Delta table at ``path`` (None if there is none), read from its
    log on the driver: no Spark job."""
    snapshot = _snapshot(spark, path)
    if int(snapshot.version()) < 0:
        return None
    return [f["name"] for f in json.loads(snapshot.schema().json())["fields"]]


def delta_property(spark: SparkSession, path: str, key: str) -> str | None:
    """A table property of the Delta table at ``path`` (None if unset), from its log."""
    value = _snapshot(spark, path).metadata().configuration().get(key)
    return str(value.get()) if value.isDefined() else None


def create_missing_tables(spark: SparkSession, settings: Settings) -> None:
    """Create, empty and with their partitioning, the tables that do not exist yet; add to an
    existing table the (nullable) columns its contract has gained since it was created, so
    that a warehouse of an earlier version keeps working."""
    for table in ALL_TABLES:
        if _up_to_date(spark, settings, table):
            continue  # no lock: another run's long write of the table does not hold this up
        with table_lock(settings, table.name):  # another run may be creating it
            _ensure_table(spark, settings, table)


def _stats_property(table: TableContract) -> str | None:
    return ",".join(table.stats_columns) if table.stats_columns else None


def _up_to_date(spark: SparkSession, settings: Settings, table: TableContract) -> bool:
    """Whether the table exists with its contract's columns and statistics setting."""
    path = table_path(settings, table)
    columns = delta_columns(spark, path)
    if columns is None or any(c.name not in columns for c in table.columns):
        return False
    stats = _stats_property(table)
    return stats is None or delta_property(spark, path, STATS_COLUMNS) == stats


def _ensure_table(spark: SparkSession, settings: Settings, table: TableContract) -> None:
    path = table_path(settings, table)
    columns = delta_columns(spark, path)
    stats = _stats_property(table)
    if columns is None:
        builder = (
            DeltaTable.createIfNotExists(spark)
            .location(path)
            .addColumns(table.schema)
            .partitionedBy(*table.partition_by)
        )
        if stats:
            builder = builder.property(STATS_COLUMNS, stats)
        _create(spark, builder, path, table.name)
        return
    new = [c for c in table.columns if c.name not in columns]
    if new:
        added = ", ".join(f"`{c.name}` {c.dtype.simpleString()}" for c in new)
        log.warning("%s: adding the contract's new columns %s", table.name, added)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({added})")
    if stats and delta_property(spark, path, STATS_COLUMNS) != stats:
        log.warning("%s: statistics no longer kept for %s", table.name, table.user_columns)
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{STATS_COLUMNS}' = '{stats}')")


def _create(spark: SparkSession, builder: Any, path: str, name: str, attempts: int = 5) -> None:
    """Create a table. Where no lock keeps them apart (S3), two runs on a new warehouse may
    race to create it: the loser (a conflict, or a log whose first commit is not there yet)
    waits and finds it created."""
    for attempt in range(1, attempts + 1):
        try:
            builder.execute()
            return
        except Exception:
            if delta_columns(spark, path) is not None:
                log.info("%s: created by a concurrent run", name)
                return
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


def ensure_tables(spark: SparkSession, settings: Settings) -> None:
    """:func:`create_missing_tables`, once per session and warehouse (every stage calls it)."""
    done = _ensured.setdefault(id(spark), set())
    if settings.warehouse not in done:
        create_missing_tables(spark, settings)
        done.add(settings.warehouse)


def register_tables(
    spark: SparkSession, settings: Settings, *, create_missing: bool = True
) -> tuple[str, ...]:
    """Register every table as ``schema.table`` in this session's catalog (for SQL); returns
    the names of the tables left out because they do not exist yet.

    With ``create_missing`` (the stages' sessions) missing tables are created empty first;
    without it (a read-only session) nothing in the warehouse is written and missing
    tables stay unregistered. Done once per session and warehouse; a session that moves to
    another warehouse (tests do) re-points the names.
    """
    if _registered.get(id(spark)) == settings.warehouse:
        return ()
    if create_missing:
        ensure_tables(spark, settings)
    missing = []
    for table in ALL_TABLES:
        if not spark.catalog.databaseExists(table.schema_name):
            spark.sql(f"CREATE SCHEMA {table.schema_name}")
        # The tables are external (they have a LOCATION): dropping forgets the name only.
        spark.sql(f"DROP TABLE IF EXISTS {table.name}")
        path = table_path(settings, table)
        if not create_missing and delta_version(spark, path) < 0:
            missing.append(table.name)
            continue
        spark.sql(f"CREATE TABLE {table.name} USING DELTA LOCATION '{path}'")
    if not missing:
        _registered[id(spark)] = settings.warehouse
    return tuple(missing)


def read_table(spark: SparkSession, settings: Settings, table: TableContract) -> DataFrame:
    return spark.read.format("delta").load(table_path(settings, table))


def table_version(spark: SparkSession, settings: Settings, table: TableContract) -> int:
    """Current Delta version of a table (-1 if it does not exist yet); no Spark job."""
    return delta_version(spark, table_path(settings, table))


Scope = Mapping[str, str | tuple[str, ...]]
Days = dt.date | DayRange


def slice_predicate(days: Days, scope: Scope | None = None) -> str:
    """SQL predicate of the slice ``dt`` in ``days`` (and ``column IN values`` per scope item)."""
    span = DayRange.of(days)
    if span.first == span.last:
        terms = [f"{C.DT} = DATE'{span.first.isoformat()}'"]
    else:
        # Delta's replaceWhere does not resolve BETWEEN: two comparisons.
        terms = [
            f"{C.DT} >= DATE'{span.first.isoformat()}'",
            f"{C.DT} <= DATE'{span.last.isoformat()}'",
        ]
    for column, value in sorted((scope or {}).items()):
        values = (value,) if isinstance(value, str) else value
        terms.append(f"{column} IN ({', '.join(repr(v) for v in values)})")
    return " AND ".join(terms)


def write_partition(
    df: DataFrame,
    settings: Settings,
    table: TableContract,
    days: Days,
    scope: Scope | None = None,
) -> None:
    """Replace the slice ``dt`` in ``days`` (one run date or a :class:`DayRange`; and
    ``column = value``, or ``column IN values`` for a tuple, for each ``scope`` item: tables
    that several stages share) of ``table`` with ``df`` in one Delta commit."""
    rows = conform(df, table)
    path = table_path(settings, table)
    kill_on_new_file(f"mid_write:{table.name}", path)
    # Delta checks that every written row matches replaceWhere and fails the commit if not.
    try:
        with table_lock(settings, table.name):
            (
                rows.write.format("delta")
                .mode("overwrite")
                .option("replaceWhere", slice_predicate(days, scope))
                .save(path)
            )
    except Exception as exc:
        if is_write_conflict(exc):
            raise ConcurrentWriteError(
                f"{table.name} {slice_predicate(days, scope)}: another run committed to this "
                "slice while this one wrote it; nothing of this write was committed. Run one "
                'writer per stage and day (docs/operations.md, "Concurrent runs")'
            ) from exc
        raise
    fault_point(f"committed:{table.name}")


class ConcurrentWriteError(RuntimeError):
    """Delta refused a commit because another run changed the same slice meanwhile."""


def is_write_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is Delta's refusal of a commit that conflicts with a concurrent one
    (``ConcurrentAppendException``, ``ConcurrentDeleteReadException``...)."""
    return bool(_CONFLICT.search(f"{type(exc).__name__} {exc}"))


_CONFLICT = re.compile(
    r"DELTA_CONCURRENT_|DELTA_METADATA_CHANGED|DELTA_PROTOCOL_CHANGED"
    r"|(Concurrent\w+|MetadataChanged|ProtocolChanged)Exception"
)


def write_partitions(
    spark: SparkSession,
    settings: Settings,
    writes: Sequence[tuple[TableContract, DataFrame, Scope]],
    days: Days,
) -> None:
    """Write several tables' slices of ``days`` at once; on failure restore those written.

    Every frame is conformed to its contract before anything is written, so a missing column
    fails with nothing changed. The tables are then written concurrently (one Delta commit
    each: Spark's scheduler overlaps the small jobs of small data). Delta commits are atomic
    per table; when one write fails, the slices already committed are put back as they were
    (:func:`revert_slice`), leaving other runs' commits alone. A process killed between
    commits is repaired by rerunning the stage, which is idempotent.
    """
    for table, df, _ in writes:
        conform(df, table)
    before = {t.name: table_version(spark, settings, t) for t, _, _ in writes}
    outcomes = concurrently(
        [
            functools.partial(write_partition, df, settings, table, days, scope)
            for table, df, scope in writes
        ],
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if not failed:
        return
    for (table, _, scope), outcome in zip(writes, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            revert_slice(spark, settings, table, before[table.name], days, scope)
    raise failed[0]


def revert_slice(
    spark: SparkSession,
    settings: Settings,
    table: TableContract,
    version: int,
    days: Days,
    scope: Scope | None = None,
) -> None:
    """Put back the slice ``days``/``scope`` of ``table`` as it was at ``version``, in one
    commit that touches that slice only: other runs' commits to other slices since then
    stay (a RESTORE of the whole table would undo them)."""
    log.error("rolling back %s %s to its rows of version %d", table.name, days, version)
    predicate = slice_predicate(days, scope)
    path = table_path(settings, table)
    if version < 0:  # the table did not exist: the slice was empty
        previous = spark.createDataFrame([], table.schema)
    else:
        previous = (
            spark.read.format("delta").option("versionAsOf", version).load(path).filter(predicate)
        )
    with table_lock(settings, table.name):
        (
            conform(previous, table)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
            .save(path)
        )


def append_rows(df: DataFrame, settings: Settings, table: TableContract) -> None:
    """Add rows to ``table`` in one Delta commit, for a log whose entries never replace one
    another (``ops.erasures``)."""
    with table_lock(settings, table.name):
        conform(df, table).write.format("delta").mode("append").save(table_path(settings, table))


def read_partition(
    spark: SparkSession, settings: Settings, table: TableContract, days: Days
) -> DataFrame:
    """Rows of one run date, or of every day of a :class:`DayRange` (partition-pruned)."""
    span = DayRange.of(days)
    if span.first == span.last:
        return read_table(spark, settings, table).filter(F.col(C.DT) == F.lit(span.first))
    return read_window(spark, settings, table, span)


def read_window(
    spark: SparkSession, settings: Settings, table: TableContract, days: DayRange
) -> DataFrame:
    """Rows of the days of ``days`` (partition-pruned); see :func:`dates.window`."""
    return read_table(spark, settings, table).filter(within(days))
