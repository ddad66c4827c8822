"""``recsys erase-user`` (and the ``recsys_erase_user`` DAG): the right to erasure.

Given raw user ids, every row of those users leaves every table: ``raw.*`` by the raw id,
every other table by its pseudonym (the HMAC of the id under the configured key), with one
Delta DELETE per table that holds any. The ``_staging/`` copies holding them are deleted,
the ALS model artifacts that hold their ids and factors are rewritten without them, and the
serving table loses their rows. The files that still hold the deleted rows (the tables'
earlier versions) are deleted by the maintenance DAG's VACUUM once they are older than
``maintenance.vacuum_retention_hours``; ``files_gone_after`` says when. Delta keeps no
statistics of user columns in its log (``TableContract.stats_columns``), so no id outlives
its rows there.

The erasure is recorded in ``ops.erasures`` with counts only, never the ids.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.models import als
from recsys_lib.runtime.claims import alone, table_lock
from recsys_lib.transforms.privacy import hmac_sha256_hex, pseudonym_key
from recsys_lib.warehouse import maintenance, serving
from recsys_lib.warehouse.storage import append_rows, read_table, table_path, table_version
from recsys_lib.warehouse.tables import ALL_TABLES, ERASURES

log = logging.getLogger(__name__)

STAGE = "erase_user"
_ERASED = "erased_id"


def read_ids(path: Path) -> list[str]:
    """User ids from a file: one a line; blank lines and ``#`` comments skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def pseudonyms(settings: Settings, raw_ids: Iterable[str]) -> list[str]:
    """The pseudonyms ``clean`` gives these raw ids (it trims spaces first)."""
    key = pseudonym_key(settings)
    return sorted({hmac_sha256_hex(key, raw.strip(" ")) for raw in raw_ids})


def erase_users(
    spark: SparkSession, settings: Settings, raw_ids: Iterable[str], run_date: dt.date
) -> dict[str, float]:
    """Erase the users ``raw_ids`` (see the module docstring); the figures recorded."""
    ids = sorted({raw.strip(" ") for raw in raw_ids if raw.strip()})
    if not ids:
        raise ValueError("no user ids to erase")
    # Alone: no stage may hold a user's rows in flight while they are erased (it would write
    # them back), and stages that start meanwhile wait for the erasure.
    with alone(settings, f"{STAGE} for {run_date}"):
        return _erase(spark, settings, ids, run_date)


def _erase(
    spark: SparkSession, settings: Settings, ids: list[str], run_date: dt.date
) -> dict[str, float]:
    hashed = pseudonyms(settings, ids)
    erasure_id = uuid.uuid4().hex
    rows: dict[str, int] = {}
    # A MERGE with the ids as its source, not a DELETE: Delta writes a DELETE's predicate,
    # with its literal values, into the commit's log entry, which VACUUM never removes.
    erased = {
        C.RAW_USER: spark.createDataFrame([(i,) for i in ids], f"{_ERASED} string"),
        C.USER_ID: spark.createDataFrame([(h,) for h in hashed], f"{_ERASED} string"),
    }
    for table in ALL_TABLES:
        if not table.user_columns or table_version(spark, settings, table) < 0:
            continue
        column = table.user_columns[0]
        value = F.trim(F.col(C.RAW_USER)) if column == C.RAW_USER else F.col(C.USER_ID)
        found = (
            read_table(spark, settings, table)
            .join(F.broadcast(erased[column]), value == F.col(_ERASED), "left_semi")
            .count()
        )
        if found:
            target = DeltaTable.forPath(spark, table_path(settings, table)).alias("t")
            matched = (
                f"trim(t.`{C.RAW_USER}`) = e.{_ERASED}"
                if column == C.RAW_USER
                else f"t.`{C.USER_ID}` = e.{_ERASED}"
            )
            with table_lock(settings, table.name):
                merge = target.merge(erased[column].alias("e"), matched)
                merge.whenMatchedDelete().execute()
        rows[table.name] = found
    staged = maintenance.erase_from_staging(spark, settings, hashed)
    artifacts = als.erase_users(settings, hashed, erasure_id)
    served = serving.erase_users(settings.serving, hashed) if settings.serving.enabled else 0
    finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    gone_after = finished + dt.timedelta(hours=settings.maintenance.vacuum_retention_hours)
    record = spark.createDataFrame(
        [(run_date, erasure_id, len(ids), rows, staged, artifacts, served, gone_after, finished)],
        ERASURES.schema,
    )
    append_rows(record, settings, ERASURES)
    figures = {
        "users": float(len(ids)),
        "rows_deleted": float(sum(rows.values())),
        "staged_partitions_deleted": float(staged),
        "artifacts_rewritten": float(artifacts),
        "serving_rows_deleted": float(served),
    }
    log.info(
        "erasure %s: %s; the old files go with the first VACUUM after %s UTC",
        erasure_id,
        figures,
        gone_after.isoformat(timespec="minutes"),
    )
    return figures
