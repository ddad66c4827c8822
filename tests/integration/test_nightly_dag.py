"""The real DAG through `airflow dags test` on a generated shop: two days, then a rerun."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from recsys_lib.cli import airflow_dags_test, days, run_days
from recsys_lib.generator import generate_shop
from tests.conftest import REPO, TEST_KEY, make_settings
from tests.integration.helpers import (
    assert_no_raw_user_ids,
    assert_recommendations_sound,
    assert_reconciled,
    snapshot,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("project")
    shop = generate_shop(home / "data" / "shop", "default", scale=0.5, days=6)
    environ = {
        "RECSYS_HOME": str(home),
        "RECSYS_CONF_DIR": str(REPO / "conf"),
        "RECSYS_ENV": "local",
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__SPARK__SHUFFLE_PARTITIONS": "2",
        "RECSYS__SPARK__DRIVER_MEMORY": "2g",
        "RECSYS_PSEUDONYM_KEY": TEST_KEY,
        "AIRFLOW_HOME": str(home / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    saved = dict(os.environ)
    os.environ.update(environ)
    os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)
    try:
        yield make_settings(Path(home)), shop
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_two_nightly_runs_then_a_rerun_change_nothing(spark, project) -> None:
    settings, shop = project
    day1 = shop.last_day - dt.timedelta(days=1)
    day2 = shop.last_day
    run_days(settings, ["ingest", "clean"], days(shop.first_day, day1 - dt.timedelta(days=1)))

    airflow_dags_test(settings, day1)
    airflow_dags_test(settings, day2)
    for day in (day1, day2):
        checks = assert_reconciled(spark, settings, day)
        assert checks["rejected_rows"] > 0 and checks["duplicate_rows"] > 0  # generator's dirt
        recs = assert_recommendations_sound(spark, settings, day, settings.recommend.top_k)
        assert recs.filter("source = 'als'").count() > 0
    assert_no_raw_user_ids(spark, settings)
    before = snapshot(spark, settings)

    airflow_dags_test(settings, day1)
    after = snapshot(spark, settings)
    for table, rows in before.items():
        assert after[table] == rows, f"{table} changed on rerun"
