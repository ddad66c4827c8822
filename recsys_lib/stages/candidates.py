"""Stage ``candidates``: what the ranker may choose from, for every active user.

Reads the window's events, the day's portraits, ALS model and similar items; writes the
day's ``recs.bought_together`` and ``recs.popular_items`` (two of the sources' own tables)
and ``features.candidates``, the union of the seven sources
(:mod:`recsys_lib.sources.union`), fitting the EASE source's model on the way
(:mod:`recsys_lib.models.ease`); and measures the recall of yesterday's candidates on
today's events (``ops.model_evaluation``, model ``candidates``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import window, within
from recsys_lib.evaluation import (
    Figure,
    candidate_recall,
    evaluation_frame,
)
from recsys_lib.models import ease as ease_model
from recsys_lib.models.als import AlsModel, load_model
from recsys_lib.runtime import tracking
from recsys_lib.runtime.spark import concurrently
from recsys_lib.sources.bought_together import bought_together, skipped_users
from recsys_lib.sources.history import cut_thin, user_history
from recsys_lib.sources.popularity import popular_items
from recsys_lib.sources.union import candidate_sources, combine
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.storage import read_partition, read_window, table_version
from recsys_lib.warehouse.tables import (
    BOUGHT_TOGETHER,
    CANDIDATES,
    CLEAN_EVENTS,
    CLEAN_ITEMS,
    ITEM_DAILY,
    MODEL_EVALUATION,
    POPULAR_ITEMS,
    SIMILAR_ITEMS,
    USER_PORTRAIT,
)

log = logging.getLogger(__name__)

STAGE = C.CANDIDATES
MODEL_NAME = C.MODEL_CANDIDATES


def with_run_date(df: DataFrame, run_date: dt.date) -> DataFrame:
    return df.withColumn(C.DT, F.lit(run_date))


@dataclass(frozen=True)
class Found:
    """What :func:`candidates_of` computes: the union, two sources' own tables, and the
    EASE model's window pairs (every user's items of the window) and fit figures."""

    union: DataFrame
    together: DataFrame
    lists: DataFrame
    ease_pairs: DataFrame
    ease_figures: dict[str, float]
    history: DataFrame  # (user_id, history_group) of the active users

    def unpersist(self) -> None:
        for frame in (self.together, self.lists, self.ease_pairs, self.history):
            frame.unpersist()

    def path_users(self, thin_groups: tuple[str, ...]) -> dict[str, float]:
        """Active users per history group and per path (full, thin)."""
        counts = {
            str(r[C.HISTORY_GROUP]): float(r["count"])
            for r in self.history.groupBy(C.HISTORY_GROUP).count().collect()
        }
        thin = sum(x for g, x in counts.items() if g in thin_groups)
        return {
            **{f"users.{g}": counts.get(g, 0.0) for g in C.HISTORY_GROUPS},
            "users.full_path": sum(counts.values()) - thin,
            "users.thin_path": thin,
        }


def candidates_of(
    events: DataFrame,
    portraits: DataFrame,
    items: DataFrame,
    item_daily: DataFrame,
    model: AlsModel,
    similar: DataFrame,
    run_date: dt.date,
    settings: Settings,
    max_per_user: int | None,
) -> Found:
    """The day's candidates from its inputs, with no table read or written: the
    bought-together pairs and popular lists, the EASE fit, the seven sources and their union
    cut at ``max_per_user`` (None: uncut; the thin path's users at
    ``candidates.thin_max_per_user``). ``events``: clean.events of at least the longest
    of the active, bought-together and EASE windows; ``item_daily``: features.item_daily of
    the popular and new-arrival windows; ``items``, ``portraits``, ``similar``: the day's."""
    bt_events = events.filter(within(window(run_date, settings.bought_together.window_days)))
    together = bought_together(bt_events, settings.bought_together).cache()
    lists = popular_items(
        item_daily, items, run_date, settings.popular, settings.features.event_weights
    ).cache()
    ease_pairs = ease_model.presence(
        events.filter(within(window(run_date, settings.ease.window_days)))
    ).cache()
    ease, ease_figures = ease_model.train(ease_pairs, settings.ease)
    cand = settings.candidates
    history = user_history(events, run_date, cand.active_days).cache()
    sources = candidate_sources(
        events,
        portraits,
        model,
        similar,
        together,
        lists,
        (ease, ease_pairs),
        history,
        run_date,
        cand,
        settings.ease.batch_rows,
    )
    union = cut_thin(
        combine(sources, max_per_user), history, cand.thin_groups, cand.thin_max_per_user
    )
    return Found(union, together, lists, ease_pairs, ease_figures, history)


