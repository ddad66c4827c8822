"""Stage ``train_ranker``: the nightly LightGBM ranker, its evaluation and the champion gate.

Night D reads ``features.training_samples`` of the label days up to D: D is the holdout,
D - 1 the validation day (early stopping), and up to ``ranker.train_days`` days before it
train. Only groups (user x label day) with at least one positive label are collected:
lambdarank learns nothing from a group without one. The stage

1. fits the loss predictor of sample importance on out-of-fold losses of a pilot ranker
   (saved with the run; the ``samples`` stage of D + 1 scores new samples with it);
2. trains the ranker with importance as sample weights and, as ablations, without
   importance and on the importance-sampled ``ranker.ablation_fraction`` of the samples;
3. evaluates them, the current champion, the candidate union, each candidate source and
   the global popularity list on D's events (``ops.model_evaluation``, model ``ranker``);
4. registers the ranker as ``recsys-ranker`` (a model identical to a registered version
   reuses it) and moves the alias ``champion`` to it only when its holdout NDCG@``gate_k``
   is at least the champion's on the same holdout minus ``ranker.champion_tolerance``.

Fewer than three label days: the stage fits the loss predictor and trains no ranker.
The ranker and its distributed scoring are :mod:`recsys_lib.models.ranker`; the registry
and the gate :mod:`recsys_lib.models.registry`.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
import mlflow.lightgbm
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange, window
from recsys_lib.evaluation import (
    NDCG,
    NO_CUT_OFF,
    Figure,
    beyond_accuracy_metrics,
    day_labels,
    evaluation_frame,
    metrics_plot,
    ranking_metrics,
)
from recsys_lib.models.importance import (
    fit_loss_predictor,
    importance_plot,
    importance_sample,
    out_of_fold_losses,
)
from recsys_lib.models.ranker import Ranker, fit_ranker
from recsys_lib.models.registry import (
    CHAMPION,
    PREDICTOR_ARTIFACT,
    Baseline,
    Champion,
    apply_gate,
    load_champion,
    register,
)
from recsys_lib.runtime import tracking
from recsys_lib.runtime.claims import waiting
from recsys_lib.runtime.faults import fault_point
from recsys_lib.runtime.spark import concurrently
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import (
    Scope,
    read_partition,
    read_window,
    table_version,
    write_partitions,
)
from recsys_lib.warehouse.tables import (
    CANDIDATES,
    CLEAN_EVENTS,
    CLEAN_ITEMS,
    ITEM_DAILY,
    ITEM_FEATURES,
    MODEL_EVALUATION,
    POPULAR_ITEMS,
    QUALITY_CHECKS,
    TRAINING_SAMPLES,
    TableContract,
)

log = logging.getLogger(__name__)

STAGE = C.TRAIN_RANKER
MODEL_NAME = C.MODEL_RANKER  # ops.model_evaluation.model
TRAIN_SECONDS = "train_seconds"
TRAIN_ROWS = "train_rows"
BEST_ITERATION = "best_iteration"
PROMOTED = "promoted"
MIN_LABEL_DAYS = 3  # training, validation and holdout


# ---------------------------------------------------------------- days and samples


def label_days(run_date: dt.date, train_days: int) -> tuple[list[dt.date], dt.date, dt.date]:
    """(training days, validation day, holdout day) of night ``run_date``."""
    holdout = run_date
    valid = run_date - dt.timedelta(days=1)
    train = [valid - dt.timedelta(days=n) for n in range(train_days, 0, -1)]
    return train, valid, holdout


def with_group(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds the ranking group: user x label day."""
    frame = frame.copy()
    frame[C.GROUP] = frame[C.USER_ID].astype(str) + "|" + frame[C.DT].astype(str)
    return frame


