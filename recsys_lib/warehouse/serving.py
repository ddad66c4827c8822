"""The serving store: each night's audited recommendations in a PostgreSQL table, for
downstream systems that cannot read Delta (``serving.enabled``; on in ``conf/cluster.yaml``).

A publish never shows a reader a mix or an empty table. The night's rows are written by
Spark's JDBC writer (the executors write in parallel) into a new table beside the served
one, keyed by ``(user_id, rank)`` and indexed for "the list of user U"; then one transaction
renames the served table away, renames the new one into its place, drops the old one and
records which night is served. A reader's query runs before the swap commits (the old
set) or after it (the new set): PostgreSQL makes the renames wait for running readers and
resolves a waiting reader's table name again once it gets its lock.

The table holds one night, the newest published: a rerun of that night replaces it (never
duplicates), and an older night is not served over a newer one (the publish says so and
does nothing). The connection comes from ``serving.url`` (without a password: libpq's
``PGPASSWORD``) or from an Airflow connection (``serving.conn_id``, its
``AIRFLOW_CONN_<ID>`` variable); a password written into the configuration is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import ConfigError, ServingSettings
from recsys_lib.runtime.faults import fault_point
from recsys_lib.warehouse.tables import USER_RECOMMENDATIONS, conform

log = logging.getLogger(__name__)

PASSWORD_ENV = "PGPASSWORD"
_DDL_TYPES = {"date": "DATE", "string": "TEXT", "bigint": "BIGINT", "int": "INTEGER",
              "double": "DOUBLE PRECISION"}  # fmt: skip


@dataclass(frozen=True)
class Connection:
    """Where the serving database is; the password is never part of ``url``."""

    host: str
    port: int
    database: str
    user: str
    password: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def connect(self) -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.user,
            password=self.password or None,
        )


def connection(settings: ServingSettings, environ: dict[str, str] | None = None) -> Connection:
    """The serving database of the configuration: ``serving.url`` with the password from
    ``PGPASSWORD``, or the Airflow connection ``serving.conn_id`` (its URI may hold one)."""
    environ = dict(os.environ) if environ is None else environ
    if settings.conn_id:
        name = f"AIRFLOW_CONN_{settings.conn_id.upper()}"
        if name not in environ:
            raise ConfigError(f"serving.conn_id: no Airflow connection {name} in the environment")
        uri, from_config = environ[name], False
    elif settings.url:
        uri, from_config = settings.url, True
    else:
        raise ConfigError("serving.enabled needs serving.url or serving.conn_id")
    parts = urlparse(uri)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"serving: {parts.scheme}:// is not a PostgreSQL URL")
    if parts.password and from_config:
        raise ConfigError(
            f"serving.url holds a password: set {PASSWORD_ENV} (or ~/.pgpass) instead, or use "
            "serving.conn_id"
        )
    return Connection(
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        database=(parts.path or "/").lstrip("/") or "postgres",
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or "") or environ.get(PASSWORD_ENV, ""),
    )


def _quoted(*names: str) -> str:
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)


def _create_table_sql(schema: str, table: str) -> str:
    columns = ", ".join(
        f"{_quoted(c.name)} {_DDL_TYPES[c.dtype.simpleString()]}"
        + ("" if c.nullable else " NOT NULL")
        for c in USER_RECOMMENDATIONS.columns
    )
    return (
        f"CREATE TABLE {_quoted(schema, table)} ({columns}, "
        f"PRIMARY KEY ({_quoted(C.USER_ID)}, {_quoted(C.RANK)}))"
    )


def served_night(conn: Connection, settings: ServingSettings) -> dt.date | None:
    """The night the serving table holds (None before the first publish)."""
    with closing(conn.connect()) as db, db.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{settings.schema}.{settings.table}_state",))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(f"SELECT served_dt FROM {_quoted(settings.schema, settings.table + '_state')}")
        row = cur.fetchone()
        return row[0] if row else None


def publish_serving(rows: DataFrame, settings: ServingSettings, run_date: dt.date) -> int:
    """Serve ``rows`` (``recs.user_recommendations`` of ``run_date``, already audited) in
    place of the served night, atomically; returns the rows served (0 when a newer night is
    served already and nothing changed). Publishes of one table wait for each other."""
    conn = connection(settings)
    schema, table = settings.schema, settings.table
    state = table + "_state"
    with closing(conn.connect()) as guard, guard.cursor() as lock:
        guard.autocommit = True
        lock.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{schema}.{table}",))
        with closing(conn.connect()) as db, db.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {_quoted(schema, state)} "
                "(served_dt DATE NOT NULL, rows BIGINT NOT NULL, served_at TIMESTAMPTZ NOT NULL)"
            )
            # Tables a killed publish left behind (a live publish holds the lock).
            cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
                (schema, table.replace("_", r"\_") + r"\_\_%"),
            )
            for (leftover,) in cur.fetchall():
                cur.execute(f"DROP TABLE {_quoted(schema, leftover)}")
            db.commit()
        served = served_night(conn, settings)
        if served is not None and served > run_date:
            log.warning("serving: %s is served; %s is not published over it", served, run_date)
            return 0
        return _write_and_swap(rows, conn, settings, run_date)


def _write_and_swap(
    rows: DataFrame, conn: Connection, settings: ServingSettings, run_date: dt.date
) -> int:
    schema, table = settings.schema, settings.table
    state = table + "_state"
    new = f"{table}__{run_date:%Y%m%d}_{secrets.token_hex(4)}"
    with closing(conn.connect()) as db, db.cursor() as cur:
        cur.execute(_create_table_sql(schema, new))
        db.commit()
    frame = conform(rows.filter(F.col(C.DT) == F.lit(run_date)), USER_RECOMMENDATIONS)
    try:
        (
            frame.write.format("jdbc")
            .option("url", conn.jdbc_url)
            .option("dbtable", f"{schema}.{new}")
            .option("user", conn.user)
            .option("password", conn.password)
            .option("driver", "org.postgresql.Driver")
            .option("batchsize", settings.batch_rows)
            .mode("append")
            .save()
        )
        fault_point("serving_loaded")
        with closing(conn.connect()) as db, db.cursor() as cur:
            cur.execute(f"ANALYZE {_quoted(schema, new)}")
            cur.execute(f"SELECT count(*) FROM {_quoted(schema, new)}")
            count = int(cur.fetchone()[0])
            # The swap: one transaction, so a reader sees the old set or the new one.
            cur.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",))
            if cur.fetchone()[0] is not None:
                cur.execute(
                    f"ALTER TABLE {_quoted(schema, table)} RENAME TO {_quoted(new + '_old')}"
                )
            cur.execute(f"ALTER TABLE {_quoted(schema, new)} RENAME TO {_quoted(table)}")
            cur.execute(f"DROP TABLE IF EXISTS {_quoted(schema, new + '_old')}")
            cur.execute(f"DELETE FROM {_quoted(schema, state)}")
            cur.execute(
                f"INSERT INTO {_quoted(schema, state)} VALUES (%s, %s, now())", (run_date, count)
            )
            db.commit()
    except BaseException:
        with closing(conn.connect()) as db, db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {_quoted(schema, new)}")
            db.commit()
        raise
    log.info("serving: %s rows of %s served in %s.%s", count, run_date, schema, table)
    return count


def erase_users(settings: ServingSettings, users: Sequence[str]) -> int:
    """Delete the served rows of ``users`` (pseudonyms); the rows deleted (0 before the
    first publish)."""
    conn = connection(settings)
    with closing(conn.connect()) as db, db.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{settings.schema}.{settings.table}",))
        if cur.fetchone()[0] is None:
            return 0
        cur.execute(
            f"DELETE FROM {_quoted(settings.schema, settings.table)} "
            f"WHERE {_quoted(C.USER_ID)} = ANY(%s)",
            (list(users),),
        )
        deleted = int(cur.rowcount)
        db.commit()
    return deleted
