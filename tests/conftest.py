"""Shared fixtures: one Spark session for the whole run, settings rooted in a temp dir."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys_lib.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RR_SAMPLE = SHARED_DATA / "retailrocket" / "events_sample_5000_visitors.csv.gz"
RR_TREE = SHARED_DATA / "retailrocket" / "category_tree.csv.gz"
TEST_KEY = "test-pseudonym-key"
# The tests set their key explicitly, before any JVM starts: the Spark session's Python
# workers, which compute the pseudonyms, inherit the environment it had then.
os.environ["RECSYS_PSEUDONYM_KEY"] = TEST_KEY
# The driver memory of the Spark processes the tests start (spark-submit tasks, drivers).
TEST_DRIVER_MEMORY = "4g"
# One session runs every Spark test in-process: its heap ran out mid-suite at 2g, and at 4g
# on 2026-12-07 (test_categories, "Not enough memory to build and broadcast the table",
# after ~45 min of the suite), so it has more than the processes it starts.
SESSION_DRIVER_MEMORY = "6g"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test that uses the Spark session ``spark``: ``-m "not spark"`` runs the
    pure tests alone, in seconds."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


def _test_environ(overrides: dict[str, str]) -> dict[str, str]:
    return {
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__SPARK__SHUFFLE_PARTITIONS": "2",
        "RECSYS__SPARK__DRIVER_MEMORY": TEST_DRIVER_MEMORY,
        "RECSYS_PSEUDONYM_KEY": TEST_KEY,
        "RECSYS_TUNED": "off",  # a developer's conf/tuned.yaml does not move the tests
        **{f"RECSYS__{k.upper()}": v for k, v in overrides.items()},
    }


def make_settings(home: Path, **overrides: str) -> Settings:
    """Settings of the local environment with ``home`` as project root (own warehouse,
    MLflow store, Airflow home) and the repo's jar cache."""
    environ = _test_environ(overrides)
    return load_settings("local", conf_dir=REPO / "conf", home=home, environ=environ)


def recsys_environ(home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a ``recsys`` subprocess whose settings are
    ``make_settings(home, **overrides)`` (with the class archive of ``make setup``)."""
    return {
        **os.environ,
        "RECSYS_HOME": str(home),
        "RECSYS_CONF_DIR": str(REPO / "conf"),
        "RECSYS_ENV": "local",
        "RECSYS__PATHS__JVM_ARCHIVE": str(REPO / ".cache" / "jvm" / "recsys.jsa"),
        **_test_environ(overrides),
    }


def claims_left(settings: Settings) -> list[Path]:
    """The claim files under the warehouse (not the lock files beside them)."""
    root = Path(settings.warehouse, "_claims")
    return [p for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts]


def table_frame(spark: object, table: object, rows: list[tuple]) -> object:
    """A frame of ``table``'s contract from tuples that may leave out its trailing columns
    (nullable ones a test does not need), which are then null."""
    n = len(table.schema.fields)  # type: ignore[attr-defined]
    padded = [tuple(r) + (None,) * (n - len(r)) for r in rows]
    return spark.createDataFrame(padded, table.schema)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One PostgreSQL server for the whole test run (the wheel's server, on 127.0.0.1),
    stopped at the end; its password is in PGPASSWORD while it runs, as in a deployment."""
    from recsys_lib.devtools.local_postgres import local_postgres

    with local_postgres(tmp_path_factory.mktemp("postgres")) as server:
        os.environ["PGPASSWORD"] = server.password
        try:
            yield server
        finally:
            os.environ.pop("PGPASSWORD", None)


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spark_home")


@pytest.fixture(scope="session")
def spark(spark_home: Path) -> Iterator[object]:
    """The one Spark session of the test run (UI off, two shuffle partitions)."""
    from recsys_lib.runtime.spark import get_spark

    os.environ["RECSYS_PSEUDONYM_KEY"] = TEST_KEY
    settings = make_settings(spark_home, SPARK__DRIVER_MEMORY=SESSION_DRIVER_MEMORY)
    no_ui = {**settings.spark.conf, "spark.ui.enabled": "false"}
    settings = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, conf=no_ui))
    session = get_spark(settings, app_name="recsys-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module", autouse=True)
def _release_spark_memory() -> Iterator[None]:
    """After each module, if the session is up: drop its cached frames and the Delta logs
    (with their cached table states) of tables that lived in that module's temp dirs."""
    yield
    if "pyspark.sql" not in sys.modules:
        return
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture()
def local_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's in-process S3 with test credentials, for tests without Spark; yields a boto3
    S3 client."""
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("s3")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)
