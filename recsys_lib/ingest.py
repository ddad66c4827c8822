"""Stage ``ingest``: the input rows of one day, as received, into ``raw.events``."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.io import read_events
from recsys_lib.storage import write_partition
from recsys_lib.tables import RAW_EVENTS


def to_raw_events(rows: DataFrame, run_date: dt.date) -> DataFrame:
    """Input rows stamped with their run date and the ingest time."""
    return rows.withColumn(C.DT, F.lit(run_date)).withColumn(C.INGESTED_AT, F.current_timestamp())


def ingest_events(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Replace ``raw.events`` partition ``run_date`` with that day's input rows."""
    raw = to_raw_events(read_events(spark, settings, run_date), run_date).cache()
    rows = raw.count()
    write_partition(raw, settings, RAW_EVENTS, run_date)
    raw.unpersist()
    return {"raw_rows": float(rows)}
