"""Stage ``ingest``: the input rows of some run dates, as received, into ``raw.events`` and,
when the shop has a catalogue file (``input.item_properties_path``), ``raw.items``.

A range of days is read and written in one pass; each day's partition gets exactly the rows
a run of that day alone would give it.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.io import load_events
from recsys_lib.io.catalogue import load_item_properties
from recsys_lib.warehouse.storage import Scope, write_partitions
from recsys_lib.warehouse.tables import RAW_EVENTS, RAW_ITEMS, TableContract

DayFigures = dict[dt.date, dict[str, float]]


def to_raw(rows: DataFrame) -> DataFrame:
    """Input rows (with their ``dt``) stamped with the ingest time."""
    return rows.withColumn(C.INGESTED_AT, F.current_timestamp())


def ingest(spark: SparkSession, settings: Settings, days: DayRange) -> DayFigures:
    """Replace the partitions of ``days`` in ``raw.events`` and ``raw.items`` with those days'
    input rows, both or neither (figures per day: ``raw_rows``, ``raw_item_rows``).

    Both inputs are read and checked before anything is written. A day without catalogue
    rows (the usual case: snapshots are weekly) empties its ``raw.items`` partition, so a
    rerun leaves the same table. Without a configured catalogue, ``raw.items`` is untouched
    and ``raw_item_rows`` is not reported.
    """
    inputs = [load_events(spark, settings, days)]
    writes: list[tuple[TableContract, DataFrame, Scope]] = [
        (RAW_EVENTS, to_raw(inputs[0].rows), {})
    ]
    figures = {d: {"raw_rows": float(n)} for d, n in inputs[0].rows_per_day.items()}
    try:
        if settings.input.item_properties_path:
            path = settings.resolve(settings.input.item_properties_path)
            inputs.append(load_item_properties(spark, path, days))
            writes.append((RAW_ITEMS, to_raw(inputs[1].rows), {}))
            for day, n in inputs[1].rows_per_day.items():
                figures[day]["raw_item_rows"] = float(n)
        write_partitions(spark, settings, writes, days)
    finally:
        # Cached input must not outlive the run: a later read of a changed file would match
        # the cached plan and see the old rows.
        for raw in inputs:
            raw.rows.unpersist()
    return figures
