"""Data quality checks: measured, recorded in ``ops.quality_checks``, failing loudly."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from recsys_lib.tables import QUALITY_CHECKS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One measured value of a table and, if it has one, the limit it must respect."""

    table: str
    name: str
    value: float
    threshold: float | None = None
    passed: bool = True


class QualityCheckError(RuntimeError):
    """A check failed; the stage stops before publishing."""


def at_most(table: str, name: str, value: float, limit: float) -> Check:
    return Check(table, name, float(value), float(limit), value <= limit)


def at_least(table: str, name: str, value: float, limit: float) -> Check:
    return Check(table, name, float(value), float(limit), value >= limit)


def equals(table: str, name: str, value: float, expected: float) -> Check:
    return Check(table, name, float(value), float(expected), value == expected)


def measure(table: str, name: str, value: float) -> Check:
    return Check(table, name, float(value))


def checks_frame(spark: SparkSession, checks: Sequence[Check], run_date: dt.date) -> DataFrame:
    """Rows of ``ops.quality_checks`` for these checks."""
    rows = [(run_date, c.table, c.name, c.value, c.threshold, c.passed) for c in checks]
    return spark.createDataFrame(rows, QUALITY_CHECKS.schema)


def raise_on_failure(checks: Sequence[Check]) -> None:
    """Log every check; raise naming each failed check and its value."""
    for c in checks:
        log.info(
            "check %s.%s = %s (threshold %s): %s",
            c.table,
            c.name,
            c.value,
            c.threshold,
            "ok" if c.passed else "FAILED",
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        described = "; ".join(
            f"{c.table}.{c.name} = {c.value:g} (threshold {c.threshold:g})"
            for c in failed
            if c.threshold is not None
        )
        raise QualityCheckError(f"quality check failed: {described}")
