"""Benchmark: category completion (recsys_lib.models.categories) on real and generated data.

MovieLens-100k (default): each rating is a one-view interaction on the day of its timestamp;
a movie's category is its first genre in ``u.genre`` order, in a one-level tree (the 19
genres are roots). A deterministic 20 % of the movies lose their genre; the run fills them
and we measure, on those hidden movies, top-1 / top-3 accuracy of the model's genre ranking
and whether its top genre is any of the movie's genres, each against guessing the most
frequent genre(s). The model's own holdout (among the movies that kept their genre) is
printed too.

``--shop PROFILE[:SCALE]`` (repeatable): a generated shop (``generate_shop``; profiles
``default`` with its generated tree, ``flat`` with ~1,000 categories and no hierarchy,
``retailrocket`` with the real RetailRocket tree): per (user, item, day) view / cart /
purchase counts from the daily event files, items from ``items.csv`` and the shop's tree.
The items the generator left without a ``categoryid`` property are hidden (if it left
fewer than 10 %, a deterministic 10 % more is hidden here) and measured against
``items.csv``. ``--stage-runs N`` also loads the shop's history into a warehouse (ingest,
clean, aggregate in one pass) and runs the ``items`` stage for its last day N times in the
same session: the first run is cold, the later ones warm. ``--roots N`` gives the generated
trees N top-level categories (the crossover between LightGBM and the vote).

Settings come from ``conf/`` (profile ``local``) and any ``RECSYS__...`` variable of the
environment, e.g. ``RECSYS__COMPLETION__MAX_CLASSES=0`` for the neighbour vote everywhere.

    .venv/bin/python bench/categories.py                      # MovieLens only
    .venv/bin/python bench/categories.py --skip-movielens --shop default \\
        --shop flat --shop retailrocket:0.02 --stage-runs 3
    RECSYS__COMPLETION__MAX_CLASSES=1000 .venv/bin/python bench/categories.py \\
        --skip-movielens --shop flat --roots 150          # LightGBM at 137 classes
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_lib import constants as C
from recsys_lib.config import Settings, load_settings
from recsys_lib.models.categories import TOP_K_CATEGORIES, CompletionResult
from recsys_lib.models.categories.completion import complete_categories
from recsys_lib.models.categories.training import unit_hash
from recsys_lib.transforms.privacy import use_demo_key
from recsys_lib.warehouse.tables import CLEAN_ITEMS, USER_ITEM_DAILY

REPO = Path(__file__).resolve().parents[1]

ML_DEFAULT = REPO.parent / "shared" / "data" / "movielens-100k"
REAL_TREE = REPO.parent / "shared" / "data" / "retailrocket" / "category_tree.csv.gz"
ML_HIDDEN_SHARE = 0.2
SHOP_HIDDEN_SHARE = 0.1
HIDE_SEED = 1  # not the completion seed: hiding and the model's holdout stay independent
N_GENRES = 19
CATEGORIES_DDL = (
    f"{C.CATEGORY_ID} bigint, {C.CATEGORY_PATH} array<bigint>, {C.TOP_CATEGORY_ID} bigint, "
    f"{C.CATEGORY_DEPTH} int, is_leaf boolean"
)

timings: dict[str, float] = {}


@contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - started
    print(f"  {step}: {timings[step]:.1f} s", flush=True)


def settings_for(
    work: Path, window_days: int | None = None, extra: dict[str, str] | None = None
) -> Settings:
    environ = {k: v for k, v in os.environ.items() if k.startswith("RECSYS__")}
    environ["RECSYS__PATHS__JARS_CACHE"] = str(REPO / ".cache" / "ivy")
    settings = load_settings(
        "local", conf_dir=REPO / "conf", home=work, environ={**environ, **(extra or {})}
    )
    use_demo_key(settings)  # generated shops: the public key, set on purpose
    if window_days is not None:
        completion = dataclasses.replace(settings.completion, window_days=window_days)
        settings = dataclasses.replace(settings, completion=completion)
    return settings


def items_frame(
    run_date: dt.date,
    ids: np.ndarray,
    category: np.ndarray,
    hidden: np.ndarray,
    paths: dict[int, tuple[list[int], int, int]],
    price: np.ndarray | None,
    first_seen: list[dt.date],
) -> pd.DataFrame:
    """clean.items rows: catalogue category unless hidden (then all category columns null)."""
    rows = []
    for i, item in enumerate(ids):
        path, top, depth = paths[int(category[i])]
        known = not hidden[i]
        rows.append(
            (
                run_date,
                int(item),
                int(category[i]) if known else None,
                path if known else None,
                top if known else None,
                depth if known else None,
                C.SOURCE_CATALOGUE if known else None,
                1.0 if known else None,
                None if price is None or np.isnan(price[i]) else float(price[i]),
                None,
                first_seen[i],
                None,
            )
        )
    return pd.DataFrame(rows, columns=CLEAN_ITEMS.column_names)


def measure_hidden(
    result: CompletionResult,
    truth: pd.DataFrame,
    baseline_order: list[int],
    any_of: Callable[[int, int], bool] | None = None,
) -> dict[str, float]:
    """Accuracy on the hidden items (truth: item_id, top_category_id, category_id)."""
    assert result.predictions is not None, result.note
    predicted = result.predictions.select(C.ITEM_ID, TOP_K_CATEGORIES).toPandas()
    frame = truth.merge(predicted, on=C.ITEM_ID, how="left")
    has = frame[TOP_K_CATEGORIES].notna()
    ranked = frame.loc[has, TOP_K_CATEGORIES].map(list)
    top = frame.loc[has, C.TOP_CATEGORY_ID].to_numpy()
    hits1 = np.array([t == r[0] for t, r in zip(top, ranked, strict=True)])
    hits3 = np.array([t in r[:3] for t, r in zip(top, ranked, strict=True)])
    figures = {
        "hidden": float(len(frame)),
        "hidden_predicted": float(has.sum()),
        "hidden_top1": float(hits1.mean()),
        "hidden_top3": float(hits3.mean()),
        "hidden_base_top1": float(np.isin(top, baseline_order[:1]).mean()),
        "hidden_base_top3": float(np.isin(top, baseline_order[:3]).mean()),
    }
    if any_of is not None:
        ids = frame.loc[has, C.ITEM_ID].to_numpy()
        figures["hidden_any"] = float(
            np.mean([any_of(int(i), int(r[0])) for i, r in zip(ids, ranked, strict=True)])
        )
        figures["hidden_base_any"] = float(
            np.mean([any_of(int(i), baseline_order[0]) for i in ids])
        )
    filled = (
        result.items.filter(f"{C.CATEGORY_SOURCE} = '{C.SOURCE_PREDICTED}'")
        .select(C.ITEM_ID, C.CATEGORY_ID, C.TOP_CATEGORY_ID, C.CATEGORY_DEPTH)
        .toPandas()
        .merge(truth, on=C.ITEM_ID, suffixes=("", "_true"))
    )
    figures["filled"] = float(len(filled))
    figures["filled_share_of_hidden"] = len(filled) / max(1, len(frame))
    figures["filled_top_precision"] = float(
        (filled[C.TOP_CATEGORY_ID] == filled[f"{C.TOP_CATEGORY_ID}_true"]).mean()
        if len(filled)
        else 0.0
    )
    leaf = filled[filled[C.CATEGORY_DEPTH] > 0]
    figures["filled_leaf"] = float(len(leaf))
    figures["filled_leaf_precision"] = float(
        (leaf[C.CATEGORY_ID] == leaf[f"{C.CATEGORY_ID}_true"]).mean() if len(leaf) else 0.0
    )
    if any_of is not None and len(filled):
        figures["filled_any_precision"] = float(
            np.mean(
                [
                    any_of(int(i), int(c))
                    for i, c in zip(filled[C.ITEM_ID], filled[C.CATEGORY_ID], strict=True)
                ]
            )
        )
    return figures


# --- MovieLens-100k ------------------------------------------------------------------------


def movielens(spark: Any, path: Path, work: Path) -> dict[str, float]:
    print(f"MovieLens-100k from {path}", flush=True)
    with timed("movielens: read"):
        ratings = pd.read_csv(
            path / "u.data.gz" if (path / "u.data.gz").exists() else path / "u.data",
            sep="\t",
            names=["user", "item", "rating", "ts"],
        )
        item_file = path / "u.item.gz" if (path / "u.item.gz").exists() else path / "u.item"
        movies = pd.read_csv(item_file, sep="|", header=None, encoding="iso-8859-1")
        ids = movies[0].to_numpy(dtype=np.int64)
        flags = movies.iloc[:, 5 : 5 + N_GENRES].to_numpy(dtype=bool)
        assert flags.any(axis=1).all(), "a movie without any genre flag"
        genre = flags.argmax(axis=1).astype(np.int64)  # first genre in u.genre order
        genres_of = {
            int(i): set(np.flatnonzero(f).tolist()) for i, f in zip(ids, flags, strict=True)
        }
        hidden = unit_hash(ids, HIDE_SEED) < ML_HIDDEN_SHARE
        ratings["dt"] = pd.to_datetime(ratings["ts"], unit="s").dt.date
        run_date = max(ratings["dt"])
        first = ratings.groupby("item")["dt"].min()
        paths = {g: ([g], g, 0) for g in range(N_GENRES)}
        items = items_frame(
            run_date, ids, genre, hidden, paths, None, [first.get(int(i), run_date) for i in ids]
        )
        daily = pd.DataFrame(
            {
                C.DT: ratings["dt"],
                C.USER_ID: ratings["user"].astype(str),
                C.ITEM_ID: ratings["item"].astype(np.int64),
                C.VIEWS: 1,
                C.CARTS: 0,
                C.PURCHASES: 0,
                C.LAST_EVENT_TS: pd.to_datetime(ratings["ts"], unit="s"),
            }
        )
        window = (run_date - min(ratings["dt"])).days + 1
        settings = settings_for(work / "movielens", window_days=window)
        items_df = spark.createDataFrame(items, CLEAN_ITEMS.schema).cache()
        daily_df = spark.createDataFrame(daily, USER_ITEM_DAILY.schema).cache()
        categories = spark.createDataFrame(
            [(g, [g], g, 0, True) for g in range(N_GENRES)], CATEGORIES_DDL
        )
        print(
            f"  {len(ratings)} ratings, {len(ids)} movies, {int(hidden.sum())} hidden, "
            f"window {window} days ending {run_date}; {items_df.count()} items, "
            f"{daily_df.count()} interactions",
            flush=True,
        )
    with timed("movielens: complete_categories"):
        result = complete_categories(spark, settings, items_df, daily_df, categories, run_date)
    with timed("movielens: measure hidden"):
        visible = genre[~hidden]
        values, counts = np.unique(visible, return_counts=True)
        order = [int(v) for v in values[np.lexsort((values, -counts))]]
        truth = pd.DataFrame(
            {
                C.ITEM_ID: ids[hidden],
                C.TOP_CATEGORY_ID: genre[hidden],
                C.CATEGORY_ID: genre[hidden],
            }
        )
        figures = measure_hidden(result, truth, order, lambda i, g: g in genres_of[i])
    return {**result.figures, **figures}


# --- generated shop ------------------------------------------------------------------------


def shop(spark: Any, work: Path, profile: str, scale: float) -> dict[str, float]:
    from pyspark.sql import functions as F

    from recsys_lib.devtools.generator import generate_shop
    from recsys_lib.io.catalogue import read_category_tree
    from recsys_lib.transforms.catalogue import categories_frame

    out = work / f"shop_{profile}_{scale:g}"
    print(f"generated shop (profile {profile}, scale {scale:g}) in {out}", flush=True)
    with timed(f"{profile}: generate"):
        tree_file = REAL_TREE if profile == "retailrocket" else None
        summary = generate_shop(out, profile, scale=scale, category_tree=tree_file)
        print(
            f"  {summary.items} items, {summary.categories} categories, "
            f"{sum(summary.events.values())} events over {summary.days} days",
            flush=True,
        )
    with timed(f"{profile}: build frames"):
        tree = read_category_tree(str(out / "category_tree.csv"))
        categories = categories_frame(spark, tree).cache()
        paths = {
            int(r[C.CATEGORY_ID]): (
                list(r[C.CATEGORY_PATH]),
                r[C.TOP_CATEGORY_ID],
                r[C.CATEGORY_DEPTH],
            )
            for r in categories.collect()
        }
        catalogue = pd.read_csv(out / "items.csv")
        ids = catalogue[C.RR_ITEM_ID].to_numpy(dtype=np.int64)
        props = pd.read_csv(out / "item_properties.csv", dtype=str)
        with_category = set(
            props.loc[props[C.RR_PROPERTY] == C.RR_PROP_CATEGORY, C.RR_ITEM_ID].astype(np.int64)
        )
        hidden = ~np.isin(ids, list(with_category))
        source = f"generator ({int(hidden.sum())} without a categoryid property)"
        if hidden.mean() < SHOP_HIDDEN_SHARE:
            hidden |= unit_hash(ids, HIDE_SEED) < SHOP_HIDDEN_SHARE
            source += f" and {SHOP_HIDDEN_SHARE:.0%} by hash"
        run_date = summary.last_day
        category = catalogue[C.RR_CATEGORY_ID].to_numpy(dtype=np.int64)
        items = items_frame(
            run_date,
            ids,
            category,
            hidden,
            paths,
            catalogue[C.GEN_PRICE].to_numpy(dtype=np.float64),
            [dt.date.fromisoformat(d) for d in catalogue[C.GEN_FIRST_SEEN]],
        )
        items_df = spark.createDataFrame(items, CLEAN_ITEMS.schema).cache()
        raw = spark.read.csv(str(out / "events"), header=True, inferSchema=False)
        ts = F.col(C.RR_TIMESTAMP).try_cast("long")
        events = raw.select(
            F.timestamp_millis(ts).alias("ts"),
            F.col(C.RR_VISITOR_ID).alias(C.USER_ID),
            F.col(C.RR_ITEM_ID).try_cast("long").alias(C.ITEM_ID),
            F.col(C.RR_EVENT).alias("event"),
        ).filter(
            F.col("ts").isNotNull()
            & F.col(C.USER_ID).isNotNull()
            & F.col(C.ITEM_ID).isNotNull()
            & F.col("event").isin(C.RR_VIEW, C.RR_ADDTOCART, C.RR_TRANSACTION)
        )
        daily_df = (
            events.groupBy(F.to_date("ts").alias(C.DT), C.USER_ID, C.ITEM_ID)
            .agg(
                *[
                    F.count(F.when(F.col("event") == name, F.lit(1))).alias(column)
                    for name, column in (
                        (C.RR_VIEW, C.VIEWS),
                        (C.RR_ADDTOCART, C.CARTS),
                        (C.RR_TRANSACTION, C.PURCHASES),
                    )
                ],
                F.max("ts").alias(C.LAST_EVENT_TS),
            )
            .cache()
        )
        print(
            f"  {len(ids)} items, {int(hidden.sum())} hidden: {source}; "
            f"{daily_df.count()} user-item-days",
            flush=True,
        )
    with timed(f"{profile}: complete_categories"):
        settings = settings_for(work / f"home_{profile}")
        result = complete_categories(spark, settings, items_df, daily_df, categories, run_date)
    with timed(f"{profile}: measure hidden"):
        truth = pd.DataFrame(
            {
                C.ITEM_ID: ids[hidden],
                C.TOP_CATEGORY_ID: [paths[int(c)][1] for c in category[hidden]],
                C.CATEGORY_ID: category[hidden],
            }
        )
        visible_tops = np.array([paths[int(c)][1] for c in category[~hidden]], dtype=np.int64)
        values, counts = np.unique(visible_tops, return_counts=True)
        order = [int(v) for v in values[np.lexsort((values, -counts))]]
        figures = measure_hidden(result, truth, order)
    for frame in (items_df, daily_df, categories):
        frame.unpersist()
    return {**result.figures, **figures}


def stage_runs(work: Path, profile: str, scale: float, runs: int) -> dict[str, float]:
    """The ``items`` stage of the shop's last day, ``runs`` times in one session, on a
    warehouse holding the shop's history (ingest, clean, aggregate over every day)."""
    from recsys_lib.cli import backfill
    from recsys_lib.constants import HISTORY_STAGES, ITEMS_STAGE
    from recsys_lib.dates import DayRange
    from recsys_lib.pipeline import run_stage
    from recsys_lib.runtime.spark import get_spark

    out = work / f"shop_{profile}_{scale:g}"
    manifest = pd.read_json(out / "manifest.json", typ="series")
    first = dt.date.fromisoformat(str(manifest["start"]))
    last = first + dt.timedelta(days=int(manifest["days"]) - 1)
    home = work / f"warehouse_{profile}_{scale:g}"
    settings = settings_for(
        home,
        extra={
            "RECSYS__INPUT__EVENTS_PATH": str(out / "events"),
            "RECSYS__INPUT__ITEM_PROPERTIES_PATH": str(out / "item_properties.csv"),
            "RECSYS__INPUT__CATEGORY_TREE_PATH": str(out / "category_tree.csv"),
        },
    )
    with timed(f"{profile}: history ({first} .. {last})"):
        backfill(settings, HISTORY_STAGES, DayRange(first, last))
    spark = get_spark(settings)
    seconds = []
    for run in range(runs):
        figures = run_stage(spark, settings, ITEMS_STAGE, last)
        seconds.append(figures["seconds"])
        print(
            f"  items stage run {run + 1}: {figures['seconds']:.1f} s "
            f"(completion {figures.get('completion.seconds', 0.0):.1f} s, "
            f"filled {figures.get('completion.filled', 0.0):.0f})",
            flush=True,
        )
    warm = seconds[1:] or seconds
    return {"stage_first_seconds": seconds[0], "stage_warm_seconds": statistics.median(warm)}


