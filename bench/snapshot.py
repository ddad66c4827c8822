"""Fingerprint every table of a warehouse, to show that a change left the rows as they were.

A refactoring's proof: run the same night at the old commit and at the new one (for example
``bench/stage_profile.py --reuse`` from each checkout), fingerprint the warehouse after each,
and compare. Per table it records the row count and a SHA-256 of the sorted rows; floats
are rounded to 12 significant digits (Spark may sum in another order), and wall-clock
figures are left out: the ingest and finish times, and every column, map key or recorded
check whose name ends in ``seconds`` (a stage's or a model's timings).

    .venv/bin/python bench/snapshot.py --work bench_work/profile --out before.json
    .venv/bin/python bench/snapshot.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from recsys_lib import constants as C
from recsys_lib.devtools.snapshot import comparable

REPO = Path(__file__).resolve().parents[1]
VOLATILE = {C.INGESTED_AT, C.FINISHED_AT}  # wall-clock: new on every run
TIMING = "seconds"  # and so is every figure named "...seconds"


def is_timing(name: str) -> bool:
    return name.endswith(TIMING)


def sha256(values: list[Any]) -> str:
    """Digest of ``values`` in sorted order (a table's rows have none of their own)."""
    return hashlib.sha256("\n".join(sorted(map(repr, values))).encode()).hexdigest()


def fingerprint(work: Path) -> dict[str, dict[str, Any]]:
    os.environ["RECSYS_HOME"] = str(work)
    os.environ.setdefault("RECSYS_CONF_DIR", str(REPO / "conf"))
    os.environ.setdefault("RECSYS__PATHS__JARS_CACHE", str(REPO / ".cache" / "ivy"))
    from pyspark.sql import functions as F

    from recsys_lib.config import load_settings
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.warehouse.storage import read_table, table_path
    from recsys_lib.warehouse.tables import ALL_TABLES

    settings = load_settings()
    spark = get_spark(settings, app_name="recsys-snapshot")
    result: dict[str, dict[str, Any]] = {}
    for table in ALL_TABLES:
        if not Path(table_path(settings, table)).exists():
            continue
        frame = read_table(spark, settings, table)
        if C.CHECK_NAME in frame.columns:
            frame = frame.filter(~F.col(C.CHECK_NAME).endswith(TIMING))
        kept = [n for n in frame.columns if n not in VOLATILE and not n.endswith(TIMING)]
        collected = [comparable(tuple(r), is_timing) for r in frame.select(*kept).collect()]
        digest = sha256(collected)
        by_column = {name: sha256([r[i] for r in collected]) for i, name in enumerate(kept)}
        result[table.name] = {"rows": len(collected), "sha256": digest, "columns": by_column}
        print(f"{table.name:40s} {len(collected):9d} rows  {digest[:16]}", flush=True)
    spark.stop()
    return result


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differ = 0
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name), b.get(name)
        same = left == right
        differ += not same
        state = "same" if same else "DIFFERENT"
        rows = f"{(left or {}).get('rows')} -> {(right or {}).get('rows')}"
        columns_a, columns_b = (left or {}).get("columns", {}), (right or {}).get("columns", {})
        changed = sorted(
            c for c in set(columns_a) | set(columns_b) if columns_a.get(c) != columns_b.get(c)
        )
        print(f"{name:40s} {state:9s} rows {rows}" + (f"; columns {changed}" if changed else ""))
    print(f"{len(set(a) | set(b)) - differ} tables the same, {differ} different")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", help="the RECSYS_HOME whose warehouse to fingerprint")
    parser.add_argument("--out", help="write the fingerprints here (JSON)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return compare(Path(args.compare[0]), Path(args.compare[1]))
    if not args.work or not args.out:
        parser.error("--work and --out, or --compare")
    prints = fingerprint((REPO / args.work).resolve())
    Path(args.out).write_text(json.dumps(prints, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