def collect_samples(
    spark: SparkSession, settings: Settings, first: dt.date, last: dt.date
) -> pd.DataFrame:
    """Training samples of label days ``first .. last`` in groups with a positive label,
    collected to the driver within ``ranker.max_training_rows`` (the single-node step)."""
    samples = read_window(spark, settings, TRAINING_SAMPLES, DayRange(first, last))
    positive_groups = samples.filter(F.col(C.LABEL) > 0).select(C.DT, C.USER_ID).distinct()
    kept = samples.join(positive_groups, [C.DT, C.USER_ID])
    rows = kept.count()
    limit = settings.ranker.max_training_rows
    if rows > limit:
        raise MemoryError(
            f"{rows:,} training samples in groups with a positive label exceed "
            f"ranker.max_training_rows = {limit:,} (the memory bound of the single-node "
            "LightGBM step): lower ranker.train_days or raise the bound with more driver memory"
        )
    frame = kept.toPandas()
    frame[C.DT] = pd.to_datetime(frame[C.DT]).dt.date
    for column in C.RANKING_FEATURES:
        frame[column] = frame[column].astype(float)
    return with_group(frame).sort_values([C.GROUP, C.ITEM_ID], kind="mergesort")


# ---------------------------------------------------------------- training


def train_variants(
    train: pd.DataFrame, valid: pd.DataFrame, settings: Settings
) -> dict[str, tuple[Ranker, dict[str, float]]]:
    """The ranker (with ``ranker.importance``: importance as weights, or importance-sampled
    when ``ranker.sample_fraction`` < 1; without: every sample weighing 1) and, with
    ``ranker.ablations``, the other of the two (``ranker_no_importance`` or
    ``ranker_importance``) and the one on the importance-sampled ``ablation_fraction``."""
    ranker = settings.ranker
    features = list(C.RANKING_FEATURES)
    plans: dict[str, tuple[pd.DataFrame, str | None]] = {}
    weighted = sampled_plan(train, ranker.sample_fraction, ranker.seed)
    plans[C.RANKER] = weighted if ranker.importance else (train, None)
    if ranker.ablations:
        if ranker.importance:
            plans[C.RANKER_NO_IMPORTANCE] = (train, None)
        else:
            plans[C.RANKER_IMPORTANCE] = weighted
        plans[C.RANKER_SAMPLED] = sampled_plan(train, ranker.ablation_fraction, ranker.seed)
    trained: dict[str, tuple[Ranker, dict[str, float]]] = {}
    for variant, (frame, weights) in plans.items():
        started = time.perf_counter()
        model = fit_ranker(frame, valid, features, ranker, weight_column=weights)
        seconds = time.perf_counter() - started
        figures = {
            TRAIN_SECONDS: seconds,
            TRAIN_ROWS: float(len(frame)),
            BEST_ITERATION: float(model.best_iteration_ or ranker.num_boost_round),
        }
        trained[variant] = (Ranker.of(model, features), figures)
        log.info(
            "%s: %d rows, %.1fs, best iteration %d",
            variant,
            len(frame),
            seconds,
            figures[BEST_ITERATION],
        )
    return trained


def sampled_plan(
    train: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, str | None]:
    """(frame, weight column): importance weights on all rows, or the sample's
    inverse-probability-corrected weights."""
    if fraction >= 1.0:
        return train, C.IMPORTANCE
    return importance_sample(train, fraction, seed), C.SAMPLE_WEIGHT


# ---------------------------------------------------------------- evaluation


def top_lists(frame: pd.DataFrame, scores: np.ndarray, variant: str, k: int) -> pd.DataFrame:
    """(variant, user_id, item_id, rank): the best ``k`` of each user by score, then item."""
    scored = frame[[C.USER_ID, C.ITEM_ID]].assign(_score=scores)
    scored = scored.sort_values(
        [C.USER_ID, "_score", C.ITEM_ID], ascending=[True, False, True], kind="mergesort"
    )
    scored[C.RANK] = scored.groupby(C.USER_ID).cumcount() + 1
    top = scored[scored[C.RANK] <= k]
    return top.assign(**{C.VARIANT: variant})[[C.VARIANT, C.USER_ID, C.ITEM_ID, C.RANK]]


LISTS_SCHEMA = T.StructType(
    [
        T.StructField(C.VARIANT, T.StringType(), False),
        T.StructField(C.USER_ID, T.StringType(), False),
        T.StructField(C.ITEM_ID, T.LongType(), False),
        T.StructField(C.RANK, T.IntegerType(), False),
    ]
)