# --- report --------------------------------------------------------------------------------

ROWS = (
    ("method: 1 = neighbour vote, 0 = LightGBM", "method_vote", "{:.0f}"),
    ("labelled with behaviour", "labelled_with_behaviour", "{:.0f}"),
    ("classes (top level)", "n_classes", "{:.0f}"),
    ("holdout items", "n_holdout", "{:.0f}"),
    ("holdout top-1: model", "holdout_top1", "{:.3f}"),
    ("holdout top-1: most frequent", "baseline_top1", "{:.3f}"),
    ("holdout top-3: model", "holdout_top3", "{:.3f}"),
    ("holdout top-3: most frequent", "baseline_top3", "{:.3f}"),
    (
        "holdout: filled share / precision",
        ("holdout_filled_coverage", "holdout_filled_precision"),
        "{:.3f} / {:.3f}",
    ),
    ("hidden items (with prediction)", ("hidden", "hidden_predicted"), "{:.0f} ({:.0f})"),
    ("hidden top-1: model", "hidden_top1", "{:.3f}"),
    ("hidden top-1: most frequent", "hidden_base_top1", "{:.3f}"),
    ("hidden top-3: model", "hidden_top3", "{:.3f}"),
    ("hidden top-3: most frequent", "hidden_base_top3", "{:.3f}"),
    ("hidden: top-1 is any genre: model", "hidden_any", "{:.3f}"),
    ("hidden: top-1 is any genre: most freq", "hidden_base_any", "{:.3f}"),
    ("filled (share of hidden)", ("filled", "filled_share_of_hidden"), "{:.0f} ({:.3f})"),
    ("filled: top-level precision", "filled_top_precision", "{:.3f}"),
    ("filled: any-genre precision", "filled_any_precision", "{:.3f}"),
    (
        "filled at a leaf / leaf precision",
        ("filled_leaf", "filled_leaf_precision"),
        "{:.0f} / {:.3f}",
    ),
    ("holdout leaf vote accuracy", "leaf_accuracy", "{:.3f}"),
    ("best iteration", "best_iteration", "{:.0f}"),
    (
        "features / train / predict s",
        ("features_seconds", "train_seconds", "predict_seconds"),
        "{:.1f} / {:.1f} / {:.1f}",
    ),
    ("complete_categories s", "seconds", "{:.1f}"),
    (
        "items stage s: first / warm median",
        ("stage_first_seconds", "stage_warm_seconds"),
        "{:.1f} / {:.1f}",
    ),
)


