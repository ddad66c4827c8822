"""A short report of one nightly run: tables, sample recommendations, the model, timings."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.evaluation import NDCG, NO_CUT_OFF, RECALL
from recsys_lib.models.registry import load_champion
from recsys_lib.runtime import tracking
from recsys_lib.runtime.spark import get_spark
from recsys_lib.stages.train_ranker import PROMOTED, TRAIN_ROWS, TRAIN_SECONDS
from recsys_lib.warehouse.storage import read_table, register_tables, table_path
from recsys_lib.warehouse.tables import (
    ALL_TABLES,
    CANDIDATES,
    CLEAN_ITEMS,
    MODEL_EVALUATION,
    STAGE_RUNS,
    USER_PORTRAIT,
    USER_RECOMMENDATIONS,
)


def _counts(frame: DataFrame, column: str) -> str:
    rows = frame.groupBy(column).count().orderBy(F.desc("count"), column).collect()
    return ", ".join(f"{r[0]}={r[1]}" for r in rows)


def portraits_and_items(spark: SparkSession, settings: Settings, run_date: dt.date) -> list[str]:
    """Lines on the day's portraits (segments, lifecycle) and category completion."""
    portraits = read_table(spark, settings, USER_PORTRAIT).filter(F.col(C.DT) == run_date)
    items = read_table(spark, settings, CLEAN_ITEMS).filter(F.col(C.DT) == run_date)
    accuracy = {
        (r[C.VARIANT], r[C.K]): r[C.VALUE]
        for r in read_table(spark, settings, MODEL_EVALUATION)
        .filter((F.col(C.DT) == run_date) & (F.col(C.MODEL) == C.MODEL_CATEGORIES))
        .collect()
    }
    lines = [
        "",
        f"user portraits: {portraits.count()} users",
        f"  RFM segments: {_counts(portraits, C.RFM_SEGMENT)}",
        f"  lifecycle: {_counts(portraits, C.LIFECYCLE_STAGE)}",
        f"items: {items.count()}, category source: "
        + _counts(items.fillna({C.CATEGORY_SOURCE: "none"}), C.CATEGORY_SOURCE),
    ]
    if accuracy:
        lines.append(
            "  category completion on held-out items: top-1 "
            f"{accuracy.get(('lightgbm', 1), float('nan')):.3f} "
            f"(most frequent {accuracy.get(('most_frequent', 1), float('nan')):.3f}), top-3 "
            f"{accuracy.get(('lightgbm', 3), float('nan')):.3f}"
        )
    else:
        lines.append("  category completion: no model this day (see the items stage log)")
    return lines


def candidate_lines(spark: SparkSession, settings: Settings, run_date: dt.date) -> list[str]:
    """Lines on the day's candidates (users, list size, sources) and yesterday's recall."""
    day = F.col(C.DT) == run_date
    candidates = read_table(spark, settings, CANDIDATES).filter(day)
    stats = candidates.agg(
        F.countDistinct(C.USER_ID).alias("users"),
        F.count(F.lit(1)).alias("rows"),
        *[F.count(C.source_rank(s)).alias(s) for s in C.CANDIDATE_SOURCES],
    ).first()
    assert stats is not None
    users = stats["users"] or 0
    lines = [
        "",
        f"candidates: {users} users, {stats['rows'] / max(users, 1):.1f} items a user; "
        "found by: " + ", ".join(f"{s}={stats[s]}" for s in C.CANDIDATE_SOURCES),
    ]
    recall = {
        (r[C.VARIANT], r[C.K]): r[C.VALUE]
        for r in read_table(spark, settings, MODEL_EVALUATION)
        .filter(day & (F.col(C.MODEL) == C.MODEL_CANDIDATES) & (F.col(C.METRIC) == RECALL))
        .collect()
    }
    if not recall:
        lines.append("  recall: not measured (no candidates for the day before)")
        return lines
    lines.append("  recall of yesterday's candidates on this day's events (@50/@100/@200):")
    for variant in (*C.CANDIDATE_SOURCES, C.SOURCE_UNION):
        at = " / ".join(f"{recall.get((variant, k), float('nan')):.3f}" for k in (50, 100, 200))
        lines.append(f"    {variant:<16} {at}")
    return lines