def candidates_day(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, float]:
    """Stage ``candidates``: source tables, candidates, and yesterday's candidates' recall."""
    cand = settings.candidates
    days = max(cand.active_days, settings.bought_together.window_days, settings.ease.window_days)
    events = read_window(spark, settings, CLEAN_EVENTS, window(run_date, days)).cache()
    portraits = read_partition(spark, settings, USER_PORTRAIT, run_date)
    items = read_partition(spark, settings, CLEAN_ITEMS, run_date)
    yesterday = run_date - dt.timedelta(days=1)
    previous = read_partition(spark, settings, CANDIDATES, yesterday)
    bt_events = events.filter(within(window(run_date, settings.bought_together.window_days)))
    # Independent small actions side by side (spark.concurrently): the inputs exist, how many
    # users bought_together skips, and whether yesterday has candidates to measure.
    has_items, has_portraits, has_previous, skipped = concurrently(
        [
            lambda: items.limit(1).count() > 0,
            lambda: portraits.limit(1).count() > 0,
            lambda: previous.limit(1).count() > 0,
            lambda: skipped_users(bt_events, settings.bought_together),
        ]
    )
    if not (has_items and has_portraits):
        raise RuntimeError(
            f"clean.items or features.user_portrait has no rows for {run_date}: "
            "run `items` and `features` for it first"
        )
    if skipped:
        log.warning(
            "bought_together: %d users with more than %d carted/bought items skipped",
            skipped,
            settings.bought_together.max_items_per_user,
        )
    holdout = events.filter(F.col(C.DT) == F.lit(run_date))
    if not has_previous:
        log.warning("no candidates for %s: recall on %s not measured", yesterday, run_date)
    # The model comes from MLflow while Spark measures yesterday's candidates.
    measured, loaded = concurrently(
        [
            lambda: candidate_recall(previous, holdout, cand.recall_k) if has_previous else [],
            lambda: load_model(settings, run_date),
        ]
    )
    recall: list[Figure] = measured
    model, als_run_id = loaded
    similar = read_partition(spark, settings, SIMILAR_ITEMS, run_date)
    popular_days = max(settings.popular.window_days, settings.popular.new_arrival_days)
    item_daily = read_window(spark, settings, ITEM_DAILY, window(run_date, popular_days))
    found = candidates_of(
        events, portraits, items, item_daily, model, similar, run_date, settings, cand.max_per_user
    )
    together, lists, candidates = found.together, found.lists, found.union
    figures = quality.write_checked(
        spark,
        settings,
        [
            (BOUGHT_TOGETHER, with_run_date(together, run_date)),
            (POPULAR_ITEMS, with_run_date(lists, run_date)),
            (CANDIDATES, with_run_date(candidates, run_date)),
        ],
        run_date,
        extra_writes=[
            (
                MODEL_EVALUATION,
                evaluation_frame(spark, MODEL_NAME, recall, run_date),
                {C.MODEL: MODEL_NAME},
            )
        ],
    )
    paths = found.path_users(cand.thin_groups)
    log_run(settings, run_date, recall, als_run_id, {**found.ease_figures, **paths}, spark)
    events.unpersist()
    found.unpersist()
    return {
        **figures,
        "bought_together.skipped_users": float(skipped),
        **found.ease_figures,
        **paths,
        **{f"{v}.{m}@{k}": x for v, m, k, x in recall},
    }


def log_run(
    settings: Settings,
    run_date: dt.date,
    recall: list[Figure],
    als_run_id: str,
    figures: dict[str, float],
    spark: SparkSession,
) -> None:
    """An MLflow run of the stage: yesterday's candidates' recall, the EASE fit's figures,
    the users per path and the settings, and the inputs used."""
    with tracking.stage_run(settings, STAGE, run_date, tags={"recsys.als_run_id": als_run_id}):
        mlflow.log_params(
            {
                "per_source": dict(settings.candidates.per_source),
                "active_days": settings.candidates.active_days,
                "recent_days": settings.candidates.recent_days,
                "thin_groups": list(settings.candidates.thin_groups),
                "thin_max_per_user": settings.candidates.thin_max_per_user,
                **{f"ease.{k}": v for k, v in dataclasses.asdict(settings.ease).items()},
                "input.clean.events.delta_version": table_version(spark, settings, CLEAN_EVENTS),
                "input.recs.similar_items.delta_version": table_version(
                    spark, settings, SIMILAR_ITEMS
                ),
            }
        )
        mlflow.log_metrics({f"{m}.{v}.at_{k}" if k else f"{m}.{v}": x for v, m, k, x in recall})
        mlflow.log_metrics(figures)
