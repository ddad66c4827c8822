"""Profile: where one night's time goes, stage by stage, in one warm in-process session.

Generates the demo shop (``default`` profile; ``--scale``, ``--days``), loads its history with
``recsys backfill`` of the history stages, runs whole nights in-process for every day but the
last, keeps a copy of the warehouse and the MLflow store, and then profiles the last night:
the night that trains, promotes and serves the first ranker, as the demo's Airflow night
does. For each stage it prints the wall time, the Spark jobs the stage started (count and
summed seconds; the jobs Delta runs to rebuild a table's state from its log are counted
apart), the Delta commits it made (new ``_delta_log`` versions over every table) and the
driver-side rest (wall time not covered by any Spark job: Python, MLflow, LightGBM, Delta's
commit protocol and log listing).

    .venv/bin/python bench/stage_profile.py --work bench_work/profile
    .venv/bin/python bench/stage_profile.py --work bench_work/profile --reuse   # last night again

``--reuse`` restores the copy taken before the last night and profiles that night again:
the loop for trying a change. ``--repeat N`` profiles it N times (restoring between runs) and
prints the median.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATE = ("warehouse", "mlflow")


def delta_versions(warehouse: Path) -> dict[str, int]:
    """Number of commit files of every Delta table under ``warehouse`` (no Spark)."""
    counts = {}
    for log in warehouse.glob("**/_delta_log"):
        counts[str(log.parent.relative_to(warehouse))] = len(list(log.glob("*.json")))
    return counts


def spark_jobs(ui: str, app_id: str) -> list[dict]:
    with urllib.request.urlopen(f"{ui}/api/v1/applications/{app_id}/jobs") as answer:
        return json.load(answer)


def _seconds(job: dict) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S.%f%Z"
    start = dt.datetime.strptime(job["submissionTime"].replace("GMT", "UTC"), fmt)
    end = dt.datetime.strptime(job["completionTime"].replace("GMT", "UTC"), fmt)
    return (end - start).total_seconds()


def is_snapshot_job(job: dict) -> bool:
    text = f"{job.get('name', '')} {job.get('description', '')}".lower()
    return "snapshot" in text or "checkpoint" in text


def attribute_jobs_to_call_sites() -> None:
    """Name every Spark job after the innermost ``recsys_lib`` line that led to it.

    Wraps py4j's calls into the JVM: before a call from a new line of ``recsys_lib``, the
    thread's ``callSite.short`` property is set to ``module.py:line function``, which Spark
    uses as the name of the jobs that call starts (Delta's snapshot jobs included). For
    counting jobs only: the extra JVM calls and stack walks cost time. Lines of
    ``recsys_lib/runtime/spark.py`` are passed over: its ``concurrently`` would otherwise claim
    every job that a stage runs side by side.
    """
    import threading

    from py4j.java_gateway import JavaMember

    original = JavaMember.__call__
    state = threading.local()
    import recsys_lib
    from recsys_lib.runtime import spark as session

    package = str(Path(recsys_lib.__file__).resolve().parent)
    session_module = str(Path(session.__file__).resolve())

    def site() -> str | None:
        frame: FrameType | None = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(package) and name != session_module:
                short = name.removeprefix(package + "/")
                return f"{short}:{frame.f_lineno} {frame.f_code.co_name}"
            frame = frame.f_back
        return None

    def call(member: Any, *args: Any) -> Any:
        if getattr(state, "busy", False):
            return original(member, *args)
        here = site()
        if here is not None and here != getattr(state, "site", None):
            from pyspark import SparkContext

            context = SparkContext._active_spark_context
            if context is not None:
                state.busy = True
                try:
                    context._jsc.sc().setLocalProperty("callSite.short", here)
                finally:
                    state.busy = False
                state.site = here
        return original(member, *args)

    JavaMember.__call__ = call


def save_state(work: Path) -> None:
    copy = work / ".before_last_night"
    shutil.rmtree(copy, ignore_errors=True)
    for name in STATE:
        if (work / name).exists():
            shutil.copytree(work / name, copy / name)


def close_mlflow_connections() -> None:
    """Drop the pooled SQLite connections of MLflow's stores: after a restore they would
    point at the replaced (deleted) database file."""
    import sys as _sys

    for module in (
        "mlflow.store.tracking.sqlalchemy_store",
        "mlflow.store.model_registry.sqlalchemy_store",
    ):
        store = getattr(_sys.modules.get(module), "SqlAlchemyStore", None)
        for engine in getattr(store, "_engine_map", {}).values():
            engine.dispose()


def restore_state(work: Path) -> None:
    copy = work / ".before_last_night"
    if not copy.is_dir():
        raise SystemExit(f"no saved state in {copy}: run without --reuse first")
    close_mlflow_connections()
    for name in STATE:
        shutil.rmtree(work / name, ignore_errors=True)
        if (copy / name).exists():
            shutil.copytree(copy / name, work / name)


def print_call_sites(jobs: list[dict], top: int = 12) -> None:
    """The lines that started the most jobs: count, snapshot jobs, summed seconds."""
    sites: dict[str, list[float]] = {}
    for job in jobs:
        entry = sites.setdefault(job.get("name", "?"), [0, 0, 0.0])
        entry[0] += 1
        entry[1] += is_snapshot_job(job)
        entry[2] += _seconds(job)
    ranked = sorted(sites.items(), key=lambda kv: -kv[1][0])
    for name, (count, snapshot, seconds) in ranked[:top]:
        print(f"      {count:4d} jobs ({snapshot:3d} snapshot, {seconds:5.1f}s)  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="bench_work/profile")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--nights", type=int, default=4, help="whole nights, the last included")
    parser.add_argument("--reuse", action="store_true", help="profile the saved last night again")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--warmup", action="store_true", help="with --reuse: run the night once unreported first"
    )
    parser.add_argument("--json", default=None, help="write the per-stage rows here")
    parser.add_argument(
        "--call-sites",
        action="store_true",
        help="name jobs after their recsys_lib line; print the busiest lines (skews timings)",
    )
    args = parser.parse_args()

    work = (REPO / args.work).resolve()
    if work.exists() and not args.reuse:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["RECSYS_HOME"] = str(work)
    os.environ.setdefault("RECSYS_CONF_DIR", str(REPO / "conf"))
    os.environ.setdefault("RECSYS__PATHS__JARS_CACHE", str(REPO / ".cache" / "ivy"))
    os.environ.setdefault("RECSYS__PATHS__JVM_ARCHIVE", str(REPO / ".cache" / "jvm" / "recsys.jsa"))
    import logging

    from recsys_lib.cli import backfill
    from recsys_lib.config import load_settings
    from recsys_lib.constants import HISTORY_STAGES, NIGHTLY_STAGES
    from recsys_lib.dates import DayRange
    from recsys_lib.devtools.generator import generate_shop
    from recsys_lib.pipeline import run_stage
    from recsys_lib.runtime.logs import configure_logging
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.transforms.privacy import use_demo_key

    configure_logging()
    logging.getLogger().setLevel(logging.WARNING)
    settings = load_settings()
    use_demo_key(settings)  # a generated shop: the public key, set on purpose
    shop_dir = work / "data" / "shop"
    if not args.reuse:
        generate_shop(shop_dir, "default", scale=args.scale, days=args.days)
    manifest = json.loads((shop_dir / "manifest.json").read_text())
    first = dt.date.fromisoformat(manifest["first_day"])
    last = dt.date.fromisoformat(manifest["last_day"])
    nights = DayRange(last - dt.timedelta(days=args.nights - 1), last)
    if args.call_sites:
        attribute_jobs_to_call_sites()
    started = time.perf_counter()
    spark = get_spark(settings)
    print(f"session start: {time.perf_counter() - started:.1f}s")
    sc = spark.sparkContext
    ui, app_id = sc.uiWebUrl, sc.applicationId
    if ui is None:
        raise SystemExit("the Spark UI is off (spark.ui.enabled): the profile reads its jobs")
    warehouse = Path(settings.warehouse)

    if not args.reuse:
        history = DayRange(first, nights.first - dt.timedelta(days=1))
        t0 = time.perf_counter()
        backfill(settings, HISTORY_STAGES, history)
        print(f"history {history} ({'+'.join(HISTORY_STAGES)}): {time.perf_counter() - t0:.1f}s")
        if len(nights) > 1:
            earlier = DayRange(nights.first, last - dt.timedelta(days=1))
            t0 = time.perf_counter()
            backfill(settings, NIGHTLY_STAGES, earlier)
            print(f"whole nights {earlier}: {time.perf_counter() - t0:.1f}s")
        save_state(work)

    if args.reuse and args.warmup:
        restore_state(work)
        t0 = time.perf_counter()
        for stage in NIGHTLY_STAGES:
            run_stage(spark, settings, stage, last)
        print(f"warm-up night: {time.perf_counter() - t0:.1f}s")
    runs: list[list[dict]] = []
    for attempt in range(args.repeat):
        if args.reuse or attempt:
            restore_state(work)
            spark.catalog.clearCache()
        rows: list[dict[str, Any]] = []
        print(f"\nlast night {last}, run {attempt + 1}:")
        for stage in NIGHTLY_STAGES:
            group = f"{stage}:{last}:{attempt}"
            sc.setJobGroup(group, group)
            before = delta_versions(warehouse)
            t0 = time.perf_counter()
            run_stage(spark, settings, stage, last)
            wall = time.perf_counter() - t0
            after = delta_versions(warehouse)
            jobs = [j for j in spark_jobs(ui, app_id) if j.get("jobGroup") == group]
            done = [j for j in jobs if "completionTime" in j]
            snapshot = [j for j in done if is_snapshot_job(j)]
            job_seconds = sum(_seconds(j) for j in done)
            row = {
                "stage": stage,
                "wall": wall,
                "jobs": len(jobs),
                "job_seconds": job_seconds,
                "snapshot_jobs": len(snapshot),
                "commits": sum(after[t] - before.get(t, 0) for t in after),
                "driver_seconds": max(0.0, wall - job_seconds),
            }
            rows.append(row)
            if args.call_sites:
                print_call_sites(done)
            print(
                f"  {stage:<12} {wall:6.1f}s  jobs {row['jobs']:4d} ({job_seconds:5.1f}s, "
                f"{row['snapshot_jobs']} snapshot)  commits {row['commits']:2d}  "
                f"driver {row['driver_seconds']:5.1f}s",
                flush=True,
            )
        sc.setJobGroup("", "")
        runs.append(rows)
        print(f"  {'night':<12} {sum(r['wall'] for r in rows):6.1f}s")

    print(f"\nmedian of {len(runs)} run(s):")
    print(f"{'stage':<12} {'wall s':>7} {'jobs':>5} {'job s':>6} {'commits':>7} {'driver s':>8}")
    total = 0.0
    for i, stage in enumerate(NIGHTLY_STAGES):

        def med(key: str, i: int = i) -> float:
            return statistics.median(run[i][key] for run in runs)

        total += med("wall")
        print(
            f"{stage:<12} {med('wall'):7.1f} {med('jobs'):5.0f} {med('job_seconds'):6.1f} "
            f"{med('commits'):7.0f} {med('driver_seconds'):8.1f}"
        )
    print(f"{'night':<12} {total:7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
