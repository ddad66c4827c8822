import datetime as dt

import mlflow
import pytest

from recsys_lib.runtime import tracking
from recsys_lib.runtime.tracking import use_experiment
from tests.conftest import make_settings

D = dt.date(2026, 3, 30)


def test_a_stage_run_is_named_tagged_and_found(settings) -> None:
    with tracking.stage_run(settings, "train_als", D, tags={"recsys.extra": "x"}) as run:
        mlflow.log_metric("m", 1.0)
    found = tracking.latest_run(settings, "train_als", D)
    assert found.info.run_id == run.info.run_id
    assert found.info.run_name == "train_als 2026-03-30"
    assert found.data.tags[tracking.STAGE_TAG] == "train_als"
    assert found.data.tags[tracking.RUN_DATE_TAG] == "2026-03-30"
    assert found.data.tags["recsys.extra"] == "x"
    with tracking.stage_run(settings, "items", D, name="category_completion") as other:
        pass
    assert (
        tracking.latest_run(settings, "items", D).info.run_name == "category_completion 2026-03-30"
    )
    assert other.info.run_id != run.info.run_id


def test_a_failed_stage_run_ends_failed_and_is_not_found(settings) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        tracking.stage_run(settings, "candidates", D) as run,
    ):
        raise RuntimeError("boom")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"
    with pytest.raises(LookupError, match="no finished MLflow run of candidates"):
        tracking.latest_run(settings, "candidates", D)


def test_prune_runs_deletes_old_runs_no_alias_needs(tmp_path) -> None:
    from mlflow import MlflowClient

    from recsys_lib.runtime.tracking import PROMOTED_FOR_TAG, prune_runs

    settings = make_settings(tmp_path)
    experiment = use_experiment(settings)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    old = int((now - dt.timedelta(days=120)).timestamp() * 1000)
    recent = int((now - dt.timedelta(days=10)).timestamp() * 1000)

    def run(start: int) -> str:
        run_id = client.create_run(experiment, start_time=start).info.run_id
        client.set_terminated(run_id)
        return run_id

    plain, champion, former, unaliased, fresh = run(old), run(old), run(old), run(old), run(recent)
    name = settings.ranker.registered_model
    client.create_registered_model(name)
    versions = {
        r: client.create_model_version(name, f"runs:/{r}/model", run_id=r).version
        for r in (champion, former, unaliased)
    }
    client.set_registered_model_alias(name, "champion", versions[champion])
    client.set_model_version_tag(name, versions[former], PROMOTED_FOR_TAG, "2026-08-01")

    deleted = prune_runs(settings, now)
    assert sorted(deleted) == sorted([plain, unaliased])
    kept = {r.info.run_id for r in client.search_runs([experiment])}
    assert kept == {champion, former, fresh}
    left = {v.version for v in client.search_model_versions(f"name = '{name}'")}
    assert left == {versions[champion], versions[former]}
    # Garbage-collected: not even among the deleted runs any more.
    from mlflow.entities import ViewType

    gone = client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)
    assert gone == []
    assert prune_runs(settings, now) == []
