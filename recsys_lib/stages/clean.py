"""Stage ``clean``: typed, deduplicated, pseudonymised events, the rows dropped by name and
the rows that were rejected (the rules are in :mod:`recsys_lib.transforms.cleaning`).

Every day records its reconciliation in ``ops.quality_checks``: input, clean, duplicate,
dropped and rejected rows (per reason and per dropped event name); ``unreconciled_rows``
must be 0 and ``rejected_share`` at most ``clean.max_rejected_share``, whose failure names
the reasons and the files.

The rules cited by number are those of docs/architecture.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.transforms.cleaning import CleanCounts, clean_events
from recsys_lib.transforms.privacy import pseudonym_column, require_key
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_partition
from recsys_lib.warehouse.tables import (
    CLEAN_EVENTS,
    CLEAN_EVENTS_REJECTED,
    RAW_EVENTS,
)

REJECT_REASONS = C.REJECT_REASONS


def describe_rejects(counts: CleanCounts, files: list[str] | None = None) -> str:
    """``bad_timestamp 990, unknown_event 9 in events_2026-10-01.csv``: the reasons of a
    day's rejected rows, most frequent first, and the files they came from."""
    ranked = sorted(counts.rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{reason} {n}" for reason, n in ranked)
    if files:
        text += " in " + ", ".join(sorted(files)[:3]) + (" ..." if len(files) > 3 else "")
    return text


def reconciliation_checks(
    counts: CleanCounts, max_rejected_share: float, files: list[str] | None = None
) -> list[quality.Check]:
    """Counts of the day and the two checks that guard them."""
    table = CLEAN_EVENTS.name
    share = counts.rejected_rows / counts.input_rows if counts.input_rows else 0.0
    share_check = quality.at_most(table, "rejected_share", share, max_rejected_share)
    if not share_check.passed:
        share_check = dataclasses.replace(share_check, detail=describe_rejects(counts, files))
    return [
        quality.measure(table, "input_rows", counts.input_rows),
        quality.measure(table, "clean_rows", counts.clean_rows),
        quality.measure(table, "duplicate_rows", counts.duplicate_rows),
        quality.measure(table, "dropped_rows", counts.dropped_rows),
        quality.measure(table, "rejected_rows", counts.rejected_rows),
        *[
            quality.measure(table, f"rejected_rows.{reason}", n)
            for reason, n in sorted(counts.rejected_by_reason.items())
        ],
        *[
            quality.measure(table, f"dropped_rows.{name}", n)
            for name, n in sorted(counts.dropped_by_event.items())
        ],
        quality.measure(table, "unparsed_categories", counts.unparsed_categories),
        quality.measure(table, "unparsed_prices", counts.unparsed_prices),
        quality.equals(table, "unreconciled_rows", counts.unreconciled_rows, 0),
        share_check,
    ]


def rejected_files(rejected: DataFrame, day: dt.date) -> list[str]:
    """The input files of a day's rejected rows (only asked when a day fails)."""
    rows = rejected.filter(F.col(C.DT) == F.lit(day)).select(C.SOURCE_FILE).distinct()
    return [r[0] for r in rows.limit(10).collect()]


def clean(
    spark: SparkSession, settings: Settings, days: DayRange
) -> dict[dt.date, dict[str, float]]:
    """Stage ``clean``: ``raw.events`` of ``days`` -> ``clean.events`` +
    ``clean.events_rejected``, with the reconciliation of every day (one pass for a range)."""
    require_key(settings)
    variable = settings.privacy.key_env
    raw = read_partition(spark, settings, RAW_EVENTS, days)
    result = clean_events(raw, lambda c: pseudonym_column(c, variable), settings.input, days=days)
    missing = [d for d, n in result.counts.items() if n.input_rows == 0]
    if missing:
        raise RuntimeError(
            f"raw.events has no rows for {', '.join(map(str, missing))}: run `ingest` first"
        )
    limit = settings.clean.max_rejected_share
    checks = {}
    for day, counts in result.counts.items():
        checks[day] = reconciliation_checks(counts, limit)
        if any(not c.passed for c in checks[day]):
            checks[day] = reconciliation_checks(counts, limit, rejected_files(result.rejected, day))
    # No contract pass over the events: the reconciliation is this stage's check.
    quality.write_checked_days(
        spark,
        settings,
        [(CLEAN_EVENTS, result.events), (CLEAN_EVENTS_REJECTED, result.rejected)],
        days,
        checks,
        contract=False,
    )
    return {day: {c.name: c.value for c in day_checks} for day, day_checks in checks.items()}
