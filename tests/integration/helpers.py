"""Assertions shared by the integration tests: the pipeline's promises, checked on tables."""

from __future__ import annotations

import datetime as dt
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.devtools.generator import GenerationSummary
from recsys_lib.devtools.snapshot import comparable
from recsys_lib.runtime.faults import FAULT_ENV, SKIP_ENV
from recsys_lib.warehouse.storage import read_table, table_version
from recsys_lib.warehouse.tables import (
    ALL_TABLES,
    BOUGHT_TOGETHER,
    CANDIDATES,
    CLEAN_EVENTS,
    CLEAN_EVENTS_REJECTED,
    CLEAN_ITEMS,
    ITEM_DAILY,
    ITEM_FEATURES,
    MODEL_EVALUATION,
    POPULAR_ITEMS,
    QUALITY_CHECKS,
    RAW_EVENTS,
    RAW_ITEMS,
    SIMILAR_ITEMS,
    STAGE_RUNS,
    TRAINING_SAMPLES,
    USER_DAILY,
    USER_ITEM_DAILY,
    USER_PORTRAIT,
    USER_RECOMMENDATIONS,
)

# Every table a stage derives (raw tables are compared apart, without their ingest time).
OUTPUT_TABLES = (
    *(t for t in ALL_TABLES if t.schema_name in {"clean", "features", "recs"}),
    MODEL_EVALUATION,
)
# Fewer candidates and boosting rounds than production: the rules are the same, the night
# is shorter (the integration tests pass them to
# in-process settings and, as variables, to the Airflow tasks).
SMALL_MODELS = {
    "RECSYS__CANDIDATES__PER_SOURCE__ALS": "60",
    "RECSYS__CANDIDATES__PER_SOURCE__SIMILAR": "40",
    "RECSYS__RANKER__NUM_BOOST_ROUND": "60",
    "RECSYS__RANKER__EARLY_STOPPING_ROUNDS": "10",
    "RECSYS__IMPORTANCE__PILOT_ROUNDS": "15",
    "RECSYS__IMPORTANCE__PREDICTOR_ROUNDS": "30",
}

# Tables holding user ids, which must all be pseudonyms.
USER_TABLES = tuple(t for t in OUTPUT_TABLES if C.USER_ID in t.column_names)


def snapshot(
    spark: SparkSession, settings: Settings, *, file_names: bool = False
) -> dict[str, list[tuple]]:
    """Sorted rows of every clean/features/recs table, and the raw tables without their
    ingest time; with ``file_names``, input files by their names only (the same files read
    from another place)."""
    tables: dict[str, DataFrame] = {t.name: read_table(spark, settings, t) for t in OUTPUT_TABLES}
    for raw in (RAW_EVENTS, RAW_ITEMS):
        tables[raw.name] = read_table(spark, settings, raw).drop(C.INGESTED_AT)
    if file_names:
        name = F.regexp_extract(F.col(C.SOURCE_FILE), r"([^/]+)$", 1)
        tables = {
            n: df.withColumn(C.SOURCE_FILE, name) if C.SOURCE_FILE in df.columns else df
            for n, df in tables.items()
        }
    return {
        name: sorted((comparable(tuple(r)) for r in df.collect()), key=repr)  # type: ignore[misc]
        for name, df in tables.items()
    }


def assert_features_filled(spark: SparkSession, settings: Settings, day: dt.date) -> None:
    """Every feature table has the day; portraits cover exactly the users of the 90 days;
    item features cover exactly clean.items; every check of the day passed."""

    def rows(table) -> DataFrame:
        return read_table(spark, settings, table).filter(F.col(C.DT) == day)

    for table in (CLEAN_ITEMS, USER_DAILY, USER_ITEM_DAILY, ITEM_DAILY):
        assert rows(table).count() > 0, table.name
    window_users = (
        read_table(spark, settings, USER_DAILY)
        .filter(F.col(C.DT).between(day - dt.timedelta(days=89), day))
        .select(C.USER_ID)
        .distinct()
    )
    portraits = rows(USER_PORTRAIT)
    assert portraits.count() == window_users.count() > 0
    assert portraits.join(window_users, C.USER_ID, "left_anti").count() == 0
    assert rows(ITEM_FEATURES).count() == rows(CLEAN_ITEMS).count()
    failed = rows(QUALITY_CHECKS).filter(~F.col(C.PASSED)).count()
    assert failed == 0
    checked = {r[0] for r in rows(QUALITY_CHECKS).select(C.TABLE_NAME).distinct().collect()}
    assert {t.name for t in (CLEAN_ITEMS, USER_PORTRAIT, ITEM_FEATURES, USER_DAILY)} <= checked


