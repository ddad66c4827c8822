"""The ranker's registry, champion gate and distributed scoring."""

from __future__ import annotations

import dataclasses
import datetime as dt

import mlflow
import numpy as np
import pandas as pd
import pytest

from recsys_lib import constants as C
from recsys_lib.evaluation import NDCG
from recsys_lib.models.ranker import Ranker, fit_ranker, score_frame
from recsys_lib.models.registry import Baseline, apply_gate, gate, load_champion, register
from recsys_lib.runtime import tracking
from recsys_lib.stages.train_ranker import (
    best_baseline,
    gate_checks,
    label_days,
    sample_checks,
    score_checks,
    top_lists,
    train_variants,
)
from recsys_lib.warehouse.quality import QualityCheckError, raise_on_failure
from tests.conftest import make_settings

FEATURES = ["f1", "f2"]


def _samples(seed: int, groups: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = groups * 10
    frame = pd.DataFrame(
        {
            C.USER_ID: np.repeat([f"u{g}" for g in range(groups)], 10),
            C.GROUP: np.repeat(np.arange(groups), 10),
            C.ITEM_ID: np.tile(np.arange(10), groups),
            "f1": rng.normal(size=n),
            "f2": rng.normal(size=n),
        }
    )
    frame[C.LABEL] = np.clip(np.round(frame["f1"] + rng.normal(size=n) * 0.3), 0, 3).astype(int)
    return frame


def _ranker(settings, seed: int, rounds: int = 20) -> Ranker:
    model = fit_ranker(_samples(seed), None, FEATURES, settings.ranker, rounds=rounds)
    return Ranker.of(model, FEATURES)


def test_the_gate_promotes_within_the_tolerance_only() -> None:
    assert gate(0.30, None, 0.005)  # the first ranker, with nothing measured beside it
    assert gate(0.30, 0.30, 0.005) and gate(0.296, 0.30, 0.005)
    assert not gate(0.29, 0.30, 0.005)


def test_the_first_ranker_must_beat_the_best_order_without_a_model() -> None:
    popular = Baseline("popular", 0.31)
    assert not gate(0.30, None, 0.005, popular)  # no tolerance for the first one
    assert not gate(0.31, None, 0.005, popular)  # a tie is not a win
    assert gate(0.311, None, 0.005, popular)
    assert gate(0.30, 0.30, 0.005, popular)  # a champion's gate is the champion's
    figures = [
        (C.RANKER, NDCG, 10, 0.40),
        (C.SOURCE_UNION, NDCG, 10, 0.50),  # the union is not a baseline: it is the input
        ("als", NDCG, 10, 0.33),
        ("popular", NDCG, 10, 0.35),
        (C.VARIANT_POPULARITY, NDCG, 10, 0.35),
        ("popular", NDCG, 5, 0.90),
    ]
    assert best_baseline(figures, 10) == Baseline("popular", 0.35)  # ties: the first listed
    assert best_baseline([(C.RANKER, NDCG, 10, 0.4)], 10) is None


def test_label_days_leave_validation_and_holdout_out_of_training() -> None:
    train, valid, holdout = label_days(dt.date(2026, 3, 10), 3)
    assert train == [dt.date(2026, 3, 6), dt.date(2026, 3, 7), dt.date(2026, 3, 8)]
    assert (valid, holdout) == (dt.date(2026, 3, 9), dt.date(2026, 3, 10))


def test_the_stage_s_checks_name_its_samples_scores_and_gate(tmp_path) -> None:
    settings = make_settings(tmp_path)
    days = [dt.date(2026, 3, d) for d in (7, 8, 9, 10)]
    samples = _samples(1, groups=8).assign(**{C.DT: np.repeat(days, 20)})
    checks = {c.name: c for c in sample_checks(settings, samples, days[2], days[3])}
    assert checks["sample_rows"].value == 80 and checks["sample_rows"].passed
    assert checks["sample_rows"].threshold == settings.ranker.max_training_rows
    assert checks["label_days"].value == 4
    assert [checks[f"rows.{p}"].value for p in ("train", "validation", "holdout")] == [40, 20, 20]
    assert checks["groups.holdout"].value == 2
    assert {c.table for c in checks.values()} == {settings.ranker.registered_model}

    fine = score_checks(settings, {C.RANKER: np.array([0.1, 2.0])})
    raise_on_failure(fine)
    diverged = score_checks(settings, {C.RANKER: np.array([0.1, np.nan, np.inf])})
    with pytest.raises(QualityCheckError, match=r"non_finite_scores.ranker = 2"):
        raise_on_failure(diverged)

    k = settings.ranker.gate_k
    tolerance = settings.ranker.champion_tolerance
    kept, _ = gate_checks(settings, 0.29, 0.30, None, promoted=False)
    assert (kept.name, kept.value, kept.threshold, kept.passed) == (
        f"gate.ndcg@{k}",
        0.29,
        pytest.approx(0.30 - tolerance),
        False,
    )
    first, promoted = gate_checks(settings, 0.4, None, Baseline("popular", 0.35), promoted=True)
    assert (first.threshold, first.passed, promoted.value) == (0.35, True, 1.0)


def test_top_lists_rank_by_score_then_item() -> None:
    frame = pd.DataFrame({C.USER_ID: ["u", "u", "u", "v"], C.ITEM_ID: [3, 1, 2, 9]})
    lists = top_lists(frame, np.array([0.5, 0.5, 0.9, 0.1]), "x", 2)
    assert lists.values.tolist() == [["x", "u", 2, 1], ["x", "u", 1, 2], ["x", "v", 9, 1]]


@pytest.mark.slow
def test_worse_ranker_is_not_promoted_a_better_one_is_and_reruns_reuse_versions(
    tmp_path, monkeypatch
) -> None:
    settings = make_settings(tmp_path)
    experiment = tracking.use_experiment(settings)
    assert load_champion(settings) is None
    first, second, third = (_ranker(settings, seed) for seed in (1, 2, 3))
    versions = []
    for ranker in (first, second, third, first):
        with mlflow.start_run(experiment_id=experiment) as run:
            versions.append(register(settings, ranker, run.info.run_id))
    assert versions == ["1", "2", "3", "1"]  # the same model again reuses its version

    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "recsys_lib.models.registry.notify",
        lambda settings, kind, summary, *args, **kw: alerts.append((kind, summary)),
    )
    night = dt.date(2026, 3, 10)
    better = Baseline("popular", 0.41)
    assert not apply_gate(settings, "1", 0.40, None, None, night, better)  # below popular
    assert load_champion(settings) is None
    assert apply_gate(settings, "1", 0.40, None, None, night, Baseline("als", 0.35))
    champion = load_champion(settings)
    assert champion is not None and champion.version == f"{settings.ranker.registered_model}/1"
    holdout = _samples(9)
    assert np.allclose(champion.ranker.predict(holdout), first.predict(holdout))

    next_night = night + dt.timedelta(days=1)
    assert not apply_gate(settings, "2", 0.30, champion, 0.40, next_night)  # worse: kept
    assert _number(load_champion(settings)) == "1"
    # Both refusals reached the notifier, with the figures that decided them.
    assert [kind for kind, _ in alerts] == ["champion_not_promoted"] * 2
    assert "does not beat popular's 0.4100" in alerts[0][1]
    assert "0.3000 < champion recsys-ranker/1's 0.4000" in alerts[1][1]
    assert apply_gate(settings, "3", 0.398, champion, 0.40, next_night)  # within the tolerance
    assert _number(load_champion(settings)) == "3"

    # Reruns see the champion of their night, and a past night never takes the alias back.
    assert _number(load_champion(settings, next_night, before_night=True)) == "1"
    assert _number(load_champion(settings, next_night)) == "3"
    assert load_champion(settings, night, before_night=True) is None
    assert _number(load_champion(settings, night)) == "1"
    assert not apply_gate(settings, "1", 0.40, None, None, night)
    assert _number(load_champion(settings)) == "3"