def table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    lines = [f"| {'figure':<40} | " + " | ".join(f"{n:>16}" for n in names) + " |"]
    lines.append("|" + "-" * 42 + "|" + "|".join("-" * 18 for _ in names) + "|")
    for label, keys, fmt in ROWS:
        keys_t = (keys,) if isinstance(keys, str) else keys
        cells = []
        for name in names:
            values = [results[name].get(k) for k in keys_t]
            cells.append("-" if any(v is None for v in values) else fmt.format(*values))
        if any(c != "-" for c in cells):
            lines.append(f"| {label:<40} | " + " | ".join(f"{c:>16}" for c in cells) + " |")
    return "\n".join(lines)


def with_roots(profiles: list[str], roots: int) -> None:
    """This run's generator profiles ``profiles`` with ``roots`` top-level categories."""
    from recsys_lib.devtools import generator

    for name in profiles:
        generator.PROFILES[name] = dataclasses.replace(generator.PROFILES[name], n_roots=roots)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--movielens", type=Path, default=ML_DEFAULT, help="MovieLens-100k folder")
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument(
        "--shop",
        action="append",
        default=[],
        nargs="?",
        const="default",
        help="a generated shop, PROFILE[:SCALE] (default | flat | retailrocket); repeatable",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="scale of a shop without one")
    parser.add_argument("--stage-runs", type=int, default=0, help="items stage runs per shop")
    parser.add_argument(
        "--roots",
        type=int,
        default=0,
        help="top-level categories of the generated trees instead of the profiles' own\n"
        "(the crossover between LightGBM and the vote: flat with 150 or 300)",
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench_work" / "categories")
    args = parser.parse_args()
    if args.roots < 0:
        parser.error("--roots: a number of top-level categories, or 0 for the profiles' own")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from recsys_lib.runtime.spark import get_spark

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    with timed("spark session"):
        spark = get_spark(settings_for(work), app_name="bench-categories")
    results: dict[str, dict[str, float]] = {}
    generated = sorted({spec.partition(":")[0] for spec in args.shop} - {"retailrocket"})
    if args.roots:
        with_roots(generated, args.roots)
        work = work / f"roots_{args.roots}"  # a shop and a warehouse of their own
        work.mkdir(exist_ok=True)
    if not args.skip_movielens:
        results["movielens-100k"] = movielens(spark, args.movielens, work)
    for spec in args.shop:
        profile, _, scale_text = spec.partition(":")
        scale = float(scale_text) if scale_text else args.scale
        figures = shop(spark, work, profile, scale)
        if args.stage_runs:
            figures.update(stage_runs(work, profile, scale, args.stage_runs))
        roots = f" r{args.roots}" if args.roots and profile in generated else ""
        results[f"{profile} x{scale:g}{roots}"] = figures
    print()
    print(table(results))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
