"""recsys_nightly: ingest -> clean -> aggregate -> items -> features -> train_als -> candidates
-> samples -> train_ranker -> recommend, one spark-submit per stage
(recsys_lib.constants.NIGHTLY_STAGES).

The run with logical date D processes the events of day D (UTC) and writes every output
partition dt = D. The scheduler starts it once D has ended (its data interval is [D, D+1)).
`airflow dags test recsys_nightly D` and `airflow backfill create --from-date A --to-date B`
process exactly those days; see docs/operations.md.

`wait_for_input` waits for the day's input (RECSYS_INPUT_WAIT_HOURS, default 12, polled every
RECSYS_INPUT_POKE_MINUTES, default 10) instead of failing at once. Every task depends on its
own previous run (depends_on_past): day D+1's stages wait for day D's, so days run in date
order in every path, backfills of several runs at once included. A task that fails for good
is reported through the notifier (conf `alerts`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from recsys_lib.constants import NIGHTLY_STAGES
from recsys_lib.io.arrival import input_ready
from recsys_lib.runtime.airflow_support import (
    RUN_DATE_TEMPLATE,
    spark_job,
    spark_properties_file,
    task_defaults,
)

with DAG(
    dag_id="recsys_nightly",
    description="Nightly recommendations from the day's behaviour log",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2015, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={**task_defaults(), "depends_on_past": True},
    user_defined_macros={"recsys_spark_properties": spark_properties_file},
    tags=["recsys"],
) as dag:
    previous = PythonSensor(
        task_id="wait_for_input",
        python_callable=input_ready,
        op_kwargs={"day": RUN_DATE_TEMPLATE},
        mode="reschedule",
        poke_interval=timedelta(minutes=float(os.environ.get("RECSYS_INPUT_POKE_MINUTES", "10"))),
        timeout=timedelta(hours=float(os.environ.get("RECSYS_INPUT_WAIT_HOURS", "12"))),
        retries=0,
    )
    for stage in NIGHTLY_STAGES:
        task = spark_job(
            stage, stage, ["--date", RUN_DATE_TEMPLATE], f"recsys-{stage}-{RUN_DATE_TEMPLATE}"
        )
        previous >> task
        previous = task