def baseline_lists(
    candidates: DataFrame, popular: DataFrame, users: DataFrame, k: int
) -> DataFrame:
    """The top ``k`` of each candidate source, of the union, and of the global popular
    list (``recs.popular_items``) for ``users``, as (variant, user_id, item_id, rank)."""
    lists = [
        candidates.filter(F.col(C.UNION_RANK) <= k).select(
            F.lit(C.SOURCE_UNION).alias(C.VARIANT),
            C.USER_ID,
            C.ITEM_ID,
            F.col(C.UNION_RANK).alias(C.RANK),
        )
    ]
    for source in C.CANDIDATE_SOURCES:
        lists.append(
            candidates.filter(F.col(C.source_rank(source)) <= k).select(
                F.lit(source).alias(C.VARIANT),
                C.USER_ID,
                C.ITEM_ID,
                F.col(C.source_rank(source)).alias(C.RANK),
            )
        )
    top = popular.filter(
        (F.col(C.LIST) == C.LIST_POPULAR)
        & (F.col(C.SCOPE) == C.SCOPE_GLOBAL)
        & (F.col(C.RANK) <= k)
    ).select(C.ITEM_ID, C.RANK)
    lists.append(
        users.crossJoin(F.broadcast(top)).select(
            F.lit(C.VARIANT_POPULARITY).alias(C.VARIANT), C.USER_ID, C.ITEM_ID, C.RANK
        )
    )
    union = lists[0]
    for frame in lists[1:]:
        union = union.unionByName(frame)
    return union.select(
        F.col(C.VARIANT), F.col(C.USER_ID), F.col(C.ITEM_ID), F.col(C.RANK).cast("int")
    )


