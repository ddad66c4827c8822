"""The real DAG through `airflow dags test` on a generated shop: history and three nightly
runs in-process (the ranker needs three label days), the next night through Airflow (it
trains, promotes and serves the first ranker), then a rerun that must change nothing."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.cli import airflow_dags_test, backfill, days, run_days
from recsys_lib.dates import DayRange
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.models.registry import load_champion
from recsys_lib.pipeline import HISTORY_STAGES, NIGHTLY
from recsys_lib.warehouse.storage import read_table
from recsys_lib.warehouse.tables import CLEAN_ITEMS, MODEL_EVALUATION
from tests.conftest import REPO, TEST_DRIVER_MEMORY, TEST_KEY, make_settings
from tests.integration.helpers import (
    SMALL_MODELS,
    assert_candidates_filled,
    assert_features_filled,
    assert_no_raw_user_ids,
    assert_ranked_by_the_champion,
    assert_recommendations_sound,
    assert_reconciled,
    assert_samples_labelled,
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
        "RECSYS__SPARK__DRIVER_MEMORY": TEST_DRIVER_MEMORY,
        **SMALL_MODELS,
        "RECSYS_PSEUDONYM_KEY": TEST_KEY,
        "AIRFLOW_HOME": str(home / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    saved = dict(os.environ)
    os.environ.update(environ)
    os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)
    try:
        yield (
            make_settings(
                Path(home), **{k.removeprefix("RECSYS__"): v for k, v in SMALL_MODELS.items()}
            ),
            shop,
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_nightly_run_through_airflow_then_a_rerun_change_nothing(spark, project) -> None:
    settings, shop = project
    nights = days(shop.last_day - dt.timedelta(days=3), shop.last_day - dt.timedelta(days=1))
    last = shop.last_day
    # History in one range pass (equal to day by day: test_backfill), then the nights' own
    # stages in date order. The first night has no yesterday's candidates to label, so it
    # runs only up to what the next night reads: its candidates.
    backfill(settings, HISTORY_STAGES, DayRange(shop.first_day, nights[-1]))
    run_days(settings, C.FIRST_NIGHT_STAGES, nights[:1])
    run_days(settings, C.WINDOWED_STAGES, nights[1:])
    assert load_champion(settings) is None  # two label days so far: no ranker yet

    airflow_dags_test(settings, last)
    for day in (nights[-1], last):
        checks = assert_reconciled(spark, settings, day)
        assert checks["rejected_rows"] > 0 and checks["duplicate_rows"] > 0  # generator's dirt
        assert_features_filled(spark, settings, day)
        assert_recommendations_sound(spark, settings, day, settings.recommend.top_k)
        assert_samples_labelled(spark, settings, day)
    assert_candidates_filled(spark, settings, nights[0], recall_measured=False)
    recall = assert_candidates_filled(spark, settings, last, recall_measured=True)
    print("recall of yesterday's candidates on the last day:", sorted(recall.items()))
    figures = assert_ranked_by_the_champion(spark, settings, last)
    print("ranker holdout figures:", sorted(figures.items()))
    assert_no_raw_user_ids(spark, settings)
    items = read_table(spark, settings, CLEAN_ITEMS).filter(F.col(C.DT) == last)
    predicted = items.filter(F.col(C.CATEGORY_SOURCE) == C.SOURCE_PREDICTED).count()
    assert predicted > 0  # the generator hides 10 % of the categories
    accuracy = {
        (r[C.VARIANT], r[C.K]): r[C.VALUE]
        for r in read_table(spark, settings, MODEL_EVALUATION)
        .filter((F.col(C.DT) == last) & (F.col(C.METRIC) == "accuracy"))
        .collect()
    }
    assert accuracy[("lightgbm", 1)] > accuracy[("most_frequent", 1)]
    before = snapshot(spark, settings)
    champion = load_champion(settings)

    run_days(settings, NIGHTLY, [last])
    after = snapshot(spark, settings)
    for table, rows in before.items():
        assert after[table] == rows, f"{table} changed on rerun"
    assert load_champion(settings) == champion  # the same model: the same registry version
