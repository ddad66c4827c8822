"""Sample importance: bounds, determinism, monotonicity of each component, the pairwise loss,
out-of-fold losses, the loss predictor, importance sampling and the Spark path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recsys_lib import constants as C
from recsys_lib.config import ImportanceSettings, RankerSettings
from recsys_lib.models.importance import (
    ITEM_VIEWS_30D,
    USER_DAYS_SINCE_LAST_EVENT,
    LossPredictor,
    fit_loss_predictor,
    importance_of,
    importance_plot,
    importance_sample,
    median_item_views,
    out_of_fold_losses,
    pairwise_losses,
    static_components,
    with_importance,
)

DAY = dt.date(2026, 1, 31)
FEATURES = ["x", ITEM_VIEWS_30D, USER_DAYS_SINCE_LAST_EVENT]
SAMPLE_COLUMNS = [C.USER_ID, C.ITEM_ID, C.DT, C.GROUP, C.LABEL, *FEATURES]
SAMPLES_DDL = (
    f"{C.USER_ID} string, {C.ITEM_ID} long, {C.DT} date, {C.GROUP} string, "
    f"{C.LABEL} int, x double, {ITEM_VIEWS_30D} double, {USER_DAYS_SINCE_LAST_EVENT} double"
)


@pytest.fixture()
def imp(settings: Any) -> ImportanceSettings:
    return dataclasses.replace(
        settings.importance,
        event_values={"none": 0.25, "view": 0.5, "cart": 0.75, "purchase": 1.0},
        recency_half_life_days=30.0,
        propensity_power=0.5,
        learned_power=1.0,
        floor=0.01,
        folds=3,
        pilot_rounds=20,
        predictor_rounds=30,
        seed=42,
    )


@pytest.fixture()
def ranker(settings: Any) -> RankerSettings:
    return dataclasses.replace(settings.ranker, min_child_samples=5, num_leaves=7)


def synthetic(users: int = 30, items: int = 12, seed: int = 0) -> pd.DataFrame:
    """One group per user; the three items with the largest ``x`` are the positives."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        x = rng.normal(size=items)
        labels = np.zeros(items, dtype=np.int32)
        labels[np.argsort(-x)[:3]] = [3, 2, 1]
        for i in range(items):
            rows.append(
                {
                    C.USER_ID: f"u{u:03d}",
                    C.ITEM_ID: 100 * u + i,
                    C.DT: DAY,
                    C.GROUP: f"u{u:03d}|{DAY}",
                    C.LABEL: int(labels[i]),
                    "x": float(x[i]),
                    ITEM_VIEWS_30D: float(rng.integers(0, 500)),
                    USER_DAYS_SINCE_LAST_EVENT: float(rng.integers(0, 60)),
                }
            )
    return pd.DataFrame(rows)


def components(n: int, **values: Any) -> pd.DataFrame:
    base = {c: np.full(n, 1.0) for c in C.IMPORTANCE_COMPONENTS}
    return pd.DataFrame({**base, **values})


# --- documented components -----------------------------------------------------------------


def test_static_components_formula_bounds_and_monotonicity(spark: Any, imp: Any) -> None:
    rows = [
        # (label, days, views): each block varies one input, the others fixed
        *[(label, 10.0, 50.0) for label in range(4)],
        *[(0, days, 50.0) for days in (0.0, 1.0, 30.0, 90.0, 1e6)],
        *[(0, 10.0, views) for views in (0.0, 10.0, 100.0, 1e4, 1e12)],
        (0, None, None),  # unknown user recency and item views: neutral / zero views
    ]
    frame = pd.DataFrame(
        {
            C.USER_ID: "u",
            C.ITEM_ID: np.arange(len(rows)),
            C.DT: DAY,
            C.GROUP: "g",
            C.LABEL: [r[0] for r in rows],
            "x": 0.0,
            USER_DAYS_SINCE_LAST_EVENT: [r[1] for r in rows],
            ITEM_VIEWS_30D: [r[2] for r in rows],
        }
    )
    samples = spark.createDataFrame(frame[SAMPLE_COLUMNS], SAMPLES_DDL)
    got = static_components(samples, 10.0, imp).orderBy(C.ITEM_ID).toPandas()
    event = got[C.EVENT_VALUE_WEIGHT].to_numpy()
    recency = got[C.RECENCY_WEIGHT].to_numpy()
    propensity = got[C.PROPENSITY_WEIGHT].to_numpy()
    for column in (event, recency, propensity):
        assert ((column > 0) & (column <= 1)).all()

    assert list(event[:4]) == [0.25, 0.5, 0.75, 1.0]  # higher label, higher weight
    assert recency[4] == 1.0 and recency[6] == pytest.approx(0.5)  # 0 days; one half-life
    assert np.all(np.diff(recency[4:9]) < 0)  # more days since the last event, lower
    assert recency[8] == imp.floor  # 1e6 days underflows to 0: held at the floor
    assert propensity[9] == 1.0 and propensity[10] == pytest.approx(2**-0.5)  # views = m
    assert np.all(np.diff(propensity[9:14]) < 0)  # more views, lower
    assert recency[-1] == 1.0 and propensity[-1] == 1.0

    # A zero half-life switches recency off; a median below 1 counts as 1.
    off = dataclasses.replace(imp, recency_half_life_days=0.0)
    got = static_components(samples, 0.0, off).orderBy(C.ITEM_ID).toPandas()
    assert (got[C.RECENCY_WEIGHT] == 1.0).all()
    assert got[C.PROPENSITY_WEIGHT].iloc[10] == pytest.approx(11**-0.5)