def holdout_users(
    spark: SparkSession, settings: Settings, holdout_day: dt.date, candidates: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """(user_id, item_id, relevance) of ``holdout_day``'s events (3 purchase, 2 cart,
    1 view) and the evaluated users (cached): those with ``candidates`` and an event."""
    relevant = day_labels(read_partition(spark, settings, CLEAN_EVENTS, holdout_day)).select(
        C.USER_ID, C.ITEM_ID, F.col(C.LABEL).cast("double").alias("relevance")
    )
    users = (
        relevant.select(C.USER_ID)
        .distinct()
        .join(candidates.select(C.USER_ID).distinct(), C.USER_ID)
        .cache()
    )
    return relevant, users


def holdout_figures(
    spark: SparkSession,
    settings: Settings,
    holdout_day: dt.date,
    model_lists: pd.DataFrame,
) -> list[Figure]:
    """Every variant's ranking and beyond-accuracy metrics on ``holdout_day``'s events.

    Evaluated users: those with candidates on the day before and an event on the day; an
    item is relevant with its label (3 purchase, 2 cart, 1 view)."""
    as_of = holdout_day - dt.timedelta(days=1)
    ks = settings.ranker.eval_k
    k = max(ks)
    candidates = read_partition(spark, settings, CANDIDATES, as_of)
    relevant, users = holdout_users(spark, settings, holdout_day, candidates)
    lists = (
        baseline_lists(candidates, read_partition(spark, settings, POPULAR_ITEMS, as_of), users, k)
        .join(users, C.USER_ID)
        .unionByName(spark.createDataFrame(model_lists, LISTS_SCHEMA))
        .cache()
    )
    items = read_partition(spark, settings, ITEM_FEATURES, as_of)
    popularity = (
        read_window(spark, settings, ITEM_DAILY, window(as_of, 30))
        .groupBy(C.ITEM_ID)
        .agg(F.sum(C.USERS).alias(C.USERS))
    )
    catalogue, active = concurrently(
        [
            lambda: read_partition(spark, settings, CLEAN_ITEMS, as_of).count(),
            lambda: candidates.select(C.USER_ID).distinct().count(),
        ]
    )
    accuracy, beyond = concurrently(
        [
            lambda: ranking_metrics(lists, relevant, ks, users),
            lambda: beyond_accuracy_metrics(
                lists, items.select(C.ITEM_ID, C.CATEGORY_ID), popularity, active, catalogue, ks
            ),
        ]
    )
    lists.unpersist()
    users.unpersist()
    return [*accuracy, *beyond]


def value_of(figures: Sequence[Figure], variant: str, metric: str, k: int) -> float | None:
    for v, m, kk, x in figures:
        if (v, m, kk) == (variant, metric, k):
            return x
    return None


# The orders measured without a model: the first ranker must beat every one of them.
BASELINE_VARIANTS = (*C.CANDIDATE_SOURCES, C.VARIANT_POPULARITY)


def best_baseline(figures: Sequence[Figure], k: int) -> Baseline | None:
    """The best of :data:`BASELINE_VARIANTS` by holdout NDCG@``k`` (ties: the first listed);
    None when none was measured."""
    measured = [(v, value_of(figures, v, NDCG, k)) for v in BASELINE_VARIANTS]
    scored = [(v, x) for v, x in measured if x is not None]
    if not scored:
        return None
    variant, ndcg = max(scored, key=lambda vx: vx[1])
    return Baseline(variant, ndcg)


# ---------------------------------------------------------------- the stage


def train_ranker(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``train_ranker`` (see the module docstring)."""
    ranker_settings = settings.ranker
    train_days, valid_day, holdout_day = label_days(run_date, ranker_settings.train_days)
    # The champion of the night's start comes from the registry while Spark collects.
    samples, champion = concurrently(
        [
            lambda: collect_samples(spark, settings, train_days[0], holdout_day),
            lambda: load_champion(settings, run_date, before_night=True),
        ]
    )
    present = sorted(set(samples[C.DT]))
    log.info("training samples: %d rows in label days %s", len(samples), present)
    figures: dict[str, float] = {"sample_rows": float(len(samples)), "label_days": len(present)}
    checks = sample_checks(settings, samples, valid_day, holdout_day)
    features = list(C.RANKING_FEATURES)
    with tracking.stage_run(settings, STAGE, run_date) as run:
        log_inputs(spark, settings, train_days, valid_day, holdout_day)
        predictor_input = samples[samples[C.DT] <= holdout_day]
        if predictor_input[C.GROUP].nunique() >= 2:
            losses = out_of_fold_losses(
                predictor_input, features, ranker_settings, settings.importance
            )
            predictor = fit_loss_predictor(predictor_input, losses, features, settings.importance)
            with tempfile.TemporaryDirectory() as tmp:
                predictor.save(Path(tmp))
                mlflow.log_artifacts(tmp, PREDICTOR_ARTIFACT)
                plot = importance_plot(samples, Path(tmp) / "importance.png")
                mlflow.log_artifact(str(plot), "plots")
            mlflow.log_metric("loss_predictor.mean_oof_loss", float(np.mean(losses)))
        if valid_day not in present or holdout_day not in present or len(present) < MIN_LABEL_DAYS:
            log.warning(
                "ranker not trained for %s: it needs samples of %d label days (training, "
                "validation %s, holdout %s); present: %s",
                run_date,
                MIN_LABEL_DAYS,
                valid_day,
                holdout_day,
                present,
            )
            mlflow.set_tag("recsys.ranker", "not trained: too few label days")
            figures["trained"] = 0.0
            record_checks(spark, settings, run_date, [*checks, _trained(settings, False)])
            return figures
        train = samples[samples[C.DT] < valid_day]
        valid = samples[samples[C.DT] == valid_day]
        holdout = samples[samples[C.DT] == holdout_day]
        trained = train_variants(train, valid, settings)
        k = max(ranker_settings.eval_k)
        scores = {v: r.predict(holdout) for v, (r, _) in trained.items()}
        checks += [_trained(settings, True), *score_checks(settings, scores)]
        if any(not c.passed for c in checks):
            record_checks(spark, settings, run_date, checks)
            quality.raise_on_failure(checks)  # before a model is registered or evaluated
        model_lists = [top_lists(holdout, scores[v], v, k) for v in trained]
        if champion is not None and set(champion.ranker.features) <= set(holdout.columns):
            model_lists.append(top_lists(holdout, champion.ranker.predict(holdout), CHAMPION, k))
        evaluation = holdout_figures(spark, settings, holdout_day, pd.concat(model_lists))
        for variant, (_, training) in trained.items():
            # Seconds go to ops.stage_runs and MLflow only: a rerun must leave identical rows.
            evaluation += [
                (variant, name, NO_CUT_OFF, value)
                for name, value in training.items()
                if name != TRAIN_SECONDS
            ]
        new_ranker = trained[C.RANKER][0]
        gate_k = ranker_settings.gate_k
        new_ndcg = value_of(evaluation, C.RANKER, NDCG, gate_k) or 0.0
        champion_ndcg = value_of(evaluation, CHAMPION, NDCG, gate_k) if champion else None
        baseline = best_baseline(evaluation, gate_k)
        # One run at a time registers a version and moves the alias (two nights may train).
        registry = f"registry/{ranker_settings.registered_model}"
        with waiting(settings, registry, f"train_ranker for {run_date}"):
            version = register(settings, new_ranker, run.info.run_id)
            promoted = apply_gate(
                settings, version, new_ndcg, champion, champion_ndcg, run_date, baseline
            )
        fault_point("registered")
        evaluation.append((C.RANKER, PROMOTED, NO_CUT_OFF, 1.0 if promoted else 0.0))
        log_evaluation(settings, evaluation, trained, version, promoted, champion, baseline)
        mlflow.log_metrics(
            {f"{TRAIN_SECONDS}.{v}": t[TRAIN_SECONDS] for v, (_, t) in trained.items()}
        )
        checks += gate_checks(settings, new_ndcg, champion_ndcg, baseline, promoted)
        evaluated = (
            MODEL_EVALUATION,
            evaluation_frame(spark, MODEL_NAME, evaluation, run_date),
            {C.MODEL: MODEL_NAME},
        )
        record_checks(spark, settings, run_date, checks, [evaluated])
    for variant, (_, training) in trained.items():
        figures[f"{variant}.{TRAIN_SECONDS}"] = training[TRAIN_SECONDS]
    figures.update(
        {
            "trained": 1.0,
            PROMOTED: 1.0 if promoted else 0.0,
            "registry_version": float(version),
            **{f"{v}.{m}@{kk}": x for v, m, kk, x in evaluation if kk in (0, gate_k, k)},
        }
    )
    return figures


# ---------------------------------------------------------------- checks


def sample_checks(
    settings: Settings, samples: pd.DataFrame, valid_day: dt.date, holdout_day: dt.date
) -> list[quality.Check]:
    """What the ranker learns from, in ``ops.quality_checks`` under the registered model's
    name: the rows collected (within ``ranker.max_training_rows``), the label days present,
    and the rows and groups (user x label day with a positive) of training, validation and
    holdout."""
    name = settings.ranker.registered_model
    day = samples[C.DT]
    parts = {
        "train": samples[day < valid_day],
        "validation": samples[day == valid_day],
        "holdout": samples[day == holdout_day],
    }
    return [
        quality.at_most(name, "sample_rows", len(samples), settings.ranker.max_training_rows),
        quality.measure(name, "label_days", day.nunique()),
        *[quality.measure(name, f"rows.{part}", len(frame)) for part, frame in parts.items()],
        *[
            quality.measure(name, f"groups.{part}", frame[C.GROUP].nunique())
            for part, frame in parts.items()
        ],
    ]


def _trained(settings: Settings, trained: bool) -> quality.Check:
    return quality.measure(settings.ranker.registered_model, "trained", float(trained))


def score_checks(settings: Settings, scores: dict[str, np.ndarray]) -> list[quality.Check]:
    """A contract: every variant scores every holdout sample with a finite number (a model
    that diverged is neither registered nor evaluated)."""
    name = settings.ranker.registered_model
    return [
        quality.equals(name, f"non_finite_scores.{variant}", int((~np.isfinite(s)).sum()), 0)
        for variant, s in scores.items()
    ]


def gate_checks(
    settings: Settings,
    new_ndcg: float,
    champion_ndcg: float | None,
    baseline: Baseline | None,
    promoted: bool,
) -> list[quality.Check]:
    """The gate's figures and decision: the new ranker's holdout NDCG@``gate_k`` against the
    bar it had to reach (the champion's minus the tolerance, or the best order without a
    model), ``passed`` when it was promoted. Not promoting is the gate's answer, not a
    failure of the stage."""
    ranker = settings.ranker
    name, k = ranker.registered_model, ranker.gate_k
    if champion_ndcg is not None:
        bar: float | None = champion_ndcg - ranker.champion_tolerance
    else:
        bar = baseline.ndcg if baseline is not None else None
    return [
        quality.Check(name, f"gate.ndcg@{k}", float(new_ndcg), bar, promoted),
        quality.measure(name, "gate.promoted", float(promoted)),
    ]


def record_checks(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    checks: Sequence[quality.Check],
    writes: Sequence[tuple[TableContract, DataFrame, Scope]] = (),
) -> None:
    """The stage's checks in ``ops.quality_checks`` (its slice: the registered model's name),
    committed with ``writes``."""
    recorded = (
        QUALITY_CHECKS,
        quality.checks_frame(spark, checks, run_date),
        {C.TABLE_NAME: (settings.ranker.registered_model,)},
    )
    write_partitions(spark, settings, [*writes, recorded], run_date)


def log_inputs(
    spark: SparkSession,
    settings: Settings,
    train_days: list[dt.date],
    valid_day: dt.date,
    holdout_day: dt.date,
) -> None:
    ranker = settings.ranker
    mlflow.log_params(
        {
            "train_first_day": train_days[0].isoformat(),
            "validation_day": valid_day.isoformat(),
            "holdout_day": holdout_day.isoformat(),
            "num_boost_round": ranker.num_boost_round,
            "early_stopping_rounds": ranker.early_stopping_rounds,
            "learning_rate": ranker.learning_rate,
            "num_leaves": ranker.num_leaves,
            "min_child_samples": ranker.min_child_samples,
            "feature_fraction": ranker.feature_fraction,
            "sample_fraction": ranker.sample_fraction,
            "ablation_fraction": ranker.ablation_fraction,
            "champion_tolerance": ranker.champion_tolerance,
            "importance": str(settings.importance),
            "input.features.training_samples.delta_version": table_version(
                spark, settings, TRAINING_SAMPLES
            ),
        }
    )


def log_evaluation(
    settings: Settings,
    evaluation: list[Figure],
    trained: dict[str, tuple[Ranker, dict[str, float]]],
    version: str,
    promoted: bool,
    champion: Champion | None,
    baseline: Baseline | None = None,
) -> None:
    """Metrics, the gate's decision and the plots of the current MLflow run."""
    mlflow.log_metrics({f"{m}.{v}.at_{k}" if k else f"{m}.{v}": x for v, m, k, x in evaluation})
    name, k = settings.ranker.registered_model, settings.ranker.gate_k
    if promoted:
        decision = f"promoted {name}/{version}"
    elif champion is not None:
        decision = (
            f"kept {champion.version}: new model below the champion's holdout NDCG@{k} minus "
            "the tolerance"
        )
    else:
        assert baseline is not None
        decision = (
            f"not promoted: the first ranker does not beat {baseline.variant}'s holdout "
            f"NDCG@{k} {baseline.ndcg:.4f}; the best measured order serves"
        )
    mlflow.set_tags(
        {
            "recsys.registry_version": f"{name}/{version}",
            "recsys.promoted": str(promoted).lower(),
            "recsys.previous_champion": champion.version if champion else "none",
            "recsys.gate": decision,
            "recsys.gate_baseline": (
                f"{baseline.variant} {baseline.ndcg:.4f}" if baseline else "none measured"
            ),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        metrics_plot(evaluation, Path(tmp) / "metrics_by_k.png", "holdout metrics by k")
        booster = trained[C.RANKER][0].booster()
        importance_frame = pd.DataFrame(
            {
                "feature": booster.feature_name(),
                "gain": booster.feature_importance(importance_type="gain"),
            }
        ).sort_values("gain", ascending=False)
        importance_frame.to_csv(Path(tmp) / "feature_importance.csv", index=False)
        feature_importance_plot(importance_frame, Path(tmp) / "feature_importance.png")
        mlflow.log_artifacts(tmp, "plots")


def feature_importance_plot(importance: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of the ranker's gain per feature (top 25)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = importance.head(25).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 8))
    ax.barh(top["feature"], top["gain"])
    ax.set_xlabel("total gain")
    ax.set_title("ranker feature importance")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