def assert_candidates_filled(
    spark: SparkSession,
    settings: Settings,
    day: dt.date,
    *,
    recall_measured: bool,
    may_find_nothing: tuple[str, ...] = (),
) -> dict[tuple[str, int], float]:
    """Candidates cover exactly the users active in the window, each source table has the
    day, and (when measured) the union's recall is at least every source's. Returns the
    recall figures by (variant, k)."""

    def rows(table) -> DataFrame:
        return read_table(spark, settings, table).filter(F.col(C.DT) == day)

    active = (
        read_table(spark, settings, USER_DAILY)
        .filter(
            F.col(C.DT).between(day - dt.timedelta(days=settings.candidates.active_days - 1), day)
        )
        .select(C.USER_ID)
        .distinct()
    )
    candidates = rows(CANDIDATES)
    users = candidates.select(C.USER_ID).distinct()
    assert users.count() == active.count() > 0
    assert_thin_path(spark, settings, day, candidates)
    found = candidates.agg(*[F.count(C.source_rank(s)).alias(s) for s in C.CANDIDATE_SOURCES])
    counts = found.first().asDict()
    assert all(counts[s] > 0 for s in C.CANDIDATE_SOURCES if s not in may_find_nothing), counts
    assert rows(SIMILAR_ITEMS).count() > 0 and rows(POPULAR_ITEMS).count() > 0
    if C.SOURCE_BOUGHT_TOGETHER not in may_find_nothing:
        assert rows(BOUGHT_TOGETHER).count() > 0
    recall = {
        (r[C.VARIANT], r[C.K]): r[C.VALUE]
        for r in rows(MODEL_EVALUATION)
        .filter((F.col(C.MODEL) == "candidates") & (F.col(C.METRIC) == "recall"))
        .collect()
    }
    if not recall_measured:
        assert recall == {}
        return recall
    for source in C.CANDIDATE_SOURCES:
        assert 0.0 <= recall[(source, 0)] <= recall[(C.SOURCE_UNION, 0)] <= 1.0
        assert recall[(source, 50)] <= recall[(source, 100)] <= recall[(source, 200)]
    assert recall[(C.SOURCE_UNION, 100)] > 0
    return recall


def assert_thin_path(
    spark: SparkSession, settings: Settings, day: dt.date, candidates: DataFrame
) -> None:
    """Users of ``candidates.thin_groups`` (their history counted from clean.events) have no
    ALS candidates and at most ``candidates.thin_max_per_user``."""
    from recsys_lib.sources.history import user_history

    cand = settings.candidates
    if not cand.thin_groups:
        return
    events = read_table(spark, settings, CLEAN_EVENTS).filter(F.col(C.DT) <= day)
    thin = user_history(events, day, cand.active_days).filter(
        F.col(C.HISTORY_GROUP).isin(*cand.thin_groups)
    )
    theirs = candidates.join(thin, C.USER_ID, "left_semi")
    stats = theirs.agg(
        F.countDistinct(C.USER_ID).alias("users"),
        F.count(C.source_rank(C.SOURCE_ALS)).alias("als"),
        F.max(C.UNION_RANK).alias("deepest"),
    ).first()
    assert stats["users"] > 0, "no user took the thin path"
    assert stats["als"] == 0
    assert stats["deepest"] <= cand.thin_max_per_user


def recorded_checks(
    spark: SparkSession, settings: Settings, day: dt.date, table: str
) -> dict[str, tuple[float, float | None, bool]]:
    """The day's checks of ``table`` in ``ops.quality_checks``: (value, threshold, passed)."""
    return {
        r[C.CHECK_NAME]: (r[C.VALUE], r[C.THRESHOLD], r[C.PASSED])
        for r in read_table(spark, settings, QUALITY_CHECKS)
        .filter((F.col(C.DT) == day) & (F.col(C.TABLE_NAME) == table))
        .collect()
    }


