"""recsys_erase_user: erase users on request (docs/operations.md, "Erasure").

Triggered by hand or by an API call with the parameter ``ids_file``: the path, readable by
the scheduler's workers, of a file of raw user ids, one a line. The ids travel in that file,
never in the run's configuration (Airflow keeps a run's conf in its database for good).
Delete the file once the run succeeded.

    airflow dags trigger recsys_erase_user --conf '{"ids_file": "/data/erasure/2026-12-05.txt"}'
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, Param

from recsys_lib.runtime.airflow_support import spark_job, spark_properties_file, task_defaults

with DAG(
    dag_id="recsys_erase_user",
    description="Delete users from every table, model artifact and the serving store",
    schedule=None,
    start_date=datetime(2015, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    params={"ids_file": Param("", type="string", minLength=1, description="file of raw ids")},
    # A night's commit to the same table makes Delta refuse the erasure: retry after it.
    default_args=task_defaults(retry_minutes=10),
    user_defined_macros={"recsys_spark_properties": spark_properties_file},
    tags=["recsys"],
) as dag:
    spark_job(
        "erase_user",
        "erase_user",
        ["--ids-file", "{{ params.ids_file }}", "--date", "{{ ds }}"],
        "recsys-erase-user-{{ ds }}",
    )
