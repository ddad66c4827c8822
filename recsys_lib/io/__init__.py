"""Readers of input formats. Each returns raw rows (all fields as text) for one run date."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession

from recsys_lib.config import Settings
from recsys_lib.io.retailrocket import read_retailrocket_events

READERS = {"retailrocket": read_retailrocket_events}


def read_events(spark: SparkSession, settings: Settings, run_date: dt.date) -> DataFrame:
    """Raw event rows of ``run_date`` from the configured input (``input.format``)."""
    try:
        reader = READERS[settings.input.format]
    except KeyError:
        raise ValueError(
            f"input.format={settings.input.format!r} is not supported; known: {sorted(READERS)}"
        ) from None
    return reader(spark, settings.resolve(settings.input.events_path), run_date)
