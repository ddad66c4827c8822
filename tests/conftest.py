"""Shared fixtures: one Spark session for the whole run, settings rooted in a temp dir."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys_lib.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RR_SAMPLE = SHARED_DATA / "retailrocket" / "events_sample_5000_visitors.csv.gz"
RR_TREE = SHARED_DATA / "retailrocket" / "category_tree.csv.gz"
TEST_KEY = "test-pseudonym-key"


def make_settings(home: Path, **overrides: str) -> Settings:
    """Settings of the local environment with ``home`` as project root (own warehouse,
    MLflow store, Airflow home) and the repo's jar cache."""
    environ = {
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__SPARK__SHUFFLE_PARTITIONS": "2",
        "RECSYS__SPARK__DRIVER_MEMORY": "2g",
        "RECSYS_PSEUDONYM_KEY": TEST_KEY,
        **{f"RECSYS__{k.upper()}": v for k, v in overrides.items()},
    }
    return load_settings("local", conf_dir=REPO / "conf", home=home, environ=environ)


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spark_home")


@pytest.fixture(scope="session")
def spark(spark_home: Path) -> Iterator[object]:
    """The one Spark session of the test run (UI off, two shuffle partitions)."""
    from recsys_lib.spark import get_spark

    os.environ.setdefault("RECSYS_PSEUDONYM_KEY", TEST_KEY)
    settings = make_settings(spark_home)
    no_ui = {**settings.spark.conf, "spark.ui.enabled": "false"}
    settings = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, conf=no_ui))
    session = get_spark(settings, app_name="recsys-tests")
    yield session
    session.stop()


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)
