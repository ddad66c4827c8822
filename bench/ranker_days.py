"""The ranker against every baseline over several holdout days of the generated shop.

Generates the demo shop (``default`` profile, ``--scale`` 0.5, ``--days`` 14; another with
``--profile``, ``--days 0`` for the profile's own length), loads its
history and runs whole nights in-process for the last ``--nights`` days (default 6: the
first three gather label days, then every night trains the ranker on earlier label days and
evaluates it on its own holdout day, as ``train_ranker`` does). Then it reads
``ops.model_evaluation`` and prints NDCG@10 (and recall@20) per variant: the mean over the
holdout days, the standard deviation and each day's value, with the ranker's gain over the
best single source of the same night, and the importance weighting's ablation.

    .venv/bin/python bench/ranker_days.py --work bench_work/ranker_days
    .venv/bin/python bench/ranker_days.py --work bench_work/ranker_days --reuse   # read only

``--reuse`` reads the evaluation of an earlier run without running anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def settings_for(work: Path):  # noqa: ANN201 - recsys_lib is imported after the env is set
    from recsys_lib.config import load_settings

    environ = {
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__INPUT__EVENTS_PATH": str(work / "shop" / "events"),
        "RECSYS__INPUT__ITEM_PROPERTIES_PATH": str(work / "shop" / "item_properties.csv"),
        "RECSYS__INPUT__CATEGORY_TREE_PATH": str(work / "shop" / "category_tree.csv"),
        **os.environ,
    }
    return load_settings(conf_dir=REPO / "conf", home=work, environ=environ)


def run_nights(
    work: Path, scale: float, days: int | None, nights: int, seed: int, profile: str
) -> None:
    from recsys_lib.cli import history_and_nights
    from recsys_lib.devtools.generator import generate_shop

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shop = generate_shop(work / "shop", profile, scale=scale, days=days, seed=seed)
    settings = settings_for(work)
    last = shop.last_day
    night_days = [last - dt.timedelta(days=n) for n in range(nights - 1, -1, -1)]
    started = time.perf_counter()
    history_and_nights(settings, shop.first_day, night_days)
    seconds = time.perf_counter() - started
    print(f"{len(night_days)} nights {night_days[0]} .. {last} in {seconds:.0f}s")


def evaluation(work: Path, k: int) -> pd.DataFrame:
    """(run date, variant, metric, value) of the ranker's nightly evaluation at ``k``."""
    from pyspark.sql import functions as F

    from recsys_lib import constants as C
    from recsys_lib.runtime.spark import get_spark
    from recsys_lib.warehouse.storage import read_table
    from recsys_lib.warehouse.tables import MODEL_EVALUATION

    settings = settings_for(work)
    spark = get_spark(settings)
    rows = (
        read_table(spark, settings, MODEL_EVALUATION)
        .filter((F.col(C.MODEL) == C.RANKER) & F.col(C.K).isin([k, 20]))
        .select(C.DT, C.VARIANT, C.METRIC, C.K, C.VALUE)
        .toPandas()
    )
    return rows


def report(rows: pd.DataFrame, k: int) -> str:
    from recsys_lib import constants as C

    ndcg = rows[(rows[C.METRIC] == "ndcg") & (rows[C.K] == k)]
    table = ndcg.pivot_table(index=C.VARIANT, columns=C.DT, values=C.VALUE)
    trained = (
        [d for d in table.columns if pd.notna(table.at[C.RANKER, d])]
        if C.RANKER in table.index
        else []
    )
    table = table[trained]
    recall = rows[(rows[C.METRIC] == "recall") & (rows[C.K] == 20)]
    recall_table = recall.pivot_table(index=C.VARIANT, columns=C.DT, values=C.VALUE)
    sources = [s for s in (*C.CANDIDATE_SOURCES,) if s in table.index]
    lines = [
        f"holdout days with a trained ranker: {', '.join(str(d) for d in trained)}",
        "",
        f"| variant | NDCG@{k} mean | sd | "
        + " | ".join(str(d) for d in trained)
        + " | recall@20 mean |",
        "|---|---|---|" + "---|" * len(trained) + "---|",
    ]
    order = table.mean(axis=1).sort_values(ascending=False).index
    for variant in order:
        row = table.loc[variant]
        values = [float(v) for v in row]
        sd = float(row.std()) if row.count() > 1 else 0.0
        rec = (
            recall_table.loc[variant, trained].mean()
            if variant in recall_table.index
            else float("nan")
        )
        lines.append(
            f"| {variant} | {float(row.mean()):.4f} | {sd:.4f} | "
            + " | ".join(f"{v:.4f}" for v in values)
            + f" | {rec:.4f} |"
        )
    best_source = table.loc[sources].max(axis=0)
    lines.append("")
    for variant in (C.RANKER, C.RANKER_NO_IMPORTANCE, C.RANKER_SAMPLED):
        if variant not in table.index:
            continue
        gains = (table.loc[variant] / best_source - 1.0) * 100
        lines.append(
            f"{variant} over the best single source of each night: mean {gains.mean():+.1f} % "
            f"("
            + ", ".join(f"{g:+.1f} %" for g in gains)
            + "); best source per night: "
            + ", ".join(str(table.loc[sources, d].idxmax()) for d in trained)
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench_work" / "ranker_days")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--profile", default="default", help="a generator profile")
    parser.add_argument("--days", type=int, default=14, help="0: the profile's own")
    parser.add_argument("--nights", type=int, default=6)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="only read an earlier run")
    args = parser.parse_args()
    os.environ.setdefault("RECSYS_PSEUDONYM_KEY", "bench-key")
    work = args.work.resolve()
    if not args.reuse:
        run_nights(work, args.scale, args.days or None, args.nights, args.seed, args.profile)
    print(report(evaluation(work, args.k), args.k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