def test_median_item_views_counts_each_item_once(spark: Any) -> None:
    rows = [(1, 1.0), (1, 1.0), (1, 1.0), (2, 5.0), (3, 9.0), (4, None)]  # item 4: 0 views
    df = spark.createDataFrame(rows, f"{C.ITEM_ID} long, {ITEM_VIEWS_30D} double")
    assert median_item_views(df) in (1.0, 5.0)
    assert median_item_views(df.limit(0)) == 0.0


def test_event_values_outside_the_unit_interval_fail(spark: Any, imp: Any) -> None:
    samples = spark.createDataFrame([], SAMPLES_DDL)
    bad = dataclasses.replace(imp, event_values={**imp.event_values, "purchase": 2.0})
    with pytest.raises(ValueError, match="event_values"):
        static_components(samples, 1.0, bad)


def test_importance_is_the_clipped_product(imp: Any) -> None:
    frame = components(
        3,
        event_value_weight=[1.0, 0.5, 0.25],
        recency_weight=[1.0, 0.5, 0.01],
        learned_weight=[1.0, 0.8, 0.01],
    )
    got = importance_of(frame, imp)
    assert got == pytest.approx([1.0, 0.2, imp.floor])
    with pytest.raises(ValueError, match="missing"):
        importance_of(frame.drop(columns=C.LEARNED_WEIGHT), imp)


# --- pairwise and out-of-fold losses -------------------------------------------------------


def test_pairwise_losses_by_hand() -> None:
    scores = np.array([2.0, 0.0, 1.0, 0.0, 0.0, 5.0, 1.0])
    labels = np.array([1, 0, 0, 1, 0, 2, 2])
    sizes = np.array([3, 2, 2])
    # Group 1: sample 0 (label 1) beats both: log(1+e^-2) = 0.126928, log(1+e^-1) = 0.313262,
    #   mean 0.220095; sample 1 only pairs with 0 (0.126928), sample 2 with 0 (0.313262).
    # Group 2: equal scores, different labels: log 2 = 0.693147 for both.
    # Group 3: equal labels: no pair, loss 0.
    expected = [0.220095, 0.126928, 0.313262, 0.693147, 0.693147, 0.0, 0.0]
    assert pairwise_losses(scores, labels, sizes) == pytest.approx(expected, abs=1e-6)
    # A wrong order costs more than the right one.
    assert pairwise_losses(np.array([0.0, 2.0]), np.array([1, 0]), np.array([2]))[0] > math.log(2)
    with pytest.raises(ValueError):
        pairwise_losses(scores, labels, np.array([3, 3]))


