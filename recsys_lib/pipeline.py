"""The pipeline's stages by name, and running one of them for a day or a range of days.

The DAG, the ``jobs/`` entry points and ``recsys run`` / ``recsys backfill`` all go through
:func:`run_stage` (one day) or :func:`run_stage_range` (several days in one pass, for the
stages whose days are independent of each other). A stage's module is imported when the
stage first runs, so a ``spark-submit`` of ``ingest`` does not pay for MLflow or LightGBM.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.runtime.claims import claimed, sharing, stage_keys
from recsys_lib.runtime.logs import one_line
from recsys_lib.transforms.privacy import require_key
from recsys_lib.warehouse.storage import ensure_tables, read_table, write_partition
from recsys_lib.warehouse.tables import STAGE_RUNS

log = logging.getLogger(__name__)

Figures = dict[str, float]
StageFunction = Callable[[SparkSession, Settings, dt.date], Figures]
RangeFunction = Callable[[SparkSession, Settings, DayRange], dict[dt.date, Figures]]


@dataclass(frozen=True)
class Stage:
    """A DAG task: where its function lives, and whether it takes a whole range of days."""

    name: str
    function: str  # "module:function"
    ranged: bool = False  # days independent of each other: a range runs in one pass
    tracked: bool = False  # logs to MLflow: the store is opened while Spark works
    # Its run needs the pseudonym key: it hashes user ids, or (ingest) starts a night whose
    # next stage does, so a night without the key fails at its first task.
    needs_key: bool = False

    def load(self) -> Callable[..., Any]:
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("ingest", "recsys_lib.stages.ingest:ingest", ranged=True, needs_key=True),
        Stage("clean", "recsys_lib.stages.clean:clean", ranged=True, needs_key=True),
        Stage("aggregate", "recsys_lib.stages.aggregate:aggregate", ranged=True),
        Stage("items", "recsys_lib.stages.items:items_day", tracked=True),
        Stage("features", "recsys_lib.stages.features:features_day"),
        Stage("train_als", "recsys_lib.stages.train_als:train_als", tracked=True),
        Stage("candidates", "recsys_lib.stages.candidates:candidates_day", tracked=True),
        Stage("samples", "recsys_lib.stages.samples:samples_day", tracked=True),
        Stage("train_ranker", "recsys_lib.stages.train_ranker:train_ranker", tracked=True),
        Stage("recommend", "recsys_lib.stages.recommend:recommend_day", tracked=True),
    )
}
NIGHTLY = C.NIGHTLY_STAGES
HISTORY_STAGES = C.HISTORY_STAGES
RANGED_STAGES = tuple(name for name, s in STAGES.items() if s.ranged)
assert tuple(STAGES) == NIGHTLY, "constants.NIGHTLY_STAGES must list every stage, in order"


class StageError(RuntimeError):
    """A stage failed for a day or a range; ``str()`` is ``<stage> <when>: <problem>``, the
    line ``recsys`` prints (the cause is chained for ``--verbose``)."""

    def __init__(self, stage: str, when: dt.date | DayRange, cause: BaseException) -> None:
        self.stage, self.when, self.cause = stage, when, cause
        super().__init__(f"{stage} {when}: {one_line(cause)}")


def stage_of(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None


def check_ready(settings: Settings, stages: Iterable[str]) -> None:
    """Fail at once, before a Spark session starts, where a run of ``stages`` could not
    finish: the pseudonym key is not set and one of them needs it."""
    if any(stage_of(s).needs_key for s in stages):
        require_key(settings)


class StageRunLog:
    """``ops.stage_runs`` rows of a session's stage runs, kept until :meth:`flush` writes them:
    one commit for the runs of a day (or of a range) instead of one per stage.

    A one-row Delta commit costs as much as a small stage's whole work on a small shop; a
    session that runs many stages (``recsys run all``, ``recsys backfill``) flushes after
    each day and when a stage fails. If the process is killed first, the rows of that day's
    finished stages are missing, and ``recsys backfill --resume`` runs those stages again.
    """

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark, self.settings = spark, settings
        self.pending: dict[str, dict[dt.date, dict[str, float]]] = {}

    def add(self, stage: str, by_day: dict[dt.date, dict[str, float]]) -> None:
        self.pending.setdefault(stage, {}).update(by_day)

    def flush(self) -> None:
        """Write the pending rows: one commit per set of stages that ran on the same days."""
        groups: dict[DayRange, dict[str, dict[dt.date, dict[str, float]]]] = {}
        for stage, by_day in self.pending.items():
            for span in contiguous(by_day):
                groups.setdefault(span, {})[stage] = {d: by_day[d] for d in span.days}
        self.pending = {}
        for span, stages in groups.items():
            record_stage_runs(self.spark, self.settings, stages, span)


class MissingHistoryError(RuntimeError):
    """A night's windows hold a day its history stages never processed."""


