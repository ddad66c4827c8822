"""A night as a deployment runs it: on a Spark standalone cluster (master, worker and
executors each their own JVM, on 127.0.0.1) with the shop's files and the warehouse on
S3-compatible object storage (a local S3 server), compared table by table with the same
night in local mode on local files.

The driver runs in a process of its own, as an Airflow task's spark-submit does; the
readers list and read the shop's files over s3a:// and the stages write the warehouse
there; an analyst then reads the published recommendations from the bucket with delta-rs,
without a JVM."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from recsys_lib.cli import backfill, run_days
from recsys_lib.dates import DayRange
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.devtools.local_cluster import local_cluster
from recsys_lib.pipeline import HISTORY_STAGES, NIGHTLY
from tests.conftest import REPO, TEST_KEY, make_settings
from tests.deployment.conftest import (
    BUCKET,
    CREDENTIALS,
    driver_environ,
    s3_client,
    s3_settings,
)
from tests.integration.helpers import SMALL_MODELS, shop_inputs, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.deployment]


# The driver: the same calls as the local night, then the warehouse's rows for comparison.
DRIVER = """
import datetime as dt, pickle, sys
from tests.deployment.test_cluster_night import history_and_night
from recsys_lib.config import load_settings
from recsys_lib.runtime.spark import get_spark
from tests.integration.helpers import snapshot
settings = load_settings()
history_and_night(settings, *(dt.date.fromisoformat(d) for d in sys.argv[2:]))
with open(sys.argv[1], "wb") as out:
    pickle.dump(snapshot(get_spark(settings), settings, file_names=True), out)
"""


def history_and_night(settings, first: dt.date, night: dt.date) -> None:
    """The history stages up to the day before ``night`` in one range, then every stage of
    ``night``: each stage runs once, on the fewest days that make it do real work."""
    backfill(settings, HISTORY_STAGES, DayRange(first, night - dt.timedelta(days=1)))
    run_days(settings, NIGHTLY, [night])


def test_a_night_on_a_cluster_with_an_s3_warehouse_equals_the_local_night(
    spark, tmp_path, s3_endpoint
) -> None:
    shop = generate_shop(tmp_path / "shop", "default", scale=0.05, days=4)
    inputs = shop_inputs(shop)
    small = {k.removeprefix("RECSYS__"): v for k, v in SMALL_MODELS.items()}
    local = make_settings(tmp_path / "local", **inputs, **small)
    started = time.perf_counter()
    history_and_night(local, shop.first_day, shop.last_day)
    local_seconds = time.perf_counter() - started
    expected = snapshot(spark, local, file_names=True)
    client = s3_client(s3_endpoint)
    for file in sorted(shop.out_dir.rglob("*.csv")):
        client.upload_file(str(file), BUCKET, f"shop/{file.relative_to(shop.out_dir)}")
    remote_inputs = {
        "INPUT__EVENTS_PATH": f"s3a://{BUCKET}/shop/events",
        "INPUT__ITEM_PROPERTIES_PATH": f"s3a://{BUCKET}/shop/item_properties.csv",
        "INPUT__CATEGORY_TREE_PATH": f"s3a://{BUCKET}/shop/category_tree.csv",
    }

    s3 = s3_settings(s3_endpoint, "warehouse")
    # The workers get the object store's credentials and the pseudonym key in their own
    # environment, as a deployment gives them: the executors hash the ids with it.
    workers = {**CREDENTIALS, "RECSYS_PSEUDONYM_KEY": TEST_KEY}
    with local_cluster(tmp_path / "cluster", cores=2, memory="2g", environ=workers) as cluster:
        environ = driver_environ(
            tmp_path / "remote",
            **remote_inputs,
            **small,
            **s3,
            SPARK__MASTER=cluster.master_url,
            SPARK__EXECUTOR_MEMORY="1g",
        )
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", DRIVER, str(tmp_path / "remote.pickle")]
            + [shop.first_day.isoformat(), shop.last_day.isoformat()],
            env=environ,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        cluster_seconds = time.perf_counter() - started
        assert result.returncode == 0, result.stderr[-4000:]
        apps = cluster.state()["completedapps"]
        executor_logs = cluster.executor_logs()
    print(f"the same night: local {local_seconds:.0f}s, cluster + s3a {cluster_seconds:.0f}s")

    # The work ran in executors the worker launched, not in the driver.
    assert [app["name"] for app in apps] == ["recsys"]
    assert executor_logs, "the worker launched no executor"
    assert any("Finished task" in log.read_text() for log in executor_logs)

    with (tmp_path / "remote.pickle").open("rb") as saved:
        actual = pickle.load(saved)
    assert sorted(actual) == sorted(expected)
    different = [name for name, rows in expected.items() if actual[name] != rows]
    assert not different, f"tables whose rows differ on the cluster: {different}"
    # The night's samples label yesterday's candidates, which a first night has none of.
    empty = sorted(name for name, rows in expected.items() if not rows)
    assert empty == ["features.training_samples"], f"empty tables compare nothing: {empty}"

    # An analyst reads the bucket's tables with delta-rs: no JVM, no Spark.
    storage = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        **CREDENTIALS,
    }
    recs = pl.read_delta(
        f"s3://{BUCKET}/warehouse/recs/user_recommendations", storage_options=storage
    )
    assert recs.height == len(expected["recs.user_recommendations"]) > 0
    # So does `recsys query`, with the endpoint of the settings and the AWS_* credentials.
    answer = subprocess.run(
        [str(Path(sys.executable).parent / "recsys"), "query", "--format", "json",
         "SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM recs.user_recommendations"],
        env={k: v for k, v in environ.items() if not k.startswith("RECSYS__SPARK__MASTER")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)[0]["n"] == recs.height
