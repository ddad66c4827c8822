"""Benchmark: one nightly run on a shop with the real RetailRocket log's shape.

Generates a ``retailrocket``-profile shop at ``--scale`` (1.0 = the real log's size), loads
``--history-days`` of history (default 90, the portraits' window) with ``recsys backfill``
of the history stages (ingest, clean, aggregate; one session), then runs
each stage of the last day as its own ``spark-submit``, as the DAG's tasks do, and prints
each stage's wall time and the peak resident memory of its whole process tree (JVM and
Python workers). Baseline in the same run: the same stages in one warm in-process session
(``recsys run all``), which shows what the per-task JVM start costs.

    .venv/bin/python bench/nightly.py --scale 1.0 --work bench_work

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
from pathlib import Path

import psutil

from recsys_lib.constants import HISTORY_STAGES, NIGHTLY_STAGES

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", default="bench_work", help="scratch project home")
    parser.add_argument("--history-days", type=int, default=90, help="days up to the run date")
    args = parser.parse_args()

    work = (REPO / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "RECSYS_HOME": str(work),
        "RECSYS_CONF_DIR": str(REPO / "conf"),
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__INPUT__EVENTS_PATH": str(work / "shop" / "events"),
        "RECSYS__INPUT__ITEM_PROPERTIES_PATH": str(work / "shop" / "item_properties.csv"),
        "RECSYS__INPUT__CATEGORY_TREE_PATH": str(work / "shop" / "category_tree.csv"),
        "RECSYS__SPARK__DRIVER_MEMORY": "12g",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    recsys = str(BIN / "recsys")
    tree = REPO.parent / "shared" / "data" / "retailrocket" / "category_tree.csv.gz"
    seconds, peak = run_measured(
        [
            recsys,
            "generate",
            "--profile",
            "retailrocket",
            "--scale",
            str(args.scale),
            "--category-tree",
            str(tree),
            "--out",
            str(work / "shop"),
        ],
        env,
    )
    print(f"generate retailrocket scale={args.scale}: {seconds:.0f}s, peak {peak:.0f} MiB")

    # The log starts on 2015-05-03; the run date is the last day of the history window.
    first = dt.date(2015, 5, 3)
    last = first + dt.timedelta(days=args.history_days - 1)
    seconds, peak = run_measured(
        [
            recsys,
            "backfill",
            "--start",
            first.isoformat(),
            "--end",
            (last - dt.timedelta(days=1)).isoformat(),
            "--stages",
            ",".join(HISTORY_STAGES),
        ],
        env,
    )
    print(
        f"history {first} .. {last - dt.timedelta(days=1)} ({'+'.join(HISTORY_STAGES)}, "
        "one session): "
        f"{seconds:.0f}s, peak {peak:.0f} MiB"
    )

    from recsys_lib.airflow_support import spark_properties_file

    os.environ.update(env)
    properties = spark_properties_file()
    print(f"\nnightly run for {last}, one spark-submit per stage (as the DAG runs them):")
    print(f"  {'stage':<10} {'wall s':>8} {'peak MiB':>9}")
    total = 0.0
    for stage in NIGHTLY_STAGES:
        seconds, peak = run_measured(
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
            env,
        )
        total += seconds
        print(f"  {stage:<10} {seconds:8.1f} {peak:9.0f}")
    print(f"  {'total':<10} {total:8.1f}")

    seconds, peak = run_measured([recsys, "run", "all", "--date", last.isoformat()], env)
    print(
        f"\nbaseline: the same stages in one in-process session: {seconds:.1f}s, "
        f"peak {peak:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
