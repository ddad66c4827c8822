"""`recsys tune`: the search spaces, the tuned file and its place among the config files,
and a search on a small warehouse that never reads the holdout day."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import mlflow
import numpy as np
import pytest
import yaml

from recsys_lib import constants as C
from recsys_lib.config import TUNED_FILE, load_settings
from recsys_lib.models.tuning import (
    ALS_FACTORS,
    Trial,
    TuningResult,
    als_trials,
    ease_trials,
    format_result,
    write_tuned,
)
from recsys_lib.stages import tune as tune_stage
from tests.conftest import REPO, make_settings, table_frame

RUN_DATE = dt.date(2026, 3, 10)


def _result(model: str, params: list[dict], ndcg: list[float]) -> TuningResult:
    trials = tuple(Trial(p, n, n / 2, 1.0) for p, n in zip(params, ndcg, strict=True))
    best = int(np.argmax(ndcg))
    return TuningResult(
        model, RUN_DATE, RUN_DATE - dt.timedelta(days=1), 50, 10, trials, best, "r1"
    )


def test_the_searches_start_from_the_settings_in_force(tmp_path) -> None:
    settings = make_settings(tmp_path)
    trials = als_trials(settings, 8, seed=1)
    assert trials[0] == {
        "factors": settings.als.factors,
        "regularization": settings.als.regularization,
        "alpha": settings.als.alpha,
    }
    assert trials == als_trials(settings, 8, seed=1) != als_trials(settings, 8, seed=2)
    assert all(
        t["factors"] in ALS_FACTORS and 0.01 <= t["regularization"] <= 100 for t in trials[1:]
    )
    grid = ease_trials(settings, 5, seed=0)
    assert grid[0] == {"regularization": settings.ease.regularization}
    assert [t["regularization"] for t in grid[1:]] == [10.0, 100.0, 1000.0, 10000.0]


def test_the_tuned_file_sits_between_base_and_the_environment(tmp_path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / TUNED_FILE).unlink(missing_ok=True)
    path = conf / TUNED_FILE
    als = _result("als", [{"factors": 64}, {"factors": 128, "alpha": 7.5}], [0.1, 0.2])
    assert write_tuned(path, als)
    ease = _result("ease", [{"regularization": 300.0}, {"regularization": 50.0}], [0.2, 0.3])
    assert write_tuned(path, ease)
    kept = _result("als", [{"factors": 128}, {"factors": 32}], [0.3, 0.2])
    assert not write_tuned(path, kept)  # the settings in force measured best: no change
    text = path.read_text()
    assert yaml.safe_load(text) == {
        "als": {"factors": 128, "alpha": 7.5},
        "ease": {"regularization": 50.0},
    }
    assert "# als: `recsys tune als --date 2026-03-10` (MLflow run r1): NDCG@10 0.2000" in text
    assert "# ease: " in text and not list(conf.glob(".tuned*"))
    settings = load_settings("local", conf_dir=conf, home=tmp_path, environ={})
    assert (settings.als.factors, settings.als.alpha, settings.ease.regularization) == (
        128,
        7.5,
        50.0,
    )
    skipped = load_settings("local", conf_dir=conf, home=tmp_path, environ={"RECSYS_TUNED": "off"})
    assert skipped.ease.regularization != 50.0
    (conf / "local.yaml").write_text("als:\n  factors: 16\n")
    over = load_settings("local", conf_dir=conf, home=tmp_path, environ={"RECSYS__ALS__ALPHA": "2"})
    assert (over.als.factors, over.als.alpha) == (16, 2.0)  # the env's file and variables win
    assert "(settings before)" in format_result(als)


@pytest.mark.slow
def test_a_search_validates_on_the_day_before_and_records_every_trial(
    spark, tmp_path, monkeypatch
) -> None:
    from recsys_lib.warehouse.storage import create_missing_tables, write_partition
    from recsys_lib.warehouse.tables import CLEAN_EVENTS

    settings = make_settings(tmp_path)
    rng = np.random.default_rng(5)
    create_missing_tables(spark, settings)
    # Two clusters of users, each over its own eight items; the night D itself has no events:
    # the search must not need them.
    for age in range(1, 6):
        day = RUN_DATE - dt.timedelta(days=age)
        rows = [
            (day, dt.datetime.combine(day, dt.time(12)), f"c{c}u{u}", int(item), C.VIEW, None, "t")
            for c in (1, 2)
            for u in range(20)
            for item in rng.choice(np.arange(8) + 100 * c, 2, replace=False)
        ]
        write_partition(table_frame(spark, CLEAN_EVENTS, rows), settings, CLEAN_EVENTS, day)
    small = dataclasses.replace(settings, als=dataclasses.replace(settings.als, iterations=5))
    read: list[dt.date] = []
    window, partition = tune_stage.read_window, tune_stage.read_partition
    monkeypatch.setattr(tune_stage, "read_window", lambda *a: read.append(a[3].last) or window(*a))
    monkeypatch.setattr(tune_stage, "read_partition", lambda *a: read.append(a[3]) or partition(*a))
    result = tune_stage.tune(spark, small, "als", RUN_DATE, trials=3)
    assert read and max(read) == RUN_DATE - dt.timedelta(days=1)  # never the night itself
    assert result.valid_day == RUN_DATE - dt.timedelta(days=1) and result.users == 40
    assert len(result.trials) == 3 and result.trials[0].params["factors"] == settings.als.factors
    assert all(0.0 < t.ndcg <= 1.0 for t in result.trials)
    children = mlflow.search_runs(
        experiment_names=[settings.mlflow.experiment],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert len(children) == 3 and set(children["params.factors"]) <= {str(f) for f in ALS_FACTORS}
    ease = tune_stage.tune(spark, settings, "ease", RUN_DATE, trials=3)
    # the clusters never mix: EASE proposes a user's cluster's other items and finds some
    assert ease.trials[ease.best].ndcg > 0.2
    with pytest.raises(RuntimeError, match="clean.events of 2026-03-11"):
        tune_stage.tune(spark, settings, "ease", RUN_DATE + dt.timedelta(days=2), trials=1)
