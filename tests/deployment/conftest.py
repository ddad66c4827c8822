"""What the deployment tests share: one S3-compatible server (moto's, on 127.0.0.1) for the
whole session, with the warehouse bucket, and the settings that put a warehouse on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO, TEST_KEY

BUCKET = "recsys-warehouse"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "recsys", "AWS_SECRET_ACCESS_KEY": "recsys-secret"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The server's URL; the bucket ``BUCKET`` exists. Stopped at the end of the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_client(endpoint: str):  # noqa: ANN201 - boto3's client type
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def s3_settings(endpoint: str, prefix: str) -> dict[str, str]:
    """Settings overrides (``SECTION__KEY``) of a warehouse under ``prefix`` of the bucket."""
    return {
        "PATHS__WAREHOUSE": f"s3a://{BUCKET}/{prefix}",
        "SPARK__CONF__spark.hadoop.fs.s3a.endpoint": endpoint,
        "SPARK__CONF__spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "SPARK__CONF__spark.hadoop.fs.s3a.path.style.access": "true",
        "SPARK__CONF__spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    }


def driver_environ(home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a driver process (a ``recsys`` command, a ``spark-submit``) whose
    warehouse or input is on the S3 server: the object store's credentials and jars, the
    tests' key, small memory; ``overrides`` as settings (``SECTION__KEY``)."""
    return {
        **os.environ,
        **CREDENTIALS,
        "RECSYS_HOME": str(home),
        "RECSYS_CONF_DIR": str(REPO / "conf"),
        "RECSYS_ENV": "local",
        "RECSYS_PSEUDONYM_KEY": TEST_KEY,
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__PATHS__OBJECT_STORE_JARS_CACHE": str(REPO / ".cache" / "ivy-s3"),
        "RECSYS__SPARK__SHUFFLE_PARTITIONS": "2",
        "RECSYS__SPARK__DRIVER_MEMORY": "2g",
        **{f"RECSYS__{k}": v for k, v in overrides.items()},
    }