def history_window_days(settings: Settings) -> int:
    """The longest window a night's stages read from the history tables, in days."""
    return max(
        settings.als.window_days,
        settings.bought_together.window_days,
        settings.popular.window_days,
        settings.completion.window_days,
        settings.candidates.active_days,
    )


def missing_history(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    runs: StageRunLog | None = None,
) -> dict[str, list[dt.date]]:
    """Per history stage, the days of the night ``run_date``'s longest window (from the first
    day any history stage processed, to ``run_date``) that it never processed, according to
    ``ops.stage_runs`` and the rows ``runs`` has not written yet. Empty without any history
    on record (tables loaded by other means)."""
    recorded = (
        read_table(spark, settings, STAGE_RUNS)
        .filter(F.col(C.STAGE).isin(*HISTORY_STAGES) & (F.col(C.DT) <= F.lit(run_date)))
        .select(C.STAGE, C.DT)
        .collect()
    )
    done: dict[str, set[dt.date]] = {stage: set() for stage in HISTORY_STAGES}
    for r in recorded:
        done[r[C.STAGE]].add(r[C.DT])
    for stage, by_day in (runs.pending if runs else {}).items():
        if stage in done:
            done[stage].update(d for d in by_day if d <= run_date)
    if not any(done.values()):
        return {}
    first = min(min(days) for days in done.values() if days)
    start = max(first, run_date - dt.timedelta(days=history_window_days(settings) - 1))
    days = DayRange(start, run_date).days
    missing = {stage: [d for d in days if d not in got] for stage, got in done.items()}
    return {stage: found for stage, found in missing.items() if found}


def check_history(
    spark: SparkSession,
    settings: Settings,
    stage: str,
    run_date: dt.date,
    runs: StageRunLog | None = None,
) -> None:
    """Refuse (or, with ``history.tolerate_missing_days``, warn about) a windowed stage's
    night whose windows hold a day the history stages never processed."""
    missing = missing_history(spark, settings, run_date, runs)
    if not missing:
        return
    days = sorted({d for found in missing.values() for d in found})
    shown = ", ".join(map(str, days[:5])) + (f" and {len(days) - 5} more" if len(days) > 5 else "")
    stages = ", ".join(s for s in HISTORY_STAGES if s in missing)
    problem = (
        f"the history has no {stages} run for {shown} (the windows of {run_date} read them): "
        f"run `recsys backfill --start {days[0]} --end {days[-1]} --stages "
        f"{','.join(HISTORY_STAGES)}`, or set history.tolerate_missing_days: true"
    )
    if settings.history.tolerate_missing_days:
        log.warning("stage %s for %s runs over missing days: %s", stage, run_date, problem)
        return
    raise StageError(stage, run_date, MissingHistoryError(problem))


def warm_up(settings: Settings, stage: str) -> None:
    """For a stage that logs to MLflow, import MLflow and open its store in a background
    thread: the first MLflow call of a process took 2-5 s here (the import, then the SQLite
    schema check), time the stage's Spark work (or the JVM's start) now covers. Errors are
    left for the stage's own first call to raise."""
    if not stage_of(stage).tracked:
        return

    def open_store() -> None:
        try:
            from recsys_lib.runtime import tracking

            tracking.use_experiment(settings)
        except Exception:  # noqa: BLE001 - the stage's own call reports it
            log.debug("opening the MLflow store ahead of the stage failed", exc_info=True)

    threading.Thread(target=open_store, name="recsys-mlflow", daemon=True).start()


