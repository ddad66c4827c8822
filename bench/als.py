"""Benchmark: the two ALS backends of ``train_model`` and the similar items they give.

On one set of (user_id, item_id, weight) pairs, held as a cached Spark DataFrame, with the
project's ALS settings (``conf/``; factors, regularization, alpha, iterations, seed,
threads), it times:

1. ``train_model`` with ``als.backend: implicit``, end to end from the DataFrame: dense
   indexing in Spark, the memory-bound check, collecting the matrix, the fit;
2. a bare ``implicit.als.AlternatingLeastSquares(...).fit`` on the same CSR matrix with the
   same hyperparameters (and the same one-thread BLAS): the library alone, so 1 / 2 is our
   overhead;
3. ``train_model`` with ``als.backend: spark`` (MLlib, implicitPrefs) on the same pairs,
   including bringing the factors back to the driver: 3 / 1 is the price of scaling out.

It then computes ``similar_items`` (top ``als.similar_top_n``) for both models and prints
how many of each item's neighbours the backends share, next to what chance would give.
Each timing is the median of ``--repeat`` runs, after a warm-up (Spark's JVM, implicit's
imports); all runs are printed.

Data:

- default: MovieLens-100k (``u.data``: user, item, rating, timestamp); weight = rating.
- ``--warehouse PATH --date D``: the pairs of a pipeline warehouse's ``clean.events``
  window ending D (``interactions``: decayed event weights), with the settings of the
  project configuration (``RECSYS_ENV``, ``RECSYS__*`` variables). Nothing is written.

    .venv/bin/python bench/als.py
    .venv/bin/python bench/als.py --warehouse bench_work/warehouse --date 2015-06-02 --repeat 1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib import constants as C
from recsys_lib.config import AlsSettings, Settings, load_settings
from recsys_lib.models.als import (
    WEIGHT,
    AlsModel,
    build_matrix,
    interactions,
    train_model,
)

REPO = Path(__file__).resolve().parents[1]

ML_DEFAULT = REPO.parent / "shared" / "data" / "movielens-100k"


def settings_for(warehouse: Path | None) -> Settings:
    """The project's settings; ``warehouse`` (if given) overrides ``paths.warehouse``."""
    environ = {"RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"), **os.environ}
    if warehouse is not None:
        environ["RECSYS__PATHS__WAREHOUSE"] = str(warehouse.resolve())
    home = Path(environ.get("RECSYS_HOME", REPO))
    conf_dir = Path(environ.get("RECSYS_CONF_DIR", REPO / "conf"))
    return load_settings(conf_dir=conf_dir, home=home, environ=environ)


def movielens_pairs(spark: Any, path: Path) -> Any:
    name = "u.data.gz" if (path / "u.data.gz").exists() else "u.data"
    ratings = pd.read_csv(path / name, sep="\t", names=["user", "item", "rating", "ts"])
    frame = pd.DataFrame(
        {
            C.USER_ID: ratings["user"].astype(str),
            C.ITEM_ID: ratings["item"].astype(np.int64),
            WEIGHT: ratings["rating"].astype(np.float64),
        }
    )
    return spark.createDataFrame(frame, f"{C.USER_ID} string, {C.ITEM_ID} bigint, {WEIGHT} double")


def warehouse_pairs(spark: Any, settings: Settings, run_date: dt.date) -> Any:
    from recsys_lib.dates import window
    from recsys_lib.warehouse.storage import read_window
    from recsys_lib.warehouse.tables import CLEAN_EVENTS

    days = window(run_date, settings.als.window_days)
    print(f"clean.events {days} in {settings.warehouse}", flush=True)
    return interactions(read_window(spark, settings, CLEAN_EVENTS, days), settings.als, run_date)


def bare_fit(matrix: Any, als: AlsSettings) -> None:
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        AlternatingLeastSquares(
            factors=als.factors,
            regularization=als.regularization,
            alpha=als.alpha,
            iterations=als.iterations,
            num_threads=als.threads,
            random_state=als.seed,
        ).fit(matrix, show_progress=False)


def median_time(label: str, run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeat`` runs, and the last run's result."""
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"  {label:<44} {statistics.median(seconds):8.2f} s   (runs: {runs})", flush=True)
    return statistics.median(seconds), result


