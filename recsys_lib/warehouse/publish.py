"""Write, audit, publish: a stage's output is staged, checked, and only then published.

The rows are written to a staging Delta table (``<warehouse>/_staging/<schema>/<table>/
dt=<day>``), read back and checked there; the checks go to ``ops.quality_checks`` either
way. Only when all pass is the staged partition published to the real table in one
``replaceWhere`` commit (rule 6). A failed check raises: yesterday's and today's published
rows stay as they were, and the staged rows stay for inspection.

The rules cited by number are those of docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.runtime.faults import fault_point
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.tables import TableContract, conform

log = logging.getLogger(__name__)

STAGING = "_staging"


def staging_path(settings: Settings, table: TableContract, run_date: dt.date) -> str:
    """Where ``table``'s rows of ``run_date`` wait for their audit."""
    return f"{settings.warehouse}/{STAGING}/{table.relative_path}/{C.DT}={run_date.isoformat()}"


def write_staged(
    spark: SparkSession, settings: Settings, table: TableContract, df: DataFrame, run_date: dt.date
) -> DataFrame:
    """Write ``df`` (conformed to the contract) to the staging location; returns the staged
    rows as read back from it."""
    path = staging_path(settings, table, run_date)
    conform(df, table).write.format("delta").mode("overwrite").option(
        "overwriteSchema", "true"
    ).save(path)
    fault_point(f"staged:{table.name}")
    return spark.read.format("delta").load(path)


def publish(
    spark: SparkSession,
    settings: Settings,
    table: TableContract,
    staged: DataFrame,
    checks: Sequence[quality.Check],
    run_date: dt.date,
) -> None:
    """Record ``checks``; publish ``staged`` as ``table``'s ``run_date`` partition if they all
    passed, otherwise raise ``QualityCheckError`` and leave the table untouched. The write is
    :func:`quality.write_checked` with the audit's checks in place of its contract checks."""
    try:
        quality.write_checked(
            spark, settings, [(table, staged)], run_date, extra_checks=checks, contract=False
        )
    except quality.QualityCheckError:
        log.error(
            "%s for %s not published; staged rows kept at %s",
            table.name,
            run_date,
            staging_path(settings, table, run_date),
        )
        raise
