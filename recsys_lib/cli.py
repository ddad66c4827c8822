"""The ``recsys`` command: generate data, run stages and backfills, query tables, the demo."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recsys_lib.config import Settings, load_settings
from recsys_lib.constants import (
    DEFAULT_SEED,
    FIRST_NIGHT_STAGES,
    HISTORY_STAGES,
    NIGHTLY_STAGES,
    WINDOWED_STAGES,
)
from recsys_lib.dates import DayRange
from recsys_lib.runtime.logs import configure_logging, one_line

log = logging.getLogger(__name__)

DEMO_DATA = "data/shop"


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` to ``last``, both included."""
    return DayRange(first, last).days


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.devtools.generator import generate_shop

    out = Path(settings.resolve(args.out))
    summary = generate_shop(
        out,
        args.profile,
        scale=args.scale,
        seed=args.seed,
        days=args.days,
        start=args.start,
        category_tree=Path(args.category_tree) if args.category_tree else None,
        format=args.format,
    )
    print(json.dumps(summary.manifest(), indent=2, default=str))
    return 0


def run_days(
    settings: Settings, stages: Sequence[str], run_dates: Sequence[dt.date]
) -> dict[tuple[dt.date, str], float]:
    """Run ``stages`` for each day in one Spark session, day after day (every stage of a day
    before the next day); returns seconds per (day, stage)."""
    from recsys_lib.pipeline import StageRunLog, check_ready, run_stage
    from recsys_lib.runtime.spark import get_spark

    check_ready(settings, stages)
    spark = get_spark(settings)
    runs = StageRunLog(spark, settings)
    seconds = {}
    try:
        for run_date in run_dates:
            for stage in stages:
                figures = run_stage(spark, settings, stage, run_date, runs)
                seconds[(run_date, stage)] = figures["seconds"]
            runs.flush()
    finally:
        runs.flush()
    return seconds