def contiguous(days: Iterable[dt.date]) -> list[DayRange]:
    """``days`` as the fewest ranges of consecutive days, in date order."""
    ranges: list[DayRange] = []
    for day in sorted(days):
        if ranges and day == ranges[-1].last + dt.timedelta(days=1):
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges


def run_stage(
    spark: SparkSession,
    settings: Settings,
    stage: str,
    run_date: dt.date,
    runs: StageRunLog | None = None,
) -> dict[str, float]:
    """Run one stage for one day; returns its figures plus ``seconds``. Its ``ops.stage_runs``
    row is written at once, or kept in ``runs`` for a later flush."""
    spec = stage_of(stage)
    if spec.ranged:
        return run_stage_range(spark, settings, stage, DayRange.of(run_date), runs)[run_date]
    warm_up(settings, stage)
    ensure_tables(spark, settings)
    what = f"stage {stage} for {run_date}"
    with claimed(settings, stage_keys(stage, [run_date]), what), sharing(settings, what):
        check_history(spark, settings, stage, run_date, runs)
        figures, seconds = _call(spark, settings, spec, run_date)
    figures["seconds"] = seconds
    _record(spark, settings, stage, {run_date: figures}, runs)
    log.info("stage %s for %s: done in %.1fs %s", stage, run_date, figures["seconds"], figures)
    return figures


def run_stage_range(
    spark: SparkSession,
    settings: Settings,
    stage: str,
    days: DayRange,
    runs: StageRunLog | None = None,
) -> dict[dt.date, dict[str, float]]:
    """Run a ranged stage for every day of ``days`` in one pass: one read, one write per
    table that replaces exactly those days. Each day gets the rows and figures a run of that
    day alone gives it; its ``seconds`` are its share of the range's wall time."""
    spec = stage_of(stage)
    if not spec.ranged:
        raise ValueError(
            f"stage {stage} reads a window ending on its own day; run it day by day "
            f"(ranged stages: {', '.join(RANGED_STAGES)})"
        )
    what = f"stage {stage} for {days}"
    with claimed(settings, stage_keys(stage, days.days), what), sharing(settings, what):
        by_day, seconds = _call(spark, settings, spec, days)
    for figures in by_day.values():
        figures["seconds"] = seconds / len(days)
    _record(spark, settings, stage, by_day, runs)
    log.info("stage %s for %s: done in %.1fs", stage, days, seconds)
    return by_day


def _call(
    spark: SparkSession, settings: Settings, spec: Stage, when: dt.date | DayRange
) -> tuple[Any, float]:
    """The stage's function for a day or a range, and its wall seconds."""
    ensure_tables(spark, settings)
    started = time.perf_counter()
    log.info("stage %s for %s: start", spec.name, when)
    try:
        result = spec.load()(spark, settings, when)
    except Exception as exc:
        raise StageError(spec.name, when, exc) from exc
    finally:
        # A stage's cached frames are its own: nothing cached survives it.
        spark.catalog.clearCache()
    return result, time.perf_counter() - started


def _record(
    spark: SparkSession,
    settings: Settings,
    stage: str,
    by_day: dict[dt.date, dict[str, float]],
    runs: StageRunLog | None,
) -> None:
    if runs is None:
        record_stage_runs(spark, settings, {stage: by_day}, DayRange(min(by_day), max(by_day)))
    else:
        runs.add(stage, by_day)


def record_stage_runs(
    spark: SparkSession,
    settings: Settings,
    stages: dict[str, dict[dt.date, dict[str, float]]],
    days: DayRange,
) -> None:
    """Replace the ``ops.stage_runs`` rows of these stages for ``days`` (every stage ran on
    every one of them), in one commit."""
    rows = [
        (day, stage, figures["seconds"], {k: float(v) for k, v in figures.items()})
        for stage, by_day in sorted(stages.items())
        for day, figures in sorted(by_day.items())
    ]
    frame = spark.createDataFrame(
        rows, f"{C.DT} date, {C.STAGE} string, {C.SECONDS} double, {C.FIGURES} map<string,double>"
    ).withColumn(C.FINISHED_AT, F.current_timestamp())
    write_partition(frame, settings, STAGE_RUNS, days, {C.STAGE: tuple(sorted(stages))})