def test_out_of_fold_losses_single_out_a_noisy_group(imp: Any, ranker: Any) -> None:
    frame = synthetic()
    noisy = frame[C.USER_ID] == "u007"
    # The noisy user's positives are its items with the *smallest* x.
    x = frame.loc[noisy, "x"].to_numpy()
    labels = np.zeros(len(x), dtype=np.int32)
    labels[np.argsort(x)[:3]] = [3, 2, 1]
    frame.loc[noisy, C.LABEL] = labels
    shuffled = frame.sample(frac=1.0, random_state=1)

    losses = out_of_fold_losses(shuffled, FEATURES, ranker, imp)
    assert len(losses) == len(frame) and (losses >= 0).all()
    by_user = pd.Series(losses, index=shuffled.index).groupby(shuffled[C.USER_ID]).mean()
    assert by_user.idxmax() == "u007"
    assert by_user["u007"] > 2 * by_user.drop("u007").median()
    # Aligned with the input rows whatever their order.
    again = out_of_fold_losses(frame, FEATURES, ranker, imp)
    assert again == pytest.approx(pd.Series(losses, index=shuffled.index).loc[frame.index])


def test_out_of_fold_losses_need_two_users(imp: Any, ranker: Any) -> None:
    one_user = synthetic(users=1)
    assert (out_of_fold_losses(one_user, FEATURES, ranker, imp) == 0).all()


# --- the loss predictor --------------------------------------------------------------------


@pytest.fixture()
def predictor(imp: Any) -> LossPredictor:
    frame = synthetic(users=40)
    losses = np.maximum(frame["x"].to_numpy() + 1.0, 0.0)  # a loss that grows with x
    return fit_loss_predictor(frame, losses, FEATURES, imp)


def test_learned_weight_grows_with_predicted_loss(predictor: LossPredictor) -> None:
    frame = synthetic(users=10, seed=3)
    predicted = predictor.predicted_losses(frame)
    weights = predictor.weights(frame)
    assert ((weights >= predictor.floor) & (weights <= 1)).all()
    order = np.argsort(predicted, kind="stable")
    assert np.all(np.diff(weights[order]) >= 0)
    assert weights[order][-1] > weights[order][0]
    assert predictor.inputs == (*FEATURES, C.LABEL) and predictor.scale > 0
    off = dataclasses.replace(predictor, power=0.0)
    assert (off.weights(frame) == 1.0).all()


def test_loss_predictor_is_deterministic_and_survives_save_load(
    predictor: LossPredictor, imp: Any, tmp_path: Path
) -> None:
    frame = synthetic(users=10, seed=3)
    refit = fit_loss_predictor(
        synthetic(users=40), np.maximum(synthetic(users=40)["x"] + 1.0, 0.0), FEATURES, imp
    )
    assert np.array_equal(refit.weights(frame), predictor.weights(frame))
    loaded = LossPredictor.load(predictor.save(tmp_path / "predictor"))
    assert np.array_equal(loaded.weights(frame), predictor.weights(frame))
    assert (loaded.inputs, loaded.scale, loaded.power) == (
        predictor.inputs,
        predictor.scale,
        predictor.power,
    )


def test_losses_without_signal_switch_the_learned_weight_off(imp: Any) -> None:
    frame = synthetic(users=10)
    got = fit_loss_predictor(frame, np.zeros(len(frame)), FEATURES, imp)
    assert (got.weights(frame) == 1.0).all()


# --- Spark ---------------------------------------------------------------------------------


def test_with_importance_in_spark_matches_pandas(
    spark: Any, imp: Any, predictor: LossPredictor
) -> None:
    frame = synthetic(users=6, seed=5)
    frame.loc[0, USER_DAYS_SINCE_LAST_EVENT] = None
    frame.loc[1, ITEM_VIEWS_30D] = None
    frame.loc[2, "x"] = None
    samples = static_components(
        spark.createDataFrame(frame[SAMPLE_COLUMNS], SAMPLES_DDL), 100.0, imp
    )

    got = with_importance(samples, predictor, imp)
    assert got.columns == [*samples.columns, C.LEARNED_WEIGHT, C.IMPORTANCE]
    assert dict(got.dtypes)[C.IMPORTANCE] == "double"
    local = got.orderBy(C.ITEM_ID).toPandas()
    expected = samples.orderBy(C.ITEM_ID).toPandas()
    expected[C.LEARNED_WEIGHT] = predictor.weights(expected)
    assert np.array_equal(local[C.LEARNED_WEIGHT], expected[C.LEARNED_WEIGHT])
    assert np.array_equal(local[C.IMPORTANCE], importance_of(expected, imp))
    assert ((local[C.IMPORTANCE] > 0) & (local[C.IMPORTANCE] <= 1)).all()

    first_night = with_importance(samples, None, imp).orderBy(C.ITEM_ID).toPandas()
    assert (first_night[C.LEARNED_WEIGHT] == 1.0).all()