def neighbour_lists(spark: Any, model: AlsModel, als: AlsSettings) -> dict[int, set[int]]:
    from recsys_lib.sources.similar import similar_items

    rows = similar_items(spark, model, als.similar_top_n, als.similar_batch_rows).toPandas()
    grouped = rows.groupby(C.ITEM_ID)[C.SIMILAR_ITEM_ID].agg(set)
    return dict(zip(grouped.index.to_numpy(np.int64).tolist(), grouped.to_list(), strict=True))


def compare(spark: Any, pairs: Any, als: AlsSettings, repeat: int) -> dict[str, float]:
    pairs = pairs.cache()
    nnz = pairs.count()
    implicit_als = dataclasses.replace(als, backend="implicit")
    spark_als = dataclasses.replace(als, backend="spark")
    matrix, _, _ = build_matrix(spark, pairs, implicit_als)
    bare_fit(matrix[:10], dataclasses.replace(als, iterations=1))  # imports, outside the timings
    print(
        f"  {matrix.shape[0]} users x {matrix.shape[1]} items, {nnz} pairs; factors "
        f"{als.factors}, iterations {als.iterations}, regularization {als.regularization}, "
        f"alpha {als.alpha}, threads {als.threads}, "
        f"spark.sql.shuffle.partitions {spark.conf.get('spark.sql.shuffle.partitions')}",
        flush=True,
    )
    ours, (implicit_model, implicit_figures) = median_time(
        "train_model implicit (end to end)", lambda: train_model(spark, pairs, implicit_als), repeat
    )
    bare, _ = median_time(
        "bare implicit fit (same CSR matrix)", lambda: bare_fit(matrix, als), repeat
    )
    mllib, (spark_model, spark_figures) = median_time(
        "train_model spark (MLlib, end to end)",
        lambda: train_model(spark, pairs, spark_als),
        repeat,
    )
    print(
        f"  implicit: prepare {implicit_figures['prepare_seconds']:.2f} s + fit "
        f"{implicit_figures['train_seconds']:.2f} s; spark: prepare and collect "
        f"{spark_figures['prepare_seconds']:.2f} s + fit {spark_figures['train_seconds']:.2f} s "
        "(last runs)"
    )
    print(f"  overhead of train_model implicit over the bare fit: {ours / bare:.2f}x")
    print(f"  spark backend vs implicit backend (end to end): {mllib / ours:.2f}x")

    started = time.perf_counter()
    a = neighbour_lists(spark, implicit_model, als)
    b = neighbour_lists(spark, spark_model, als)
    similar_seconds = (time.perf_counter() - started) / 2
    shared = [len(a[i] & b.get(i, set())) / max(1, len(a[i])) for i in a]
    n_items = len(implicit_model.item_ids)
    chance = min(als.similar_top_n, n_items - 1) / max(1, n_items - 1)
    overlap = float(np.mean(shared)) if shared else 0.0
    print(
        f"  similar items (top {als.similar_top_n}, {similar_seconds:.1f} s a model): the "
        f"backends share {overlap:.3f} of each item's neighbours on average "
        f"(median {np.median(shared):.3f}; chance {chance:.3f})",
        flush=True,
    )
    pairs.unpersist()
    return {
        "implicit_seconds": ours,
        "bare_seconds": bare,
        "spark_seconds": mllib,
        "overhead": ours / bare,
        "spark_vs_implicit": mllib / ours,
        "neighbour_overlap": overlap,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--movielens", type=Path, default=ML_DEFAULT, help="MovieLens-100k folder")
    parser.add_argument("--warehouse", type=Path, help="a pipeline warehouse instead")
    parser.add_argument("--date", type=dt.date.fromisoformat, help="run date (with --warehouse)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    args = parser.parse_args()
    if args.warehouse is not None and args.date is None:
        parser.error("--warehouse needs --date")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from recsys_lib.runtime.spark import get_spark

    settings = settings_for(args.warehouse)
    spark = get_spark(settings, app_name="bench-als")
    spark.sparkContext.setLogLevel("ERROR")
    if args.warehouse is None:
        print(f"MovieLens-100k from {args.movielens} (weight = rating)", flush=True)
        pairs = movielens_pairs(spark, args.movielens)
    else:
        pairs = warehouse_pairs(spark, settings, args.date)
    compare(spark, pairs, settings.als, args.repeat)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
