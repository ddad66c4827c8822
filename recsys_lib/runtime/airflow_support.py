"""What the DAG files need at task run time, kept out of their top level (no heavy imports,
no connection or file access while Airflow parses them)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recsys_lib.config import Settings, load_settings
from recsys_lib.runtime.logs import one_line
from recsys_lib.runtime.spark import submit_properties

# The day a run processes. Scheduled and backfill runs of the daily data-interval timetable
# have logical date = start of their interval = the day that has just ended; `dags test D`
# and a trigger with a logical date D process D; a trigger without a logical date (allowed
# in Airflow 3) processes the last complete day, the start of its inferred interval.
RUN_DATE_TEMPLATE = "{{ (logical_date or data_interval_start) | ds }}"
JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"


def spark_connection(settings: Settings) -> str:
    """Value of ``AIRFLOW_CONN_SPARK_DEFAULT`` for the configured Spark master."""
    return json.dumps({"conn_type": "spark", "host": settings.spark.master})


def spark_properties_file() -> str:
    """Write the ``spark-submit --properties-file`` of the current settings; return its path.

    Called by the DAG as a template macro, i.e. when a task runs, so a change of
    configuration or of ``RECSYS__*`` variables applies to the next task.
    """
    settings = load_settings()
    target = Path(settings.home) / ".cache" / "spark" / f"recsys-{settings.env}.properties"
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} {v}" for k, v in sorted(submit_properties(settings).items())]
    with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False) as tmp:
        tmp.write("\n".join(lines) + "\n")
    os.replace(tmp.name, target)
    return str(target)


def report_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of the DAG's tasks: a task that failed for good (its retries
    spent, a sensor out of time) is reported through the notifier."""
    from recsys_lib.runtime.notify import TASK_FAILED, notify

    task = context.get("task_instance") or context.get("ti")
    task_id = getattr(task, "task_id", "?")
    dag_id = getattr(task, "dag_id", "?")
    day = context.get("ds") or ""
    error = context.get("exception")
    summary = f"{dag_id}.{task_id} failed" + (f": {one_line(error)}" if error else "")
    notify(
        load_settings(),
        TASK_FAILED,
        summary,
        day,
        dag_id=dag_id,
        task_id=task_id,
        try_number=getattr(task, "try_number", "?"),
        log_url=getattr(task, "log_url", ""),
    )


def task_defaults(retry_minutes: float = 5) -> dict[str, Any]:
    """``default_args`` of the project's DAGs: retries (``RECSYS_DAG_RETRIES``, default 2;
    0 makes ``airflow dags test`` fail at once), a 3-hour timeout, failures reported."""
    from datetime import timedelta

    return {
        "retries": int(os.environ.get("RECSYS_DAG_RETRIES", "2")),
        "retry_delay": timedelta(minutes=retry_minutes),
        "execution_timeout": timedelta(hours=3),
        "on_failure_callback": report_failure,
    }


def spark_job(task_id: str, job: str, args: list[str], name: str) -> Any:
    """The ``spark-submit`` task of ``jobs/<job>.py`` with ``args``, on ``spark_default`` and
    the configuration's properties (the DAG defines the ``recsys_spark_properties`` macro)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(
        task_id=task_id,
        conn_id="spark_default",
        application=str(JOBS_DIR / f"{job}.py"),
        application_args=args,
        properties_file="{{ recsys_spark_properties() }}",
        name=name,
    )
