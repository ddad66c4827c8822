"""Whether a day's input has arrived: the poke of the DAG's ``wait_for_input`` sensor.

Light on purpose (no Spark): a local input is found and checked as ingest would; an
``s3a://``/``s3://`` input is listed with boto3 against the endpoint of ``spark.conf``
(``spark.hadoop.fs.s3a.endpoint``). Other remote schemes are left to ingest, which lists them
through Spark and fails with the same message when the day is missing.
"""

from __future__ import annotations

import datetime as dt
import logging

from recsys_lib.config import S3_ENDPOINT, Settings, load_settings
from recsys_lib.io.files import input_arrived, is_remote, list_s3

log = logging.getLogger(__name__)


def missing_input(settings: Settings, day: dt.date) -> str | None:
    """None once ``day``'s events are at ``input.events_path``; otherwise what is missing."""
    root = settings.resolve(settings.input.events_path)
    if is_remote(root) and not root.startswith(("s3a://", "s3://")):
        log.info("input %s: only ingest can list this scheme; not waiting", root)
        return None
    endpoint = settings.spark.conf.get(S3_ENDPOINT)
    return input_arrived(settings.input, root, day, lambda uri: list_s3(uri, endpoint))


def input_ready(day: str) -> bool:
    """The sensor's poke for run date ``day`` (YYYY-MM-DD): True once the input is there."""
    missing = missing_input(load_settings(), dt.date.fromisoformat(day))
    if missing:
        log.info("waiting for the input of %s: %s", day, missing)
    return missing is None
