"""recsys_nightly: ingest -> clean -> aggregate -> items -> features -> train_als -> candidates
-> samples -> train_ranker -> recommend, one spark-submit per stage
(recsys_lib.constants.NIGHTLY_STAGES).

The run with logical date D processes the events of day D (UTC) and writes every output
partition dt = D. The scheduler starts it once D has ended (its data interval is [D, D+1)).
`airflow dags test recsys_nightly D` and `airflow backfill create --from-date A --to-date B`
process exactly those days; see docs/operations.md.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from recsys_lib.constants import NIGHTLY_STAGES
from recsys_lib.runtime.airflow_support import JOBS_DIR, RUN_DATE_TEMPLATE, spark_properties_file

with DAG(
    dag_id="recsys_nightly",
    description="Nightly recommendations from the day's behaviour log",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2015, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        # RECSYS_DAG_RETRIES=0 makes `airflow dags test` fail at once (the demo, the tests).
        "retries": int(os.environ.get("RECSYS_DAG_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=3),
    },
    user_defined_macros={"recsys_spark_properties": spark_properties_file},
    tags=["recsys"],
) as dag:
    previous = None
    for stage in NIGHTLY_STAGES:
        task = SparkSubmitOperator(
            task_id=stage,
            conn_id="spark_default",
            application=str(JOBS_DIR / f"{stage}.py"),
            application_args=["--date", RUN_DATE_TEMPLATE],
            properties_file="{{ recsys_spark_properties() }}",
            name=f"recsys-{stage}-{RUN_DATE_TEMPLATE}",
        )
        if previous is not None:
            previous >> task
        previous = task
