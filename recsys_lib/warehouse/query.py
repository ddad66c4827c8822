"""Read-only SQL over the warehouse, without a JVM: ``recsys query``.

A statement runs in DuckDB, in memory, over the Delta tables it names. What makes it
read-only is the engine, not the text:

- DuckDB's own parser must find exactly one statement, of the kind ``SELECT`` (which
  includes ``WITH``, ``VALUES``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE``); anything else is
  refused before a table is opened;
- the tables reach DuckDB as views over a lazy scan of their Parquet files (delta-rs finds
  the files of the current version, polars reads them, as Arrow). DuckDB has no Delta
  writer here and no path to the warehouse's files, so no statement could change a table
  even if it got past the parser;
- the connection is in memory, with external access off (no file, network, ``COPY``,
  ``ATTACH``, ``INSTALL`` or ``LOAD``), extension auto-loading off and its configuration
  locked before the statement runs. There is no JVM, so no ``reflect`` or ``java_method``.

A table that no stage has written yet is an error naming it; nothing is created.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recsys_lib.config import S3_ENDPOINT, Settings
from recsys_lib.warehouse.tables import ALL_TABLES, TableContract

# Set before the user's statement runs; ``lock_configuration`` then keeps them.
_LOCKED_DOWN: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


class QueryRefused(ValueError):
    """The statement is not one read-only query."""


class MissingTableError(LookupError):
    """A query names a table that no stage has written yet."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def checked_statement(sql: str) -> str:
    """``sql`` if DuckDB's parser finds exactly one ``SELECT`` in it; else :class:`QueryRefused`
    with one line saying why."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryRefused(f"not a query DuckDB can parse: {first}") from None
    if len(statements) != 1:
        raise QueryRefused(
            f"one statement at a time: found {len(statements)} (recsys query only reads)"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(
            f"only a SELECT (or WITH ... SELECT) runs here; this is {kind.name}: "
            "recsys query only reads"
        )
    return sql


def delta_uri(settings: Settings, table: TableContract) -> str:
    """The table's location as delta-rs names it (``s3://`` where Spark has ``s3a://``)."""
    path = f"{settings.warehouse}/{table.relative_path}"
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs's options for the warehouse: the S3 endpoint Spark uses (credentials and
    region come from the usual ``AWS_*`` variables); empty on a local disk."""
    if not settings.warehouse.startswith(("s3a://", "s3://")):
        return {}
    options = {"AWS_REGION": os.environ.get("AWS_REGION", "us-east-1")}
    endpoint = settings.spark.conf.get(S3_ENDPOINT, "")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def _referenced(sql: str) -> list[TableContract]:
    """The warehouse's tables the statement names, from DuckDB's parse tree (its base-table
    references as ``schema.table``; CTE names and aliases are not tables)."""
    import duckdb

    with duckdb.connect(":memory:", config=_LOCKED_DOWN) as con:
        serialized = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(serialized[0]) if serialized else {}
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                names.add(f"{node.get('schema_name', '')}.{node.get('table_name', '')}".lower())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return [t for t in ALL_TABLES if t.name in names]


def _delta_table(settings: Settings, table: TableContract) -> Any:
    """The table's current version (delta-rs); :class:`MissingTableError` if no stage has
    written it."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(delta_uri(settings, table), storage_options=storage_options(settings))
    except TableNotFoundError:
        raise MissingTableError(
            f"table {table.name} does not exist in {settings.warehouse} yet: no stage has "
            "written it (`recsys run` or a DAG run creates it)"
        ) from None


def _scan(settings: Settings, table: TableContract) -> Any:
    """A lazy scan of the table's current version. DuckDB pushes its column choice and
    filters (``dt`` first of all) into it, so a query reads only the files it needs. (A
    pyarrow dataset would too, but DuckDB abandoning one mid-scan, after a ``LIMIT``, leaves
    pyarrow threads reading that crash the process at exit.)"""
    import polars as pl

    return pl.scan_delta(_delta_table(settings, table), storage_options=storage_options(settings))


def _connection(settings: Settings, tables: Sequence[TableContract]) -> Any:
    """An in-memory DuckDB with ``tables`` as views ``schema.table`` and nothing else it
    can reach; its configuration locked."""
    import duckdb

    con = duckdb.connect(":memory:", config=_LOCKED_DOWN)
    con.execute("SET python_enable_replacements = false")  # no Python variable is a table
    for table in tables:
        hidden = f"_delta_{table.schema_name}_{table.table_name}"
        con.register(hidden, _scan(settings, table))
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.schema_name}"')
        con.execute(
            f'CREATE VIEW "{table.schema_name}"."{table.table_name}" AS SELECT * FROM "{hidden}"'
        )
    con.execute("SET lock_configuration = true")
    return con


def run_query(settings: Settings, sql: str, limit: int = 0) -> QueryResult:
    """The rows of one read-only ``SELECT`` over the warehouse (at most ``limit``; 0: all).

    Raises :class:`QueryRefused` for anything but one ``SELECT``, :class:`MissingTableError`
    for a table no stage has written, and DuckDB's own error for a query it cannot run.
    """
    import duckdb

    statement = checked_statement(sql)
    con = _connection(settings, _referenced(statement))
    try:
        cursor = con.execute(statement)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchmany(limit) if limit > 0 else cursor.fetchall()
    except duckdb.PermissionException as exc:
        raise QueryRefused(f"refused: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    return QueryResult(columns, [tuple(r) for r in rows])


HISTORY_COLUMNS = ("version", "timestamp", "operation", "operationParameters", "operationMetrics")


def table_history(settings: Settings, name: str, limit: int = 0) -> QueryResult:
    """A table's Delta history, newest first (what Spark's ``DESCRIBE HISTORY`` shows): its
    version, commit time (UTC), operation, the operation's parameters and metrics. ``name``
    must be one of the warehouse's tables."""
    import datetime as dt

    tables = {t.name: t for t in ALL_TABLES}
    if name.lower() not in tables:
        raise QueryRefused(f"no table {name!r}; tables: {', '.join(sorted(tables))}")
    table = tables[name.lower()]
    rows = []
    for entry in _delta_table(settings, table).history(limit or None):
        stamp = entry.get("timestamp")
        when = dt.datetime.fromtimestamp(stamp / 1000, dt.UTC) if stamp is not None else None
        rows.append((entry.get("version"), when, *(entry.get(c) for c in HISTORY_COLUMNS[2:])))
    return QueryResult(list(HISTORY_COLUMNS), rows)