class Progress:
    """One line on a terminal, rewritten in place: units done, elapsed, estimate left.

    Silent when stderr is not a terminal (logs and CI output stay clean)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.total, self.done, self.label = total, 0, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()

    def show(self, what: str) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else None
        estimate = f", ~{_clock(left)} left" if left is not None else ""
        line = f"[{self.label}] {self.done}/{self.total} {what} · {_clock(elapsed)}{estimate}"
        self.stream.write("\r\033[K" + line)
        self.stream.flush()

    def advance(self, units: int, what: str) -> None:
        self.done += units
        self.show(what)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def completed_runs(
    settings: Settings, stages: Sequence[str], span: DayRange
) -> set[tuple[dt.date, str]]:
    """(day, stage) pairs of ``span`` that ``ops.stage_runs`` records as done."""
    from pyspark.sql import functions as F

    from recsys_lib import constants as C
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.warehouse.storage import ensure_tables, read_partition
    from recsys_lib.warehouse.tables import STAGE_RUNS

    spark = get_spark(settings)
    ensure_tables(spark, settings)
    rows = (
        read_partition(spark, settings, STAGE_RUNS, span)
        .filter(F.col(C.STAGE).isin(*stages))
        .select(C.DT, C.STAGE)
        .collect()
    )
    return {(r[0], r[1]) for r in rows}


def backfill(
    settings: Settings,
    stages: Sequence[str],
    span: DayRange,
    *,
    chunk_days: int | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> dict[tuple[dt.date, str], float]:
    """Run ``stages`` (in the DAG's order) over ``span`` in one Spark session.

    The range goes in chunks of ``chunk_days`` (``backfill.chunk_days``), in date order. In
    each chunk the ranged stages (ingest, clean, aggregate) run once over the whole chunk:
    one read and one write per table that replaces exactly its days. The other stages read a
    window ending on their own day, so they then run day by day, in date order. The result
    equals running every day's stages one day after another. A chunk that fails leaves the
    earlier chunks complete and, thanks to one commit per table, no half-written day;
    ``resume`` skips the (day, stage) pairs that ``ops.stage_runs`` already records. Returns
    seconds per (day, stage) run here.
    """
    from recsys_lib.pipeline import (
        NIGHTLY,
        StageRunLog,
        check_ready,
        contiguous,
        run_stage,
        run_stage_range,
        stage_of,
    )
    from recsys_lib.runtime.spark import get_spark

    ordered = [s for s in NIGHTLY if s in set(stages)]
    check_ready(settings, ordered)
    done = completed_runs(settings, ordered, span) if resume else set()
    spark = get_spark(settings)
    size = chunk_days or settings.backfill.chunk_days
    progress = progress or Progress(0, "backfill", stream=None)
    progress.total = sum(1 for d in span.days for s in ordered if (d, s) not in done)
    seconds: dict[tuple[dt.date, str], float] = {}
    runs = StageRunLog(spark, settings)
    try:
        for chunk in span.chunks(size):
            for stage in (s for s in ordered if stage_of(s).ranged):
                todo = [d for d in chunk.days if (d, stage) not in done]
                for part in contiguous(todo):
                    progress.show(f"days, {stage} {part}")
                    for day, figures in run_stage_range(spark, settings, stage, part, runs).items():
                        seconds[(day, stage)] = figures["seconds"]
                    progress.advance(len(part), f"days, {stage} {part}")
            runs.flush()
            for day in chunk.days:
                for stage in (s for s in ordered if not stage_of(s).ranged):
                    if (day, stage) in done:
                        continue
                    progress.show(f"days, {stage} {day}")
                    figures = run_stage(spark, settings, stage, day, runs)
                    seconds[(day, stage)] = figures["seconds"]
                    progress.advance(1, f"days, {stage} {day}")
                runs.flush()
    finally:
        runs.flush()
        progress.close()
    return seconds


def history_and_nights(
    settings: Settings,
    first_day: dt.date,
    nights: Sequence[dt.date],
    *,
    progress: Progress | None = None,
) -> None:
    """A new warehouse up to its last night: the history stages from ``first_day`` to the
    last night in one range pass, then the nights' own stages in date order; the first night
    only up to its candidates (it has no yesterday's candidates to label). The same rows as
    whole nights one after another."""
    backfill(settings, HISTORY_STAGES, DayRange(first_day, nights[-1]), progress=progress)
    backfill(settings, FIRST_NIGHT_STAGES, DayRange.of(nights[0]), progress=progress)
    if len(nights) > 1:
        later = DayRange(nights[1], nights[-1])
        backfill(settings, WINDOWED_STAGES, later, progress=progress)


def _stages(value: str) -> list[str]:
    from recsys_lib.pipeline import NIGHTLY, STAGES

    if value in ("all", "nightly"):
        return list(NIGHTLY)
    names = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)} or all")
    return names


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    run_days(settings, _stages(args.stage), [args.date])
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    span = DayRange(args.start, args.end)
    stages = _stages(args.stages)
    started = time.perf_counter()
    timings = backfill(
        settings,
        stages,
        span,
        chunk_days=args.chunk_days,
        resume=args.resume,
        progress=Progress(0, "backfill"),
    )
    print(
        f"backfilled {len(timings)} stage runs ({len(span)} days) in "
        f"{time.perf_counter() - started:.0f}s"
    )
    return 0


QUERY_FORMATS = ("text", "csv", "json")


def query(settings: Settings, sql: str, limit: int, output: str = "text") -> str:
    """The rows of one read-only ``SELECT`` over the tables (DuckDB SQL, no JVM; see
    :mod:`recsys_lib.warehouse.query`) as a text table, CSV (with a header) or JSON (an array
    of objects; dates and times in ISO 8601). ``limit`` 0 returns every row."""
    from recsys_lib.warehouse.query import run_query

    if output not in QUERY_FORMATS:
        raise ValueError(f"unknown format {output!r}; known: {', '.join(QUERY_FORMATS)}")
    result = run_query(settings, sql, limit)
    return format_rows(result.columns, result.rows, output)


def format_rows(columns: Sequence[str], rows: Sequence[tuple[Any, ...]], output: str) -> str:
    """Rows as ``text`` (aligned columns), ``csv`` or ``json``."""
    import csv
    import io

    def plain(value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)  # as Spark prints it
        if isinstance(value, dt.date | dt.datetime):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if hasattr(value, "asDict"):
            return plain(value.asDict(recursive=True))
        return value

    if output == "json":
        records = [dict(zip(columns, (plain(v) for v in row), strict=True)) for row in rows]
        return json.dumps(records, default=str, ensure_ascii=False)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                json.dumps(v, default=str) if isinstance(v, list | dict) else v
                for v in (plain(v) for v in row)
            )
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return "(no rows)"
    import pandas as pd

    frame = pd.DataFrame([[plain(v) for v in row] for row in rows], columns=list(columns))
    return frame.to_string(index=False, max_colwidth=40)


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    print(query(settings, args.sql, args.limit, args.format))
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.warehouse.query import table_history

    result = table_history(settings, args.table, args.limit)
    print(format_rows(result.columns, result.rows, args.format))
    return 0


def cmd_check_input(args: argparse.Namespace, settings: Settings) -> int:
    """Print what ``ingest`` would read for the days and what ``clean`` would make of it;
    exit 1 if ``clean`` would fail them. Nothing is written."""
    from recsys_lib.pipeline import StageError
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.stages.ingest import check_input

    span = DayRange(args.date, args.end or args.date)
    spark = get_spark(settings)
    try:
        report = check_input(spark, settings, span)
    except Exception as exc:
        raise StageError("check-input", span, exc) from exc
    print(report.format())
    return 0 if report.passes else 1


def cmd_maintain(args: argparse.Namespace, settings: Settings) -> int:
    """Run maintenance tasks for a day (the ``recsys_maintenance`` DAG's, in its order)."""
    from recsys_lib.pipeline import StageError
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.stages.maintenance import SPARK_TASKS, TASKS

    chosen = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown maintenance tasks {unknown}; tasks: {', '.join(TASKS)}")
    spark = get_spark(settings) if any(t in SPARK_TASKS for t in chosen) else None
    for task in (t for t in TASKS if t in chosen):
        try:
            figures = TASKS[task](spark, settings, args.date)
        except Exception as exc:
            raise StageError(task, args.date, exc) from exc
        print(f"{task}: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()))
    return 0


def cmd_erase_user(args: argparse.Namespace, settings: Settings) -> int:
    """Erase users named by ``--ids-file`` and/or ``--user-id`` (see stages/erase_user.py)."""
    from recsys_lib.pipeline import StageError
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.stages.erase_user import STAGE, erase_users, read_ids
    from recsys_lib.transforms.privacy import require_key

    require_key(settings)
    ids = list(args.user_id or [])
    if args.ids_file:
        ids += read_ids(Path(args.ids_file))
    if not ids:
        raise ValueError("name the users: --ids-file FILE (one id a line) or --user-id ID")
    day = args.date or dt.datetime.now(dt.UTC).date()
    try:
        figures = erase_users(get_spark(settings), settings, ids, day)
    except Exception as exc:
        raise StageError(STAGE, day, exc) from exc
    print("erased: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()))
    return 0


def cmd_setup_jars(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.runtime.spark import resolve_jars

    for jar in resolve_jars(settings, object_store=args.object_store):
        print(jar)
    return 0


def cmd_setup_jvm(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.runtime.spark import build_class_archive

    started = time.perf_counter()
    try:
        archive = build_class_archive(settings)
    except (RuntimeError, OSError) as exc:
        # An optimisation only: without the archive every JVM loads its classes itself.
        print(f"recsys: no JVM class archive ({exc}); spark-submit starts without one")
        return 0
    print(f"built {archive} in {time.perf_counter() - started:.0f}s")
    return 0


def cmd_spark_connection(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.runtime.airflow_support import spark_connection

    print(spark_connection(settings))
    return 0


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Environment for Airflow commands: project home, DAGs folder, Spark connection."""
    from recsys_lib.runtime.airflow_support import spark_connection

    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(settings.home / "airflow_home"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(settings.home / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", spark_connection(settings))
    env["RECSYS_HOME"] = str(settings.home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def airflow_dags_test(settings: Settings, run_date: dt.date) -> None:
    """``airflow dags test recsys_nightly run_date``, logged to a file; raises if it fails."""
    env = airflow_environment(settings)
    env.setdefault("RECSYS_DAG_RETRIES", "0")  # a failure shows now, not after retry delays
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    log_file = Path(env["AIRFLOW_HOME"]) / f"dags_test_{run_date.isoformat()}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        result = subprocess.run(
            [airflow, "dags", "test", "recsys_nightly", run_date.isoformat()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    output = log_file.read_text()
    if result.returncode != 0 or "state=failed" in output or "DagRunState.FAILED" in output:
        tail = "\n".join(output.splitlines()[-40:])
        raise RuntimeError(f"airflow dags test failed (log: {log_file}):\n{tail}")


def cmd_dags_test(args: argparse.Namespace, settings: Settings) -> int:
    airflow_dags_test(settings, args.date)
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.devtools.summary import summary

    print(summary(settings, args.date))
    return 0


DEMO_NIGHTS = 3


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate a shop, backfill its history, run three nights in-process and the DAG for its
    last day, summarise."""
    from recsys_lib.devtools.generator import generate_shop
    from recsys_lib.devtools.summary import summary
    from recsys_lib.transforms.privacy import use_demo_key

    use_demo_key(settings)  # a generated shop: the public key, set here and nowhere else
    started = time.perf_counter()
    out = Path(settings.resolve(DEMO_DATA))
    shop = generate_shop(out, "default", scale=args.scale, days=args.days, seed=args.seed)
    print(f"[demo] generated {shop.total_rows} event rows, {shop.days} days -> {out}/")
    first, last = shop.first_day, shop.last_day
    # Whole nights for the three days before the last: the Airflow night then has samples
    # of three label days (training, validation, holdout) and trains the first ranker.
    nights = days(last - dt.timedelta(days=DEMO_NIGHTS), last - dt.timedelta(days=1))
    print(f"[demo] backfilling {'+'.join(HISTORY_STAGES)} for {first} .. {nights[-1]}, then")
    print(f"[demo] the nightly stages in-process for {nights[0]} .. {nights[-1]}")
    history_and_nights(settings, first, nights, progress=Progress(0, "demo"))
    so_far = _clock(time.perf_counter() - started)
    print(f"[demo] airflow dags test recsys_nightly {last} ({so_far} so far)")
    airflow_started = time.perf_counter()
    airflow_dags_test(settings, last)
    print(f"[demo] the Airflow night took {_clock(time.perf_counter() - airflow_started)}")
    print(summary(settings, last))
    print(f"[demo] done in {time.perf_counter() - started:.0f}s")
    return 0


def cmd_local_cluster(args: argparse.Namespace, settings: Settings) -> int:
    """A Spark standalone master and worker on 127.0.0.1 until Ctrl-C."""
    from recsys_lib.devtools.local_cluster import local_cluster

    folder = Path(settings.resolve(".cache/spark/local-cluster"))
    with local_cluster(folder, cores=args.cores, memory=args.memory, port=args.port) as cluster:
        print(f"master {cluster.master_url}, UI {cluster.ui_url}, logs in {folder}")
        print(f"run on it: RECSYS__SPARK__MASTER={cluster.master_url} recsys ...  (Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_docs_tables(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.warehouse.docs import tables_markdown

    target = settings.home / "docs" / "tables.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(tables_markdown())
    print(f"wrote {target}")
    return 0


def cmd_benchmark(args: argparse.Namespace, settings: Settings) -> int:
    """Run a published benchmark's protocol on our algorithms and print its table."""
    from recsys_lib.devtools.movielens import format_report, run_benchmark
    from recsys_lib.runtime.spark import get_spark

    spark = get_spark(settings)
    result = run_benchmark(
        spark, settings, Path(args.data), k=args.k, seed=args.seed, n_users=args.users
    )
    print(format_report(result))
    return 0


def cmd_tune(args: argparse.Namespace, settings: Settings) -> int:
    """Search a source's hyperparameters on a validation split; write the best to
    ``conf/tuned.yaml`` (docs/candidates.md, "Tuning")."""
    from recsys_lib.config import TUNED_FILE, config_dir
    from recsys_lib.models.tuning import format_result, write_tuned
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.stages.tune import tune

    spark = get_spark(settings)
    result = tune(spark, settings, args.model, args.date, args.trials, k=args.k, seed=args.seed)
    print(format_result(result))
    if args.dry_run:
        print("--dry-run: nothing written")
        return 0
    path = Path(args.out) if args.out else config_dir(settings.home, os.environ) / TUNED_FILE
    if write_tuned(path, result):
        print(f"wrote {args.model}: {result.trials[result.best].params} to {path}")
    else:
        print(f"the settings in force measured best: {path} unchanged")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__)
    parser.add_argument("--env", default=None, help="configuration environment (conf/ENV.yaml)")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    # --verbose is also taken after the command (recsys run ... --verbose).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_subparser(common))

    p = sub.add_parser("generate", help="write a generated shop in RetailRocket's formats")
    p.add_argument("--profile", default="default", help="default | flat | retailrocket")
    p.add_argument("--scale", type=float, default=1.0, help="retailrocket: 1.0 = the real log")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--days", type=int, default=None)
    p.add_argument("--start", type=_date, default=None)
    p.add_argument("--category-tree", default=None, help="category_tree.csv[.gz] to use")
    p.add_argument(
        "--format",
        default="retailrocket",
        choices=["retailrocket", "rees46", "taobao"],
        help="layout of the files (conf/sources/ has a profile for each)",
    )
    p.add_argument("--out", default=DEMO_DATA)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run one stage (or all) for one day, without Airflow")
    p.add_argument("stage", help=f"{' | '.join(NIGHTLY_STAGES)} | all")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="run stages for each day of a range in one session")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--stages", default="all", help="comma-separated, or all")
    p.add_argument(
        "--chunk-days", type=int, default=None, help="days per pass (backfill.chunk_days)"
    )
    p.add_argument(
        "--resume", action="store_true", help="skip days whose stage ops.stage_runs records"
    )
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser(
        "check-input", help="what ingest would read for a day, and what clean would reject"
    )
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--end", type=_date, default=None, help="last day of a range (default: --date)")
    p.set_defaults(func=cmd_check_input)

    p = sub.add_parser(
        "maintain", help="compact, vacuum, clean _staging/ and prune MLflow runs (see docs)"
    )
    p.add_argument("--date", type=_date, required=True, help="the day whose partitions compact")
    p.add_argument(
        "--tasks", default="all", help="comma-separated: compact,vacuum,clean_staging,prune_mlflow"
    )
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("erase-user", help="delete users from every table, model and store")
    p.add_argument("--ids-file", help="a file of raw user ids, one a line (keeps them off argv)")
    p.add_argument("--user-id", action="append", help="a raw user id (repeatable)")
    p.add_argument("--date", type=_date, default=None, help="the day recorded (default: today)")
    p.set_defaults(func=cmd_erase_user)

    p = sub.add_parser("tune", help="search ALS's or EASE's settings; write conf/tuned.yaml")
    p.add_argument("model", choices=["als", "ease"])
    p.add_argument("--date", type=_date, required=True, help="the night D: validates on D-1")
    p.add_argument("--trials", type=int, default=12, help="fits, the settings in force first")
    p.add_argument("--k", type=int, default=10, help="NDCG@k is the figure compared")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="of the random search (ALS)")
    p.add_argument("--out", default=None, help="file to write (default conf/tuned.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the trials, write nothing")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "query", help="one read-only SELECT over the tables (DuckDB SQL, no JVM; never writes)"
    )
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows; 0 = all")
    p.add_argument("--format", choices=QUERY_FORMATS, default="text", help="output format")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("history", help="a table's Delta history, newest first (no JVM)")
    p.add_argument("table", help="schema.table, e.g. clean.events")
    p.add_argument("--limit", type=int, default=20, help="at most this many versions; 0 = all")
    p.add_argument("--format", choices=QUERY_FORMATS, default="text", help="output format")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("dags-test", help="airflow dags test recsys_nightly DATE, project env")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_dags_test)

    p = sub.add_parser("summary", help="tables, sample recommendations, MLflow run, timings")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("demo", help="generate a shop and run the nightly pipeline on it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--days", type=int, default=10, help="days of history to generate")
    p.add_argument("--scale", type=float, default=0.5, help="size of the default shop")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("benchmark", help="a published benchmark's protocol on our algorithms")
    p.add_argument("dataset", choices=["movielens", "movielens-100k"])
    p.add_argument(
        "--data",
        required=True,
        help="a MovieLens release's folder: 100k (u.data ...), 1M (ratings.dat ...) or "
        "latest (ratings.csv, movies.csv), files optionally gzipped",
    )
    p.add_argument("--users", type=int, default=None, help="only this many users, at random")
    p.add_argument("--k", type=int, default=10, help="length of the recommendation lists")
    p.add_argument("--seed", type=int, default=42, help="seed of the stratified split")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("setup-jars", help="resolve the Delta jars into the local cache")
    p.add_argument(
        "--object-store",
        action="store_true",
        help="the s3a:// jars instead (spark.object_store_packages)",
    )
    p.set_defaults(func=cmd_setup_jars)
    sub.add_parser(
        "setup-jvm", help="build the driver JVM's class archive (paths.jvm_archive)"
    ).set_defaults(func=cmd_setup_jvm)
    p = sub.add_parser("local-cluster", help="a Spark standalone master + worker on 127.0.0.1")
    p.add_argument("--port", type=int, default=7077)
    p.add_argument("--cores", type=int, default=2, help="cores the worker offers")
    p.add_argument("--memory", default="3g", help="memory the worker offers its executors")
    p.set_defaults(func=cmd_local_cluster)

    sub.add_parser("docs-tables", help="regenerate docs/tables.md").set_defaults(
        func=cmd_docs_tables
    )
    sub.add_parser(
        "spark-connection", help="AIRFLOW_CONN_SPARK_DEFAULT for the configured master"
    ).set_defaults(func=cmd_spark_connection)
    return parser


VERBOSE_HELP = "on a failure, log the traceback too (default: one line)"


def _subparser(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class Subparser(argparse.ArgumentParser):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(parents=[common], **kwargs)

    return Subparser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a failure prints ``recsys: <stage> <date>: <problem> (<file>)`` and
    exits 1 (with ``--verbose``, the traceback is logged first)."""
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.env)
        return int(args.func(args, settings))
    except Exception as exc:
        if args.verbose:
            log.exception("recsys %s failed", args.command)
        print(f"recsys: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