def _number(champion) -> str:
    assert champion is not None
    return champion.number


def test_distributed_scores_equal_the_driver_s(spark, tmp_path) -> None:
    settings = make_settings(tmp_path)
    ranker = _ranker(settings, 4)
    holdout = _samples(5, groups=6)
    frame = spark.createDataFrame(holdout[[C.USER_ID, C.ITEM_ID, *FEATURES]]).repartition(3)
    scored = score_frame(frame, ranker).toPandas()
    merged = holdout.merge(scored, on=[C.USER_ID, C.ITEM_ID])
    assert len(merged) == len(holdout)
    assert np.allclose(merged[C.SCORE], ranker.predict(merged))


def _featured(seed: int, groups: int) -> pd.DataFrame:
    """Samples with every ranking feature (f1 carries the label) and an importance."""
    frame = _samples(seed, groups)
    rng = np.random.default_rng(seed + 1)
    for column in C.RANKING_FEATURES:
        frame[column] = rng.normal(size=len(frame))
    frame[C.RANKING_FEATURES[0]] = frame["f1"]
    frame[C.IMPORTANCE] = rng.uniform(0.05, 1.0, size=len(frame))
    return frame


@pytest.mark.parametrize("importance", [True, False])
def test_the_importance_switch_picks_the_served_ranker_s_weights(tmp_path, importance) -> None:
    settings = make_settings(tmp_path)
    ranker = dataclasses.replace(
        settings.ranker, importance=importance, ablations=True, num_boost_round=15
    )
    settings = dataclasses.replace(settings, ranker=ranker)
    train, valid = _featured(1, 60), _featured(2, 20)
    trained = train_variants(train, valid, settings)
    other = C.RANKER_IMPORTANCE if not importance else C.RANKER_NO_IMPORTANCE
    assert set(trained) == {C.RANKER, other, C.RANKER_SAMPLED}
    features = list(C.RANKING_FEATURES)
    unweighted = Ranker.of(fit_ranker(train, valid, features, ranker), features)
    weighted = Ranker.of(
        fit_ranker(train, valid, features, ranker, weight_column=C.IMPORTANCE), features
    )
    served, ablation = (weighted, unweighted) if importance else (unweighted, weighted)
    assert trained[C.RANKER][0].content_hash == served.content_hash != ablation.content_hash
    assert trained[other][0].content_hash == ablation.content_hash
