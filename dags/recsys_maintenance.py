"""recsys_maintenance: the warehouse's and MLflow's upkeep, once a day after the night.

wait_for_night -> compact -> vacuum -> clean_staging, and prune_mlflow. The run with logical
date D waits for recsys_nightly's run of D to finish (so compaction never races that night's
writes), then compacts D's partitions and the days before it (maintenance.compact_days),
VACUUMs every table with maintenance.vacuum_retention_hours, deletes old _staging/
partitions and the MLflow runs no registry alias needs; docs/operations.md, "Maintenance".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from recsys_lib.runtime.airflow_support import (
    RUN_DATE_TEMPLATE,
    spark_job,
    spark_properties_file,
    task_defaults,
)

with DAG(
    dag_id="recsys_maintenance",
    description="Compaction, VACUUM, _staging/ and MLflow clean-up after each night",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2015, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    user_defined_macros={"recsys_spark_properties": spark_properties_file},
    tags=["recsys"],
) as dag:
    night = ExternalTaskSensor(
        task_id="wait_for_night",
        external_dag_id="recsys_nightly",
        external_task_id=None,  # the whole run of the same logical date
        mode="reschedule",
        poke_interval=timedelta(minutes=10),
        timeout=timedelta(hours=20),
        retries=0,
    )

    def job(task: str) -> Any:
        args = ["--task", task, "--date", RUN_DATE_TEMPLATE]
        return spark_job(task, "maintenance", args, f"recsys-{task}-{RUN_DATE_TEMPLATE}")

    night >> job("compact") >> job("vacuum") >> job("clean_staging")
    night >> job("prune_mlflow")