def assert_reconciled(spark: SparkSession, settings: Settings, day: dt.date) -> dict[str, float]:
    """Every row ingest read was written and every raw row is accounted for by clean, as
    both stages recorded in ``ops.quality_checks``."""
    checks = {
        k: v for k, (v, _, _) in recorded_checks(spark, settings, day, CLEAN_EVENTS.name).items()
    }
    ingested = recorded_checks(spark, settings, day, RAW_EVENTS.name)
    raw = read_table(spark, settings, RAW_EVENTS).filter(F.col(C.DT) == day).count()
    assert ingested["rows_read"][0] == ingested["rows_written"][0] == raw
    assert ingested["unreconciled_rows"] == (0, 0, True)
    assert all(passed for _, _, passed in ingested.values())
    clean = read_table(spark, settings, CLEAN_EVENTS).filter(F.col(C.DT) == day).count()
    rejected = read_table(spark, settings, CLEAN_EVENTS_REJECTED).filter(F.col(C.DT) == day).count()
    assert raw > 0
    assert checks["input_rows"] == raw
    assert checks["clean_rows"] == clean and checks["rejected_rows"] == rejected
    assert raw == clean + checks["duplicate_rows"] + checks["dropped_rows"] + rejected
    assert checks["unreconciled_rows"] == 0
    return checks


def assert_recommendations_sound(
    spark: SparkSession, settings: Settings, day: dt.date, top_k: int
) -> DataFrame:
    recs = read_table(spark, settings, USER_RECOMMENDATIONS).filter(F.col(C.DT) == day)
    assert recs.count() > 0
    assert recs.groupBy(C.DT, C.USER_ID, C.RANK).count().filter("count > 1").count() == 0
    assert recs.groupBy(C.USER_ID, C.ITEM_ID).count().filter("count > 1").count() == 0
    assert recs.filter((F.col(C.RANK) < 1) | (F.col(C.RANK) > top_k)).count() == 0
    assert {r[0] for r in recs.select(C.SOURCE).distinct().collect()} <= set(C.CANDIDATE_SOURCES)
    candidates = read_table(spark, settings, CANDIDATES).filter(F.col(C.DT) == day)
    assert recs.join(candidates, [C.USER_ID, C.ITEM_ID], "left_anti").count() == 0
    users = candidates.select(C.USER_ID).distinct().count()
    assert recs.select(C.USER_ID).distinct().count() >= settings.recommend.min_user_coverage * users
    categories = read_table(spark, settings, ITEM_FEATURES).filter(F.col(C.DT) == day)
    per_category = recs.join(categories.select(C.ITEM_ID, C.CATEGORY_ID), C.ITEM_ID).groupBy(
        C.USER_ID, C.CATEGORY_ID
    )
    assert per_category.count().agg(F.max("count")).first()[0] <= settings.recommend.category_cap
    purchases = (
        read_table(spark, settings, CLEAN_EVENTS)
        .filter((F.col(C.DT) <= day) & (F.col(C.EVENT_TYPE) == C.PURCHASE))
        .select(C.USER_ID, C.ITEM_ID)
    )
    assert recs.join(purchases, [C.USER_ID, C.ITEM_ID]).count() == 0
    return recs


def assert_no_raw_user_ids(spark: SparkSession, settings: Settings) -> None:
    raw_ids = (
        read_table(spark, settings, RAW_EVENTS)
        .select(F.trim(C.RAW_USER).alias("raw_id"))
        .filter("raw_id <> ''")
        .distinct()
    )
    assert raw_ids.count() > 0
    for table in USER_TABLES:
        frame = read_table(spark, settings, table)
        ids = frame.select(C.USER_ID).filter(F.col(C.USER_ID).isNotNull())
        assert ids.filter(~F.col(C.USER_ID).rlike("^[0-9a-f]{64}$")).count() == 0, table.name
        assert ids.join(raw_ids, ids[C.USER_ID] == raw_ids["raw_id"]).count() == 0, table.name


def assert_samples_labelled(
    spark: SparkSession, settings: Settings, day: dt.date, positives_expected: bool = True
) -> DataFrame:
    """The day's training samples are exactly yesterday's candidates of the users with an
    event on the day, labelled by the day's events, with importance in (0, 1]."""
    samples = read_table(spark, settings, TRAINING_SAMPLES).filter(F.col(C.DT) == day)
    events = read_table(spark, settings, CLEAN_EVENTS).filter(F.col(C.DT) == day)
    candidates = (
        read_table(spark, settings, CANDIDATES)
        .filter(F.col(C.DT) == day - dt.timedelta(days=1))
        .join(events.select(C.USER_ID).distinct(), C.USER_ID, "left_semi")
    )
    keys = [C.USER_ID, C.ITEM_ID]
    assert samples.count() == candidates.count() > 0
    assert samples.join(candidates, keys, "left_anti").count() == 0
    touched = events.select(*keys).distinct()
    positives = samples.filter(F.col(C.LABEL) > 0)
    assert positives.count() == samples.join(touched, keys).count()
    assert positives.count() > 0 or not positives_expected
    stats = samples.agg(F.min(C.IMPORTANCE), F.max(C.IMPORTANCE)).first()
    assert 0 < stats[0] <= stats[1] <= 1
    return samples


