"""MLflow helpers: the tracking store and experiment from the settings, and run lookup."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import mlflow
from mlflow import ActiveRun
from mlflow.entities import Run

from recsys_lib.config import Settings

STAGE_TAG = "recsys.stage"
RUN_DATE_TAG = "recsys.run_date"
MODEL_VERSION_TAG = "recsys.model_version"


_opening = threading.Lock()


def use_experiment(settings: Settings) -> str:
    """Point MLflow at the configured store; create the experiment if needed. Returns its id.

    Serialised: the stage runner opens the store in a background thread while the stage's
    Spark work runs (``pipeline.warm_up``), and two threads must not create a new store's
    tables at once."""
    with _opening:
        return _open_experiment(settings)


def _open_experiment(settings: Settings) -> str:
    # A progress bar per artifact download floods the nightly logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    if not settings.mlflow.artifact_root:  # a tracking server's own artifact store
        return str(mlflow.create_experiment(settings.mlflow.experiment))
    artifact_root = settings.resolve(settings.mlflow.artifact_root)
    location = artifact_root if "://" in artifact_root else Path(artifact_root).as_uri()
    return str(mlflow.create_experiment(settings.mlflow.experiment, artifact_location=location))


@contextlib.contextmanager
def stage_run(
    settings: Settings,
    stage: str,
    run_date: dt.date,
    tags: Mapping[str, str] | None = None,
    name: str | None = None,
) -> Iterator[ActiveRun]:
    """The MLflow run of ``stage`` for ``run_date`` in the configured experiment, named
    "<name or stage> <date>" and tagged with the stage, the run date and ``tags``. It ends
    FAILED when the body raises, and :func:`latest_run` finds only finished runs."""
    experiment_id = use_experiment(settings)
    run_name = f"{name or stage} {run_date.isoformat()}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({STAGE_TAG: stage, RUN_DATE_TAG: run_date.isoformat(), **(tags or {})})
        yield run


def latest_run(settings: Settings, stage: str, run_date: dt.date) -> Run:
    """The most recent finished MLflow run of ``stage`` for ``run_date``."""
    experiment_id = use_experiment(settings)
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{STAGE_TAG}` = '{stage}' AND tags.`{RUN_DATE_TAG}` = '{run_date.isoformat()}'"
            " AND attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise LookupError(
            f"no finished MLflow run of {stage} for {run_date} in experiment "
            f"{settings.mlflow.experiment!r} at {settings.tracking_uri}: run `{stage}` first"
        )
    return runs[0]
