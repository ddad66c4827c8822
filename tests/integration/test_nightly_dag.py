"""The real DAG on the live scheduler: Airflow's scheduler, DAG processor and API server
(LocalExecutor) over a real PostgreSQL server, MLflow's tracking server over PostgreSQL,
and the serving store in PostgreSQL, as a deployment runs them.

History and two nights run in-process (the ranker needs three label days); then
`airflow backfill create` asks the scheduler for the next two nights, each stage a
spark-submit task; the test follows the runs through Airflow's REST API until they succeed,
checks the tables (the second night trains, promotes and serves the first ranker, in
MLflow's registry on the server, and publishes the lists to the serving table). The two
runs are active at once: depends_on_past keeps each stage of the second night after the
first night's. (A rerun changing nothing is tested on the real RetailRocket sample.) Then
the last night's `train_ranker` is killed after registering its ranker and rerun."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from contextlib import closing
from pathlib import Path

import polars as pl
import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.cli import airflow_environment, days, history_and_nights, run_days
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.devtools.local_services import airflow_services, get, mlflow_server
from recsys_lib.models.registry import load_champion
from recsys_lib.pipeline import NIGHTLY
from recsys_lib.warehouse.serving import connection, served_night
from recsys_lib.warehouse.storage import read_table, table_path
from recsys_lib.warehouse.tables import (
    ALL_TABLES,
    CLEAN_ITEMS,
    ERASURES,
    MODEL_EVALUATION,
    QUALITY_CHECKS,
    USER_PORTRAIT,
    USER_RECOMMENDATIONS,
)
from tests.conftest import REPO, TEST_DRIVER_MEMORY, TEST_KEY, make_settings
from tests.integration.helpers import (
    SMALL_MODELS,
    assert_candidates_filled,
    assert_days_in_order,
    assert_features_filled,
    assert_no_raw_user_ids,
    assert_ranked_by_the_champion,
    assert_recommendations_sound,
    assert_reconciled,
    assert_same_rows_as_spark,
    assert_samples_labelled,
    documented_queries,
    killed_at,
    readable,
    run_python_blocks,
    wait_for_runs,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.deployment]

# The documents whose `recsys query` examples are run against Spark (and README.md).
DOCUMENTED_QUERIES = ("analysts.md", "operations.md", "features.md")
RUNS_TIMEOUT = 1800  # two Airflow nights of ten spark-submit tasks each


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, postgres):
    home = tmp_path_factory.mktemp("project")
    shop = generate_shop(home / "data" / "shop", "default", scale=0.5, days=6)
    for database in ("airflow", "mlflow", "serving"):
        postgres.create_database(database)
    environ = {
        "RECSYS_HOME": str(home),
        "RECSYS_CONF_DIR": str(REPO / "conf"),
        "RECSYS_ENV": "local",
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        # The class archive of make setup: each of the 20 spark-submits starts ~3 s sooner.
        "RECSYS__PATHS__JVM_ARCHIVE": str(REPO / ".cache" / "jvm" / "recsys.jsa"),
        "RECSYS__SPARK__SHUFFLE_PARTITIONS": "2",
        "RECSYS__SPARK__DRIVER_MEMORY": TEST_DRIVER_MEMORY,
        **SMALL_MODELS,
        "RECSYS__SERVING__ENABLED": "true",
        "RECSYS__SERVING__URL": postgres.url("serving"),
        "RECSYS_PSEUDONYM_KEY": TEST_KEY,
        "PGPASSWORD": postgres.password,
        "RECSYS_DAG_RETRIES": "0",
        "AIRFLOW_HOME": str(home / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Only the backfill's runs: no scheduled run of today's interval beside them.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    saved = dict(os.environ)
    os.environ.update(environ)
    os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)
    mlflow_db = postgres.url("mlflow", driver="postgresql+psycopg2")
    try:
        with mlflow_server(home / "mlflow_server", mlflow_db, dict(os.environ)) as tracking:
            os.environ["RECSYS__MLFLOW__TRACKING_URI"] = tracking.url
            os.environ["RECSYS__MLFLOW__ARTIFACT_ROOT"] = ""  # the server stores them
            overrides = {
                **{k.removeprefix("RECSYS__"): v for k, v in SMALL_MODELS.items()},
                "MLFLOW__TRACKING_URI": tracking.url,
                "MLFLOW__ARTIFACT_ROOT": "",
                "SERVING__ENABLED": "true",
                "SERVING__URL": postgres.url("serving"),
            }
            yield make_settings(Path(home), **overrides), shop, postgres, tracking
    finally:
        os.environ.clear()
        os.environ.update(saved)


def log_tails(airflow) -> str:
    """The last three task logs of the live scheduler."""
    logs = sorted(Path(airflow.env["AIRFLOW_HOME"], "logs").rglob("*.log"))
    return "\n".join(f"{p}: {p.read_text()[-1500:]}" for p in logs[-3:])


def test_two_nights_through_the_live_scheduler_in_date_order(spark, project) -> None:
    settings, shop, postgres, tracking = project
    nights = days(shop.last_day - dt.timedelta(days=3), shop.last_day - dt.timedelta(days=2))
    backfilled = [shop.last_day - dt.timedelta(days=1), shop.last_day]
    last = shop.last_day
    history_and_nights(settings, shop.first_day, nights)
    assert load_champion(settings) is None  # two label days so far: no ranker yet

    env = airflow_environment(settings)  # the Spark connection, the project's PATH
    airflow_db = postgres.url("airflow", driver="postgresql+psycopg2")
    with airflow_services(Path(settings.home) / "airflow_services", airflow_db, env) as airflow:
        deadline = time.monotonic() + 180
        while get(f"{airflow.url}/api/v2/dags/recsys_nightly")[0] != 200:
            assert time.monotonic() < deadline, "the DAG processor did not parse the DAG"
            time.sleep(2)
        airflow.cli("dags", "unpause", "recsys_nightly")
        started = time.perf_counter()
        # Both runs active at once (the backfill's default allows 10): depends_on_past must
        # still keep day 2's stages after day 1's.
        airflow.cli(
            "backfill", "create", "--dag-id", "recsys_nightly",
            "--from-date", backfilled[0].isoformat(), "--to-date", backfilled[-1].isoformat(),
            "--reprocess-behavior", "failed",
        )  # fmt: skip
        runs = wait_for_runs(airflow.api, backfilled, RUNS_TIMEOUT, lambda: log_tails(airflow))
        print(f"two backfilled nights through the scheduler: {time.perf_counter() - started:.0f}s")
        assert all(r["run_type"] == "backfill" for r in runs.values())
        first, second = assert_days_in_order(airflow.api, runs, ("wait_for_input", *NIGHTLY))
        overlap = first["recommend"]["end_date"] > second["ingest"]["start_date"]
        print("the two runs overlapped (pipelined by depends_on_past):", overlap)
        status, page = get(airflow.url)
        assert status == 200 and b"Airflow" in page  # the UI answers

    for day in backfilled:
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

    # The champion lives in the tracking server's registry (PostgreSQL behind it).
    status, body = get(f"{tracking.url}/api/2.0/mlflow/registered-models/get?name=recsys-ranker")
    assert status == 200 and b"champion" in body
    # The serving table holds the last night's lists, as published.
    serving = connection(settings.serving)
    assert served_night(serving, settings.serving) == last
    with closing(serving.connect()) as db, db.cursor() as cur:
        cur.execute("SELECT count(*) FROM recsys.user_recommendations")
        served = cur.fetchone()[0]
    published = read_table(spark, settings, USER_RECOMMENDATIONS).filter(F.col(C.DT) == last)
    assert served == published.count() > 0


def test_analysts_read_every_table_without_spark(spark, project, monkeypatch) -> None:
    """docs/analysts.md's recipes, run as written from the project folder of the night above:
    delta-rs reads every table with Spark's rows, and the recipes' answers are Spark's."""
    settings = project[0]
    for table in ALL_TABLES:
        rows = pl.read_delta(table_path(settings, table))
        expected = read_table(spark, settings, table)
        assert rows.columns == expected.columns, table.name
        assert rows.height == expected.count(), table.name
        assert rows.height > 0 or table is ERASURES, table.name  # no erasure yet

    monkeypatch.chdir(settings.home)
    found = run_python_blocks(REPO / "docs" / "analysts.md")

    recs = read_table(spark, settings, USER_RECOMMENDATIONS)
    latest = recs.agg(F.max(C.DT)).first()[0]
    assert found["latest"] == latest
    user = found["some_user"].item()
    assert found["one_list"]["item_id"].to_list() == [
        r[C.ITEM_ID]
        for r in recs.filter((F.col(C.DT) == latest) & (F.col(C.USER_ID) == user))
        .orderBy(C.RANK)
        .collect()
    ]
    assert {
        (r["dt"], r["source"], r["items"]) for r in found["by_source"].iter_rows(named=True)
    } == {
        (r[C.DT], r[C.SOURCE], r["count"]) for r in recs.groupBy(C.DT, C.SOURCE).count().collect()
    }
    assert found["history"][0]["version"] == found["table"].version() > 0
    assert found["before"].height > 0

    checks = read_table(spark, settings, QUALITY_CHECKS).filter(~F.col(C.PASSED))
    assert len(found["failed_checks"]) == checks.count()
    portraits = read_table(spark, settings, USER_PORTRAIT)
    assert sorted(found["segments"]) == sorted(
        tuple(r) for r in portraits.groupBy(C.DT, C.RFM_SEGMENT).count().collect()
    )

    # Every `recsys query` the docs show answers as Spark SQL does, on the last night.
    docs = [REPO / "README.md", *(REPO / "docs" / n for n in DOCUMENTED_QUERIES)]
    answered = {}
    for sql in documented_queries(*docs):
        sql = re.sub(r"DATE'\d{4}-\d{2}-\d{2}'", f"DATE'{latest.isoformat()}'", sql)
        answered[sql] = assert_same_rows_as_spark(spark, settings, sql)
    assert len(answered) >= 8 and sum(n > 0 for n in answered.values()) >= 7, answered


def test_a_ranker_killed_after_registering_reruns_to_the_same_rows(spark, project) -> None:
    """The night above's `train_ranker` killed (SIGKILL) after registering its version and
    moving the alias, before `ops.model_evaluation` is written: the rerun sees the champion
    the night started with, reuses the version and writes the uninterrupted run's rows."""
    settings = project[0]
    last = max(r[0] for r in read_table(spark, settings, MODEL_EVALUATION).select(C.DT).collect())
    champion = load_champion(settings)
    assert champion is not None  # promoted by the night above

    def evaluation() -> list[tuple]:
        rows = read_table(spark, settings, MODEL_EVALUATION).filter(F.col(C.DT) == last)
        return sorted(map(tuple, rows.collect()), key=repr)

    before = evaluation()
    # The project's environment (os.environ in this module): its home and MLflow server.
    killed_at("registered", dict(os.environ), "run", "train_ranker", "--date", str(last))
    readable(spark, settings)
    after_kill = load_champion(settings)
    assert after_kill is not None and after_kill.version == champion.version
    run_days(settings, ["train_ranker"], [last])
    rerun = load_champion(settings)
    assert rerun is not None and rerun.version == champion.version
    assert evaluation() == before
