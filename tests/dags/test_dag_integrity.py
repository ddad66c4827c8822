"""DAG files: import cleanly, the expected graph, no DB query or connection lookup at parse."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from unittest import mock

import pytest

from recsys_lib.runtime.airflow_support import RUN_DATE_TEMPLATE

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def nightly():
    return load_module(DAGS / "recsys_nightly.py").dag


def test_every_dag_file_imports_without_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert {"recsys_nightly", "recsys_maintenance"} <= set(bag.dag_ids)


def test_nightly_task_graph(nightly) -> None:
    order = [
        "wait_for_input",
        "ingest",
        "clean",
        "aggregate",
        "items",
        "features",
        "train_als",
        "candidates",
        "samples",
        "train_ranker",
        "recommend",
    ]
    assert sorted(nightly.task_ids) == sorted(order)
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert nightly.get_task(downstream).upstream_task_ids == {upstream}
    assert nightly.catchup is False
    # Day D+1 waits for day D, task by task; failures reach the notifier.
    assert all(t.depends_on_past for t in nightly.tasks)
    assert all(t.on_failure_callback for t in nightly.tasks)
    sensor = nightly.get_task("wait_for_input")
    assert sensor.mode == "reschedule" and sensor.op_kwargs == {"day": RUN_DATE_TEMPLATE}
    assert sensor.timeout == 12 * 3600 and sensor.retries == 0
    stages = [t for t in nightly.tasks if t.task_id != "wait_for_input"]
    assert all(t.retries == 2 for t in stages)
    for task in stages:
        assert task._conn_id == "spark_default"
        assert task.application.endswith(f"jobs/{task.task_id}.py")
        assert Path(task.application).is_file()
        assert task.application_args == ["--date", RUN_DATE_TEMPLATE]


def test_run_date_of_scheduled_manual_and_test_runs(nightly) -> None:
    import jinja2
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    day = pendulum.datetime(2015, 6, 2, tz="UTC")
    render = jinja2.Environment(undefined=jinja2.StrictUndefined)
    render.filters["ds"] = lambda value: value.strftime("%Y-%m-%d")
    template = render.from_string(RUN_DATE_TEMPLATE)
    # the scheduled run after 2015-06-02 ends covers that day and has it as logical date
    info = nightly.timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(day.subtract(days=1), day),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.logical_date == day and info.data_interval.end == day.add(days=1)
    assert template.render(logical_date=info.logical_date, data_interval_start=day) == "2015-06-02"
    # a manual run without a logical date after 2015-06-03 00:00 processes 2015-06-02
    manual = nightly.timetable.infer_manual_data_interval(run_after=day.add(days=1, hours=5))
    assert template.render(logical_date=None, data_interval_start=manual.start) == "2015-06-02"


def test_parsing_queries_no_database_and_looks_up_no_connection() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        with (
            mock.patch(
                "airflow.sdk.bases.hook.BaseHook.get_connection",
                side_effect=AssertionError("connection lookup at parse time"),
            ),
            mock.patch.dict("os.environ", {"AIRFLOW_CONN_SPARK_DEFAULT": ""}),
        ):
            load_module(DAGS / "recsys_nightly.py")
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert statements == []


def test_maintenance_waits_for_the_night_then_cleans_up() -> None:
    from recsys_lib.stages.maintenance import TASKS

    maintenance = load_module(DAGS / "recsys_maintenance.py").dag
    assert sorted(maintenance.task_ids) == sorted(["wait_for_night", *TASKS])
    night = maintenance.get_task("wait_for_night")
    assert night.external_dag_id == "recsys_nightly" and night.external_task_id is None
    assert maintenance.get_task("compact").upstream_task_ids == {"wait_for_night"}
    assert maintenance.get_task("vacuum").upstream_task_ids == {"compact"}
    assert maintenance.get_task("clean_staging").upstream_task_ids == {"vacuum"}
    assert maintenance.get_task("prune_mlflow").upstream_task_ids == {"wait_for_night"}
    for task_id in TASKS:
        task = maintenance.get_task(task_id)
        assert task.application.endswith("jobs/maintenance.py")
        assert Path(task.application).is_file()
        assert task.application_args == ["--task", task_id, "--date", RUN_DATE_TEMPLATE]
    assert maintenance.max_active_runs == 1
