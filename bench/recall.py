"""Benchmark: recall of every candidate source and of their union on MovieLens-100k.

The protocol is a last-day holdout by timestamp. The ratings of the last calendar day (UTC)
in ``u.data`` are the holdout; everything before trains. The candidate sources of the
``candidates`` stage then run on the training part, through the same functions as the
nightly stage: ALS, similar items, bought together, popular and new arrivals by genre,
recent views. Their recall@k is measured on the movies each holdout user rated that day.

MovieLens is a rating log, not a shop. Ratings become events: 5 stars = purchase,
4 = cart, 1-3 = view. A movie's category is its first genre, and it is first seen on the
day of its first rating. Every window (ALS, active users, bought-together, popularity)
spans the whole log, because ratings are spread over seven months. The portraits' top
categories still use their 90-day window; users without one get the global lists.

    .venv/bin/python bench/recall.py [--movielens ../shared/data/movielens-100k]

Prints figures; asserts nothing. The generated shop's recall is printed by ``make demo``
(summary) and kept in ``ops.model_evaluation``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings, load_settings
from recsys_lib.evaluation import (
    HOLDOUT_USERS_COVERED,
    MEAN_LIST_SIZE,
    RECALL,
    USERS_EVALUATED,
    candidate_recall,
)
from recsys_lib.models.als import interactions, train_model
from recsys_lib.runtime.spark import get_spark
from recsys_lib.sources.similar import similar_items
from recsys_lib.stages.aggregate import item_daily, user_item_daily
from recsys_lib.stages.candidates import candidates_of
from recsys_lib.stages.features import price_percentiles
from recsys_lib.transforms.portraits import item_interest

REPO = Path(__file__).resolve().parents[1]

ML_DEFAULT = REPO.parent / "shared" / "data" / "movielens-100k"
WHOLE_LOG_DAYS = 400
GENRES = ("unknown", "action", "adventure", "animation", "children", "comedy", "crime",
          "documentary", "drama", "fantasy", "film_noir", "horror", "musical", "mystery",
          "romance", "sci_fi", "thriller", "war", "western")  # fmt: skip


def bench_settings() -> Settings:
    """The project's settings with every window spanning the whole log, every user on the
    full path (a source's recall is measured for all users)."""
    days = str(WHOLE_LOG_DAYS)
    environ = {
        "RECSYS__PATHS__JARS_CACHE": str(REPO / ".cache" / "ivy"),
        "RECSYS__ALS__WINDOW_DAYS": days,
        "RECSYS__CANDIDATES__ACTIVE_DAYS": days,
        "RECSYS__BOUGHT_TOGETHER__WINDOW_DAYS": days,
        "RECSYS__EASE__WINDOW_DAYS": days,
        "RECSYS__POPULAR__WINDOW_DAYS": days,
        "RECSYS__CANDIDATES__THIN_GROUPS": "[]",
        **os.environ,
    }
    return load_settings(conf_dir=REPO / "conf", home=REPO, environ=environ)


def read_movielens(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, items) as pandas frames in the pipeline's column names."""
    ratings = pd.read_csv(path / "u.data.gz", sep="\t", names=["user", "item", "rating", "ts"])
    stamp = pd.to_datetime(ratings["ts"], unit="s", utc=True)
    kind = ratings["rating"].map(lambda r: C.PURCHASE if r == 5 else C.CART if r == 4 else C.VIEW)
    events = pd.DataFrame(
        {
            C.DT: stamp.dt.date,
            C.EVENT_TS: stamp.dt.tz_localize(None),
            C.USER_ID: ratings["user"].astype(str),
            C.ITEM_ID: ratings["item"].astype("int64"),
            C.EVENT_TYPE: kind,
        }
    )
    columns = ["item", "title", "release", "video", "url", *GENRES]
    movies = pd.read_csv(path / "u.item.gz", sep="|", names=columns, encoding="latin-1")
    first_genre = movies[list(GENRES)].to_numpy().argmax(axis=1) + 1
    first_seen = events.groupby(C.ITEM_ID)[C.DT].min()
    items = pd.DataFrame(
        {
            C.ITEM_ID: movies["item"].astype("int64"),
            C.CATEGORY_ID: first_genre.astype("int64"),
            C.TOP_CATEGORY_ID: first_genre.astype("int64"),
            C.PRICE: float("nan"),
        }
    )
    items[C.FIRST_SEEN] = items[C.ITEM_ID].map(first_seen)
    return events, items.dropna(subset=[C.FIRST_SEEN])


def run(spark: Any, settings: Settings, path: Path) -> None:
    events_pd, items_pd = read_movielens(path)
    holdout_day = max(events_pd[C.DT])
    run_date = holdout_day - dt.timedelta(days=1)
    events = spark.createDataFrame(events_pd).withColumn(
        C.TRANSACTION_ID, F.lit(None).cast("string")
    )
    train = events.filter(F.col(C.DT) < F.lit(holdout_day)).cache()
    holdout = events.filter(F.col(C.DT) == F.lit(holdout_day))
    items = price_percentiles(
        spark.createDataFrame(items_pd).withColumn(C.PRICE, F.lit(None).cast("double"))
    ).cache()
    started = time.perf_counter()
    model, _ = train_model(spark, interactions(train, settings.als, run_date), settings.als)
    similar = similar_items(
        spark, model, settings.als.similar_top_n, settings.als.similar_batch_rows
    ).cache()
    interest = item_interest(
        user_item_daily(train),
        items.select(C.ITEM_ID, C.CATEGORY_ID, C.PRICE, C.PRICE_PCT_IN_CATEGORY),
        run_date,
        settings.features,
    )
    portraits = interest.filter(F.col(C.TOP_CATEGORIES).isNotNull())
    found = candidates_of(
        train, portraits, items, item_daily(train), model, similar, run_date, settings, None
    )
    together = found.together
    candidates = found.union.cache()
    n_candidates = candidates.count()
    seconds = time.perf_counter() - started
    figures = {
        (v, m, k): x
        for v, m, k, x in candidate_recall(candidates, holdout, settings.candidates.recall_k)
    }
    holdout_users = holdout.select(C.USER_ID).distinct().count()
    print(f"MovieLens-100k, last-day holdout {holdout_day}: {holdout.count()} ratings of "
          f"{holdout_users} users; training: {train.count()} ratings up to {run_date}")  # fmt: skip
    print(
        f"candidates: {n_candidates} rows for {candidates.select(C.USER_ID).distinct().count()} "
        f"users in {seconds:.1f}s; bought-together pairs {together.count()}, similar rows "
        f"{similar.count()}"
    )
    print(
        f"evaluated users {figures[('all', USERS_EVALUATED, 0)]:.0f}; holdout users with "
        f"candidates {figures[(C.SOURCE_UNION, HOLDOUT_USERS_COVERED, 0)]:.3f}; mean list size "
        f"{figures[(C.SOURCE_UNION, MEAN_LIST_SIZE, 0)]:.1f}"
    )
    ks = (*settings.candidates.recall_k, 0)
    print(f"{'source':<16}" + "".join(f"{'recall@' + str(k) if k else 'all':>12}" for k in ks))
    for variant in (*C.CANDIDATE_SOURCES, C.SOURCE_UNION):
        row = "".join(f"{figures[(variant, RECALL, k)]:>12.3f}" for k in ks)
        print(f"{variant:<16}{row}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--movielens", type=Path, default=ML_DEFAULT, help="MovieLens-100k folder")
    args = parser.parse_args()
    settings = bench_settings()
    spark = get_spark(settings, app_name="bench-recall")
    spark.sparkContext.setLogLevel("ERROR")
    run(spark, settings, args.movielens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
