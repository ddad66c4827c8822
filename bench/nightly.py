"""Benchmark: the whole nightly run on shops with the real RetailRocket log's shape, at
several scales (the cost curve).

For each ``--scales`` value (1.0 = the real log's size: 1.4M visitors, ~20k events a day,
139 days) it generates a ``retailrocket``-profile shop, loads its history with one
``recsys backfill`` of the history stages (ingest, clean, aggregate) over every day before
the run date, then runs every nightly stage of the run date (the shop's last day) as its own
``spark-submit``, as the DAG's tasks do. It prints each step's wall time and the peak
resident memory of its whole process tree (JVM and Python workers), and at the end each
scale's times as a ratio of the smallest scale's. ``--baseline`` adds the same night in one
warm in-process session (``recsys run all``): what the per-task JVM starts cost.
``--reuse`` skips generating and loading a scale whose history an earlier run of this
script completed in the same ``--work`` folder (the night is then a rerun of the run date);
``--stages`` runs only those nightly stages; ``--driver-memory`` sets each task's
``spark.driver.memory`` (10g: in local mode the driver's heap holds the executors' work
too). ``--event-log DIR`` keeps each task's Spark event log there, for ``bench/eventlog.py``
(where a stage's time went).

    .venv/bin/python bench/nightly.py --scales 0.25,0.5,1.0 --work bench_work
    .venv/bin/python bench/nightly.py --scales 0.25 --reuse --stages candidates

Needs ``../shared/data/retailrocket/category_tree.csv.gz`` (the real category tree).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from recsys_lib.constants import HISTORY_STAGES, NIGHTLY_STAGES
from recsys_lib.transforms.privacy import DEMO_KEY

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIRST_DAY = dt.date(2015, 5, 3)  # the real log's first day
JAVA_OPTIONS = "RECSYS__SPARK__SUBMIT_JAVA_OPTIONS"
KEY_VARIABLE = "RECSYS_PSEUDONYM_KEY"  # privacy.key_env of conf/base.yaml
HISTORY_MARKER = "history_loaded"  # holds the run date once its history is loaded


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, summed over the process tree) of a command."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs) / 2**20)
            except psutil.Error:
                pass
            stop.wait(0.25)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, stderr = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr.decode()[-3000:]}")
    return time.perf_counter() - started, peak


def scale_env(
    work: Path, event_log: Path | None = None, driver_memory: str = "10g"
) -> dict[str, str]:
    event_logging = (
        {
            "RECSYS__SPARK__CONF__spark.eventLog.enabled": "true",
            "RECSYS__SPARK__CONF__spark.eventLog.dir": event_log.resolve().as_uri(),
            "RECSYS__SPARK__CONF__spark.eventLog.compress": "false",
        }
        if event_log
        else {}
    )
    return {
        **os.environ,
        "RECSYS_HOME": str(work),
        "RECSYS_CONF_DIR": str(REPO / "conf"),
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__PATHS__JVM_ARCHIVE": str(REPO / ".cache" / "jvm" / "recsys.jsa"),
        "RECSYS__INPUT__EVENTS_PATH": str(work / "shop" / "events"),
        "RECSYS__INPUT__ITEM_PROPERTIES_PATH": str(work / "shop" / "item_properties.csv"),
        "RECSYS__INPUT__CATEGORY_TREE_PATH": str(work / "shop" / "category_tree.csv"),
        "RECSYS__SPARK__DRIVER_MEMORY": driver_memory,
        # Unless set, the tiered JIT of the base config, not the demo's C1-only
        # (conf/local.yaml): a task here runs for minutes, and C2's code pays
        # (docs/benchmarks.md).
        JAVA_OPTIONS: os.environ.get(JAVA_OPTIONS, ""),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        # A generated shop: the public demo key, set on purpose (unless a key is set).
        KEY_VARIABLE: os.environ.get(KEY_VARIABLE, DEMO_KEY),
        **event_logging,
    }


Step = Callable[[str, list[str]], None]


def load_history(scale: float, work: Path, days: int, step: Step) -> None:
    """Generate the scale's shop and load every day before the run date in one backfill."""
    recsys = str(BIN / "recsys")
    tree = REPO.parent / "shared" / "data" / "retailrocket" / "category_tree.csv.gz"
    generate = [recsys, "generate", "--profile", "retailrocket", "--scale", str(scale)]
    step(
        "generate",
        [*generate, "--days", str(days), "--category-tree", str(tree), "--out", str(work / "shop")],
    )
    before = FIRST_DAY + dt.timedelta(days=days - 2)
    step(
        f"history ({days - 1} days)",
        [recsys, "backfill", "--start", FIRST_DAY.isoformat(), "--end", before.isoformat()]
        + ["--stages", ",".join(HISTORY_STAGES)],
    )