def assert_ranked_by_the_champion(
    spark: SparkSession, settings: Settings, day: dt.date
) -> dict[tuple[str, str, int], float]:
    """The night trained and evaluated the ranker and its variants, a champion exists, and
    the day's recommendations were ranked by it. Returns the night's ranker figures."""
    from recsys_lib.models.registry import load_champion
    from recsys_lib.stages.train_ranker import MODEL_NAME

    champion = load_champion(settings)
    assert champion is not None
    recs = read_table(spark, settings, USER_RECOMMENDATIONS).filter(F.col(C.DT) == day)
    assert [r[0] for r in recs.select(C.MODEL_VERSION).distinct().collect()] == [champion.version]
    figures = {
        (r[C.VARIANT], r[C.METRIC], r[C.K]): r[C.VALUE]
        for r in read_table(spark, settings, MODEL_EVALUATION)
        .filter((F.col(C.DT) == day) & (F.col(C.MODEL) == MODEL_NAME))
        .collect()
    }
    variants = {v for v, m, _ in figures if m == "ndcg"}
    ablation = C.RANKER_NO_IMPORTANCE if settings.ranker.importance else C.RANKER_IMPORTANCE
    expected = {
        C.RANKER,
        ablation,
        C.RANKER_SAMPLED,
        C.VARIANT_POPULARITY,
        C.SOURCE_UNION,
        *C.CANDIDATE_SOURCES,
    }
    assert expected <= variants, variants
    for k in settings.ranker.eval_k:
        assert 0 <= figures[(C.RANKER, "ndcg", k)] <= 1
    full = figures[(C.RANKER, "train_rows", 0)]
    assert figures[(C.RANKER_SAMPLED, "train_rows", 0)] < full
    # The stage's checks: what it trained on, finite scores, the gate's figures and decision.
    checks = recorded_checks(spark, settings, day, settings.ranker.registered_model)
    assert checks["trained"] == (1.0, None, True)
    assert checks["rows.train"][0] == full and checks["groups.holdout"][0] > 0
    assert checks["label_days"][0] >= 3
    assert all(v == (0.0, 0.0, True) for n, v in checks.items() if n.startswith("non_finite"))
    gate = checks[f"gate.ndcg@{settings.ranker.gate_k}"]
    assert gate[0] == figures[(C.RANKER, "ndcg", settings.ranker.gate_k)]
    assert checks["gate.promoted"][0] == figures[(C.RANKER, "promoted", 0)] == float(gate[2])
    return figures


def assert_ranker_declined(spark: SparkSession, settings: Settings, day: dt.date) -> None:
    """The ranker stage ran for the day without training (too few label days with a
    positive sample), no champion exists, and the lists keep the union order."""
    from recsys_lib.models.registry import load_champion
    from recsys_lib.stages.train_ranker import STAGE

    run = (
        read_table(spark, settings, STAGE_RUNS)
        .filter((F.col(C.DT) == day) & (F.col(C.STAGE) == STAGE))
        .first()
    )
    assert run is not None and run[C.FIGURES]["trained"] == 0.0
    checks = recorded_checks(spark, settings, day, settings.ranker.registered_model)
    assert checks["trained"] == (0.0, None, True) and checks["label_days"][0] < 3
    assert load_champion(settings) is None
    recs = read_table(spark, settings, USER_RECOMMENDATIONS).filter(F.col(C.DT) == day)
    assert [r[0] for r in recs.select(C.MODEL_VERSION).distinct().collect()] == ["union"]


def run_python_blocks(markdown: Path) -> dict[str, Any]:
    """Run the ```python blocks of a document in order, in one namespace, and return it: a
    documented recipe is tested as the reader will copy it."""
    namespace: dict[str, Any] = {}
    blocks = re.findall(r"^```python\n(.*?)^```", markdown.read_text(), flags=re.M | re.S)
    assert blocks, f"no python blocks in {markdown}"
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{markdown.name} block {number}", "exec"), namespace)  # noqa: S102
    return namespace


def documented_queries(*markdown: Path) -> list[str]:
    """The SQL of every ``recsys query "..."`` example in the documents, on one line each
    (double-quoted: the docs quote a refused statement in single quotes)."""
    found = []
    for path in markdown:
        for sql in re.findall(r'recsys query "(.*?)"', path.read_text(), flags=re.S):
            found.append(" ".join(sql.split()))
    assert found, f"no recsys query examples in {markdown}"
    return found


