"""Stage ``ingest``: the input rows of one day, as received, into ``raw.events`` and, when the
shop has a catalogue file (``input.item_properties_path``), ``raw.items``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.io import read_events
from recsys_lib.io.catalogue import read_item_properties
from recsys_lib.storage import write_partitions
from recsys_lib.tables import RAW_EVENTS, RAW_ITEMS, TableContract


def to_raw(rows: DataFrame, run_date: dt.date) -> DataFrame:
    """Input rows stamped with their run date and the ingest time."""
    return rows.withColumn(C.DT, F.lit(run_date)).withColumn(C.INGESTED_AT, F.current_timestamp())


def ingest_events(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Replace the ``run_date`` partitions of ``raw.events`` and ``raw.items`` with that day's
    input rows, both or neither (figures ``raw_rows``, ``raw_item_rows``).

    Both inputs are read and checked before anything is written. A day without catalogue
    rows (the usual case: snapshots are weekly) empties the ``raw.items`` partition, so a
    rerun leaves the same table. Without a configured catalogue, ``raw.items`` is untouched
    and ``raw_item_rows`` is not reported.
    """
    events = to_raw(read_events(spark, settings, run_date), run_date).cache()
    writes: list[tuple[TableContract, DataFrame, Mapping[str, str]]] = [(RAW_EVENTS, events, {})]
    figures = {"raw_rows": float(events.count())}
    items = None
    if settings.input.item_properties_path:
        path = settings.resolve(settings.input.item_properties_path)
        items = to_raw(read_item_properties(spark, path, run_date), run_date).cache()
        figures["raw_item_rows"] = float(items.count())
        writes.append((RAW_ITEMS, items, {}))
    try:
        write_partitions(spark, settings, writes, run_date)
    finally:
        events.unpersist()
        if items is not None:
            items.unpersist()
    return figures