def bench_scale(
    scale: float,
    work: Path,
    days: int,
    options: argparse.Namespace,
    stages: list[str],
) -> dict[str, float]:
    """Seconds of each step at one scale (and prints them with their peak memory)."""
    work.mkdir(parents=True, exist_ok=True)
    event_log = options.event_log / f"rr_{scale}" if options.event_log else None
    if event_log:
        event_log.mkdir(parents=True, exist_ok=True)
    env = scale_env(work, event_log, options.driver_memory)
    steps: dict[str, float] = {}
    print(f"\n## retailrocket profile, scale {scale} ({work})")
    print(f"  {'step':<28} {'wall s':>8} {'peak MiB':>9}")

    def step(name: str, cmd: list[str]) -> None:
        seconds, peak = run_measured(cmd, env)
        steps[name] = seconds
        print(f"  {name:<28} {seconds:8.1f} {peak:9.0f}", flush=True)

    last = FIRST_DAY + dt.timedelta(days=days - 1)
    marker = work / HISTORY_MARKER
    if options.reuse and marker.exists() and marker.read_text().strip() == last.isoformat():
        print(f"  (history before {last} loaded by an earlier run: reused)")
    else:
        marker.unlink(missing_ok=True)
        load_history(scale, work, days, step)
        marker.write_text(last.isoformat() + "\n")
    from recsys_lib.runtime.airflow_support import spark_properties_file

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        properties = spark_properties_file()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    night = 0.0
    for stage in stages:
        step(
            stage,
            [
                str(BIN / "spark-submit"),
                "--master",
                "local[2]",
                "--properties-file",
                properties,
                str(REPO / "jobs" / f"{stage}.py"),
                "--date",
                last.isoformat(),
            ],
        )
        night += steps[stage]
    steps["night (spark-submit)"] = night
    print(f"  {'night (spark-submit)':<28} {night:8.1f}")
    if options.baseline:
        step("night in-process", [str(BIN / "recsys"), "run", "all", "--date", last.isoformat()])
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="0.25,0.5,1.0", help="comma-separated")
    parser.add_argument("--work", default="bench_work", help="scratch folder, one home a scale")
    parser.add_argument("--days", type=int, default=139, help="days of log (139 = the real one)")
    parser.add_argument("--baseline", action="store_true", help="also the night in-process")
    parser.add_argument("--reuse", action="store_true", help="keep a loaded history")
    parser.add_argument(
        "--stages", default=",".join(NIGHTLY_STAGES), help="nightly stages to run, in order"
    )
    parser.add_argument("--event-log", type=Path, help="keep Spark event logs in this folder")
    parser.add_argument("--driver-memory", default="10g", help="each task's spark.driver.memory")
    args = parser.parse_args()
    stages = args.stages.split(",")
    unknown = sorted(set(stages) - set(NIGHTLY_STAGES))
    if unknown:
        parser.error(f"unknown stages: {', '.join(unknown)}")

    scales = sorted(float(s) for s in args.scales.split(","))
    results = {
        scale: bench_scale(
            scale,
            (REPO / args.work / f"rr_{scale}").resolve(),
            args.days,
            args,
            stages,
        )
        for scale in scales
    }
    smallest = scales[0]
    print(f"\ncost curve: each step's time as a multiple of scale {smallest}'s")
    print(f"  {'step':<28} " + " ".join(f"{s:>8}" for s in scales))
    for name in results[smallest]:
        base = results[smallest][name] or float("nan")
        ratios = " ".join(f"{results[s].get(name, float('nan')) / base:8.2f}" for s in scales)
        print(f"  {name:<28} {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
