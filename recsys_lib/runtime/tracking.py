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
PROMOTED_FOR_TAG = "recsys.promoted_for"  # the night (run date) that gave a version the alias


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


def prune_runs(settings: Settings, now: dt.datetime | None = None) -> list[str]:
    """Delete the experiment's runs older than ``maintenance.mlflow_keep_days`` that no
    registered model's alias points to, with their registered versions; a version that ever
    held an alias (tag ``recsys.promoted_for``: the chain a rerun of a past night follows,
    and the targets of a roll back) is kept with its run. The runs are marked deleted; a
    store reached directly (SQLite, a database URI) is then garbage-collected so their rows
    and artifacts go too. Returns the deleted run ids."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    experiment_id = use_experiment(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    keep: set[str] = set()
    versions_of: dict[str, list[tuple[str, str]]] = {}
    for model in client.search_registered_models():
        aliased = set(getattr(model, "aliases", {}).values())
        for found in client.search_model_versions(f"name = '{model.name}'"):
            source_run = found.run_id or ""
            if found.version in aliased or PROMOTED_FOR_TAG in found.tags:
                keep.add(source_run)
            else:
                versions_of.setdefault(source_run, []).append((model.name, str(found.version)))
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(
        days=settings.maintenance.mlflow_keep_days
    )
    old = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.start_time < {int(cutoff.timestamp() * 1000)}",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=50000,
    )
    deleted = []
    for run in old:
        run_id = run.info.run_id
        if run_id in keep:
            continue
        for name, number in versions_of.get(run_id, []):
            client.delete_model_version(name, number)
        client.delete_run(run_id)
        deleted.append(run_id)
    if deleted and not settings.tracking_uri.startswith(("http://", "https://")):
        _collect_garbage(settings.tracking_uri, deleted)
    return deleted


def _collect_garbage(uri: str, run_ids: list[str]) -> None:
    """``mlflow gc`` of deleted runs: their rows and artifacts leave the store for good."""
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "gc",
            "--backend-store-uri",
            uri,
            "--run-ids",
            ",".join(run_ids),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