def _plain(value: Any) -> Any:
    """A value as both engines can be compared on: floats to 9 digits, times in naive UTC,
    maps and rows as sorted tuples."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else round(value, 9)  # NaN == NaN for the compare
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if hasattr(value, "asDict"):
        return _plain(value.asDict(recursive=True))
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def assert_same_rows_as_spark(spark: SparkSession, settings: Settings, sql: str) -> int:
    """``recsys query``'s engine (DuckDB) and Spark SQL give the same rows for ``sql``, in
    any order; returns how many."""
    from recsys_lib.warehouse.query import run_query
    from recsys_lib.warehouse.storage import register_tables

    register_tables(spark, settings, create_missing=False)
    ours = sorted((_plain(tuple(r)) for r in run_query(settings, sql).rows), key=repr)
    theirs = sorted((_plain(tuple(r)) for r in spark.sql(sql).collect()), key=repr)
    assert ours == theirs, f"{sql}: DuckDB {ours[:3]} ... vs Spark {theirs[:3]} ..."
    return len(ours)


def shop_inputs(shop: GenerationSummary) -> dict[str, str]:
    """Settings overrides (``INPUT__…``) that read a generated shop where it was written."""
    return {
        "INPUT__EVENTS_PATH": str(shop.out_dir / "events"),
        "INPUT__ITEM_PROPERTIES_PATH": str(shop.out_dir / "item_properties.csv"),
        "INPUT__CATEGORY_TREE_PATH": str(shop.out_dir / "category_tree.csv"),
    }


def readable(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Rows of every table that exists, each read whole: a table a kill broke fails here."""
    return {
        t.name: read_table(spark, settings, t).count()
        for t in ALL_TABLES
        if table_version(spark, settings, t) >= 0
    }


def killed_at(point: str, environ: dict[str, str], *args: str, skip: int = 0) -> str:
    """Run ``recsys *args`` with ``environ`` until it kills itself (SIGKILL) at the
    fault-injection ``point`` (after ``skip`` passes); returns its output. Fails if the run
    ended any other way."""
    command = [str(Path(sys.executable).with_name("recsys")), *args]
    faulty = {**environ, FAULT_ENV: point, SKIP_ENV: str(skip)}
    done = subprocess.run(command, env=faulty, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == -signal.SIGKILL, f"{point}: ended {done.returncode}\n{output[-3000:]}"
    assert f"fault injection: killed at {point}" in output
    return output


def wait_for_runs(
    api: Callable[[str], Any],
    logical_dates: list[dt.date],
    timeout: float,
    failure_detail: Callable[[], str],
) -> dict[dt.date, dict]:
    """Follow ``recsys_nightly``'s runs through Airflow's REST API (``api(path)`` GETs
    ``/api/v2/<path>``) until those of ``logical_dates`` succeed; fail with
    ``failure_detail()`` (log tails) if one fails."""
    deadline = time.monotonic() + timeout
    while True:
        runs = api("dags/recsys_nightly/dagRuns?limit=100")["dag_runs"]
        mine = {
            dt.date.fromisoformat(r["logical_date"][:10]): r
            for r in runs
            if r["logical_date"] and dt.date.fromisoformat(r["logical_date"][:10]) in logical_dates
        }
        states = {d: r["state"] for d, r in mine.items()}
        if "failed" in states.values():
            raise AssertionError(f"runs failed: {states}\n{failure_detail()}")
        if len(mine) == len(logical_dates) and set(states.values()) == {"success"}:
            return mine
        assert time.monotonic() < deadline, f"runs not done in {timeout:.0f}s: {states}"
        time.sleep(10)


def assert_days_in_order(
    api: Callable[[str], Any], runs: dict[dt.date, dict], tasks: tuple[str, ...]
) -> list[dict[str, dict]]:
    """Every task of each run succeeded, and started after the previous day's ended
    (``depends_on_past``); the task instances of each day, by task id."""
    by_day = [
        {
            t["task_id"]: t
            for t in api(f"dags/recsys_nightly/dagRuns/{runs[d]['dag_run_id']}/taskInstances")[
                "task_instances"
            ]
        }
        for d in sorted(runs)
    ]
    for earlier, later in zip(by_day, by_day[1:], strict=False):
        assert {k: t["state"] for k, t in later.items()} == dict.fromkeys(tasks, "success")
        for task_id, task in later.items():
            assert earlier[task_id]["end_date"] <= task["start_date"], task_id
    return by_day
