"""Where a Spark application's time went, from its event log: the longest Spark stages on
a timeline, with their tasks, rows shuffled and the operators they ran.

Write the log with ``spark.eventLog.enabled=true``, ``spark.eventLog.dir=file:///DIR`` and
``spark.eventLog.compress=false`` (``bench/nightly.py --event-log DIR`` sets all three for
its ``spark-submit`` tasks), then:

    .venv/bin/python bench/eventlog.py DIR/eventlog_v2_local-*/events_1_* [--top 15]

Prints figures; asserts nothing. A stage's "wall" is its submission to completion: stages
that run side by side share the cores, so walls can add up to more than the application.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    start_ms: int = 0
    end_ms: int = 0
    tasks: int = 0
    name: str = ""
    operators: list[str] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)


def read_events(path: Path) -> tuple[int, int, dict[int, Stage], int]:
    """(application start, end, stages by id, job count) of one event log file."""
    stages: dict[int, Stage] = {}
    start = end = jobs = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerApplicationStart":
                start = event["Timestamp"]
            elif kind == "SparkListenerApplicationEnd":
                end = event["Timestamp"]
            elif kind == "SparkListenerJobStart":
                jobs += 1
            elif kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                into = stages.setdefault(event["Stage ID"], Stage()).metrics
                into["run_s"] += metrics.get("Executor Run Time", 0) / 1000
                into["spill_mib"] += metrics.get("Disk Bytes Spilled", 0) / 2**20
                read = metrics.get("Shuffle Read Metrics", {})
                into["shuffle_read_rows"] += read.get("Total Records Read", 0)
                written = metrics.get("Shuffle Write Metrics", {})
                into["shuffle_write_rows"] += written.get("Shuffle Records Written", 0)
                into["output_rows"] += metrics.get("Output Metrics", {}).get("Records Written", 0)
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                stage = stages.setdefault(info["Stage ID"], Stage())
                stage.start_ms = info.get("Submission Time", 0)
                stage.end_ms = info.get("Completion Time", 0)
                stage.tasks = info["Number of Tasks"]
                stage.name = info["Stage Name"]
                scopes = [json.loads(r["Scope"])["name"] for r in info["RDD Info"] if "Scope" in r]
                stage.operators = [s for s in dict.fromkeys(scopes) if "WholeStageCodegen" not in s]
    return start, end, stages, jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("log", type=Path, help="an uncompressed Spark event log file")
    parser.add_argument("--top", type=int, default=15, help="stages to list, longest first")
    args = parser.parse_args()
    start, end, stages, jobs = read_events(args.log)
    done = {k: s for k, s in stages.items() if s.end_ms}
    print(f"application {(end - start) / 1000:.1f} s, {jobs} jobs, {len(done)} stages")
    longest = sorted(done.items(), key=lambda kv: kv[1].start_ms - kv[1].end_ms)[: args.top]
    print(f"  {'from s':>7} {'wall s':>7} {'task s':>7} {'tasks':>5} {'rows in':>11} "
          f"{'rows out':>11}  stage: operators")  # fmt: skip
    for sid, s in sorted(longest, key=lambda kv: kv[1].start_ms):
        m = s.metrics
        rows_out = m["shuffle_write_rows"] + m["output_rows"]
        print(
            f"  {(s.start_ms - start) / 1000:7.1f} {(s.end_ms - s.start_ms) / 1000:7.1f} "
            f"{m['run_s']:7.1f} {s.tasks:5d} {m['shuffle_read_rows']:11,.0f} {rows_out:11,.0f}"
            f"  #{sid}: {', '.join(s.operators)[:100]}"
            + (f" (spilled {m['spill_mib']:.0f} MiB)" if m["spill_mib"] else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
