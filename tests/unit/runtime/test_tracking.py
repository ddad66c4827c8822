import datetime as dt

import mlflow
import pytest

from recsys_lib.runtime import tracking

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
