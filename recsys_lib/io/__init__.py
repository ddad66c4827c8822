"""Readers of input formats. Each returns raw rows (all fields as text) of some run dates."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.io.retailrocket import RawInput, load_retailrocket_events

READERS = {"retailrocket": load_retailrocket_events}


def load_events(spark: SparkSession, settings: Settings, days: dt.date | DayRange) -> RawInput:
    """Raw event rows of ``days`` from the configured input (``input.format``), with ``dt``."""
    try:
        reader = READERS[settings.input.format]
    except KeyError:
        raise ValueError(
            f"input.format={settings.input.format!r} is not supported; known: {sorted(READERS)}"
        ) from None
    return reader(spark, settings.resolve(settings.input.events_path), days)