def ranker_lines(spark: SparkSession, settings: Settings, run_date: dt.date) -> list[str]:
    """Lines on the night's ranker: holdout NDCG and recall of every variant, the gate."""
    figures = {
        (r[C.VARIANT], r[C.METRIC], r[C.K]): r[C.VALUE]
        for r in read_table(spark, settings, MODEL_EVALUATION)
        .filter((F.col(C.DT) == run_date) & (F.col(C.MODEL) == C.MODEL_RANKER))
        .collect()
    }
    champion = load_champion(settings, run_date)
    held_by = champion.version if champion else "none yet (lists in the union order)"
    lines = ["", f"ranker: champion {held_by}"]
    if not figures:
        lines.append("  not trained this night (it needs three label days of samples)")
        return lines
    stage_figures = (
        read_table(spark, settings, STAGE_RUNS)
        .filter((F.col(C.DT) == run_date) & (F.col(C.STAGE) == C.TRAIN_RANKER))
        .select(C.FIGURES)
        .first()
    )
    seconds_of = dict(stage_figures[0] or {}) if stage_figures else {}
    promoted = figures.get((C.RANKER, PROMOTED, NO_CUT_OFF)) == 1.0
    lines.append(f"  tonight's ranker {'promoted' if promoted else 'NOT promoted (kept)'}")
    k, gate_k = max(settings.ranker.eval_k), settings.ranker.gate_k
    lines.append(f"  holdout (this day's events)   NDCG@{gate_k}  recall@{k}  train s  rows")
    variants = sorted({v for v, m, _ in figures if m == NDCG})
    for variant in sorted(variants, key=lambda v: -figures.get((v, NDCG, gate_k), 0.0)):
        seconds = seconds_of.get(f"{variant}.{TRAIN_SECONDS}")
        rows = figures.get((variant, TRAIN_ROWS, NO_CUT_OFF))
        lines.append(
            f"    {variant:<26} {figures.get((variant, NDCG, gate_k), float('nan')):7.4f}"
            f"  {figures.get((variant, RECALL, k), float('nan')):9.4f}"
            + (f"  {seconds:7.1f}  {rows:,.0f}" if seconds is not None and rows else "")
        )
    return lines


def summary(settings: Settings, run_date: dt.date, sample_users: int = 3) -> str:
    """Text report of the run for ``run_date``."""
    spark = get_spark(settings)
    register_tables(spark, settings)
    lines = [f"== recsys nightly run {run_date} ==", "", "tables (rows for this dt / all rows):"]
    for table in ALL_TABLES:
        frame = read_table(spark, settings, table)
        counts = frame.agg(
            F.count(F.lit(1)).alias("all"),
            F.sum(F.when(F.col(C.DT) == F.lit(run_date), 1).otherwise(0)).alias("day"),
        ).first()
        assert counts is not None
        lines.append(
            f"  {table.name:<27} {counts['day'] or 0:>9} / {counts['all']:>9}   "
            f"{table_path(settings, table)}"
        )
    recs = read_table(spark, settings, USER_RECOMMENDATIONS).filter(F.col(C.DT) == run_date)
    users = [
        r[0]
        for r in recs.select(C.USER_ID).distinct().orderBy(C.USER_ID).limit(sample_users).collect()
    ]
    lines += ["", f"recommendations of {len(users)} users (top 5 of each):"]
    for user in users:
        top = recs.filter((F.col(C.USER_ID) == user) & (F.col(C.RANK) <= 5)).orderBy(C.RANK)
        items = ", ".join(f"{r[C.ITEM_ID]} ({r[C.SCORE]:.3f})" for r in top.collect())
        source = top.select(C.SOURCE).first()
        lines.append(f"  {user[:12]}… [{source[0] if source else '?'}] {items}")
    versions = recs.select(C.MODEL_VERSION).distinct().collect()
    lines.append("  ranked by: " + ", ".join(sorted(r[0] for r in versions)))
    by_source = recs.groupBy(C.SOURCE).count().orderBy(C.SOURCE).collect()
    lines.append("  rows by source: " + ", ".join(f"{r[0]}={r[1]}" for r in by_source))
    lines += portraits_and_items(spark, settings, run_date)
    lines += candidate_lines(spark, settings, run_date)
    lines += ranker_lines(spark, settings, run_date)
    try:
        run = tracking.latest_run(settings, C.TRAIN_ALS, run_date)
        lines += [
            "",
            f"MLflow run {run.info.run_id} ({settings.tracking_uri}, experiment "
            f"{settings.mlflow.experiment!r}):",
            f"  model version {run.data.tags.get(tracking.MODEL_VERSION_TAG)}, "
            + ", ".join(f"{k}={v:g}" for k, v in sorted(run.data.metrics.items())),
        ]
    except LookupError as exc:
        lines += ["", f"MLflow: {exc}"]
    timings = (
        read_table(spark, settings, STAGE_RUNS)
        .filter(F.col(C.DT) == run_date)
        .orderBy(C.FINISHED_AT)
        .collect()
    )
    lines += ["", "stage wall times (last run of each stage for this dt):"]
    lines += [f"  {r[C.STAGE]:<13} {r[C.SECONDS]:7.1f}s" for r in timings]
    return "\n".join(lines)