def test_importance_is_the_same_whatever_the_row_order(imp: Any, predictor: LossPredictor) -> None:
    frame = synthetic(users=8, seed=7)
    frame = frame.assign(
        **{
            C.EVENT_VALUE_WEIGHT: 0.5,
            C.RECENCY_WEIGHT: 0.9,
            C.PROPENSITY_WEIGHT: 0.7,
        }
    )
    frame[C.LEARNED_WEIGHT] = predictor.weights(frame)
    first = pd.Series(importance_of(frame, imp), index=frame.index)
    shuffled = frame.sample(frac=1.0, random_state=3)
    shuffled_weights = pd.Series(predictor.weights(shuffled), index=shuffled.index)
    assert np.array_equal(shuffled_weights.loc[frame.index], frame[C.LEARNED_WEIGHT])
    assert np.array_equal(importance_of(shuffled, imp), first.loc[shuffled.index])


# --- importance sampling -------------------------------------------------------------------


def sampling_frame(n: int = 40_000, positives: float = 0.05, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            C.GROUP: [f"g{i // 100}" for i in range(n)],
            C.ITEM_ID: np.arange(n, dtype=np.int64),
            C.LABEL: (rng.random(n) < positives).astype(np.int32),
            C.IMPORTANCE: rng.uniform(0.01, 1.0, n) ** 2,
        }
    )


def test_importance_sample_keeps_positives_and_is_unbiased() -> None:
    frame = sampling_frame()
    got = importance_sample(frame, 0.3, seed=42)
    positives = frame[C.LABEL] > 0
    assert (got[C.LABEL] > 0).sum() == positives.sum()
    assert (got.loc[got[C.LABEL] > 0, C.KEEP_PROBABILITY] == 1.0).all()
    assert len(got) == pytest.approx(0.3 * len(frame), rel=0.02)
    kept_negatives = got[got[C.LABEL] == 0]
    assert kept_negatives[C.SAMPLE_WEIGHT].sum() == pytest.approx(
        frame.loc[~positives, C.IMPORTANCE].sum(), rel=0.03
    )
    assert np.allclose(got[C.SAMPLE_WEIGHT], got[C.IMPORTANCE] / got[C.KEEP_PROBABILITY])
    # More important negatives are kept more often.
    p = kept_negatives.set_index(C.ITEM_ID)[C.KEEP_PROBABILITY]
    imp_kept = kept_negatives.set_index(C.ITEM_ID)[C.IMPORTANCE]
    assert np.all(np.diff(p.loc[imp_kept.sort_values().index].to_numpy()) >= 0)


def test_importance_sample_is_deterministic_and_order_free() -> None:
    frame = sampling_frame(n=5_000)
    first = importance_sample(frame, 0.2, seed=7).set_index([C.GROUP, C.ITEM_ID]).sort_index()
    again = importance_sample(frame.sample(frac=1.0, random_state=9), 0.2, seed=7)
    again = again.set_index([C.GROUP, C.ITEM_ID]).sort_index()
    pd.testing.assert_frame_equal(first, again)
    other_seed = importance_sample(frame, 0.2, seed=8).set_index([C.GROUP, C.ITEM_ID])
    assert not other_seed.index.sort_values().equals(first.index)


def test_importance_sample_limits(caplog: pytest.LogCaptureFixture) -> None:
    frame = sampling_frame(n=1_000, positives=0.5)
    everything = importance_sample(frame, 1.0, seed=1)
    assert len(everything) == len(frame)
    assert np.array_equal(everything[C.SAMPLE_WEIGHT], frame[C.IMPORTANCE])
    with caplog.at_level("WARNING"):
        only_positives = importance_sample(frame, 0.1, seed=1)
    assert (only_positives[C.LABEL] > 0).all()
    assert len(only_positives) == (frame[C.LABEL] > 0).sum()
    assert "no negative is kept" in caplog.text
    with pytest.raises(ValueError):
        importance_sample(frame, 0.0, seed=1)


def test_importance_plot_writes_a_png(tmp_path: Path) -> None:
    frame = components(200, learned_weight=np.linspace(0.01, 1.0, 200))
    frame[C.IMPORTANCE] = frame[C.LEARNED_WEIGHT]
    path = importance_plot(frame, tmp_path / "plots" / "importance.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
