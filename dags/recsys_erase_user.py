"""recsys_erase_user: erase users on request (docs/operations.md, "Erasure").

Triggered by hand or by an API call with the parameter ``ids_file``: the path, readable by
the scheduler's workers, of a file of raw user ids, one a line. The ids travel in that file,
never in the run's configuration (Airflow keeps a run's conf in its database for good).
Delete the file once the run succeeded.

    airflow dags trigger recsys_erase_user --conf '{"ids_file": "/data/erasure/2026-12-05.txt"}'
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param

from recsys_lib.runtime.airflow_support import JOBS_DIR, report_failure, spark_properties_file

with DAG(
    dag_id="recsys_erase_user",
    description="Delete users from every table, model artifact and the serving store",
    schedule=None,
    start_date=datetime(2015, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    params={"ids_file": Param("", type="string", minLength=1, description="file of raw ids")},
    default_args={
        # A night's commit to the same table makes Delta refuse the DELETE: retry after it.
        "retries": int(os.environ.get("RECSYS_DAG_RETRIES", "2")),
        "retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=3),
        "on_failure_callback": report_failure,
    },
    user_defined_macros={"recsys_spark_properties": spark_properties_file},
    tags=["recsys"],
) as dag:
    SparkSubmitOperator(
        task_id="erase_user",
        conn_id="spark_default",
        application=str(JOBS_DIR / "erase_user.py"),
        application_args=["--ids-file", "{{ params.ids_file }}", "--date", "{{ ds }}"],
        properties_file="{{ recsys_spark_properties() }}",
        name="recsys-erase-user-{{ ds }}",
    )
