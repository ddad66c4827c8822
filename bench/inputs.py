"""Benchmark: reading the same shop written in each input layout (docs/inputs.md).

Generates one ``retailrocket``-profile shop per ``--formats`` layout (the same users and
events, written as RetailRocket's daily CSV files, REES46's one multi-day CSV with
categories and prices on the rows, or Taobao's headerless daily gzip files in seconds), then
loads each one's history with the history stages (ingest, clean, aggregate) in one Spark
session, ``--repeat`` times into a fresh warehouse, and prints the median seconds of each
stage and the rows it read. The first layout is the baseline of the ratio column.

    .venv/bin/python bench/inputs.py --scale 0.25 --days 35 --work bench_work/inputs
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from recsys_lib.cli import backfill
from recsys_lib.config import load_settings
from recsys_lib.constants import HISTORY_STAGES
from recsys_lib.dates import DayRange
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.runtime.spark import get_spark
from recsys_lib.transforms.privacy import use_demo_key

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"retailrocket": "retailrocket", "rees46": "rees46", "taobao": "taobao"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--formats", default="retailrocket,rees46,taobao")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", default="bench_work/inputs")
    args = parser.parse_args()
    work = (REPO / args.work).resolve()
    results: dict[str, dict[str, float]] = {}
    for fmt in args.formats.split(","):
        shop_dir = work / fmt / "shop"
        started = time.perf_counter()
        shop = generate_shop(
            shop_dir,
            "retailrocket",
            scale=args.scale,
            days=args.days,
            format=fmt,
            category_tree=REPO.parent / "shared/data/retailrocket/category_tree.csv.gz",
        )
        print(f"{fmt}: generated {shop.total_rows:,} rows in {time.perf_counter() - started:.0f}s")
        runs: dict[str, list[float]] = {s: [] for s in HISTORY_STAGES}
        for i in range(args.repeat):
            home = work / fmt / f"run{i}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            environ = {
                "RECSYS__INPUT__SOURCE": PROFILES[fmt],
                "RECSYS__INPUT__EVENTS_PATH": str(shop_dir / shop.events_path),
                "RECSYS__INPUT__ITEM_PROPERTIES_PATH": (
                    str(shop_dir / "item_properties.csv") if fmt == "retailrocket" else ""
                ),
                "RECSYS__INPUT__CATEGORY_TREE_PATH": "",
                "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
            }
            settings = load_settings("local", conf_dir=REPO / "conf", home=home, environ=environ)
            use_demo_key(settings)  # a generated shop: the public key, set on purpose
            get_spark(settings)
            seconds = backfill(settings, HISTORY_STAGES, DayRange(shop.first_day, shop.last_day))
            for stage in HISTORY_STAGES:
                runs[stage].append(sum(v for (_, s), v in seconds.items() if s == stage))
            print(f"  run {i + 1}: " + ", ".join(f"{s} {runs[s][-1]:.1f}s" for s in HISTORY_STAGES))
        results[fmt] = {s: statistics.median(v) for s, v in runs.items()}
        results[fmt]["rows"] = shop.total_rows
    base = next(iter(results.values()))
    print(f"\nmedian of {args.repeat} runs, scale {args.scale}, {args.days} days")
    print(
        f"{'layout':<14}{'rows':>11}" + "".join(f"{s:>12}" for s in HISTORY_STAGES) + "   vs first"
    )
    for fmt, r in results.items():
        total = sum(r[s] for s in HISTORY_STAGES)
        ratio = total / sum(base[s] for s in HISTORY_STAGES)
        cells = "".join(f"{r[s]:>11.1f}s" for s in HISTORY_STAGES)
        print(f"{fmt:<14}{int(r['rows']):>11,}{cells}   {ratio:.2f}x")


if __name__ == "__main__":
    main()
