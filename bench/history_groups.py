"""Holdout quality per group of users by history: how much history earns a personal list.

Reads a warehouse with whole nights and a trained ranker (``bench/ranker_days.py``'s run, or
any other with ``--work``). For each holdout day H with a ranker evaluation, the users with
candidates on H - 1 and an event on H are split by their history in the active window
ending on H - 1 (:mod:`recsys_lib.sources.history`), and each variant's NDCG@k and recall@k
is measured per group on H's events (graded labels, as the nightly evaluation):

- ``full``: the champion ranker at the end of night H (without one: the ranker night H
  trained) over the day's whole union (today's path);
- ``union`` and every source alone (its own top k), ``popularity`` (the global list);
- ``cheap_union``: the union of the sources that need neither ALS nor EASE scoring
  (similar, bought_together, popular, new_arrivals, recent_views), in the union's order;
- ``cheap_ranker``: the same champion over that cheaper union cut at ``--thin-max`` per
  user, with the ALS and EASE columns empty, as the ranker would see them.
- ``cheap_ease_ranker``: ``cheap_ranker`` with the EASE source kept (its scoring costs a user's
  items x the catalogue, small for a thin history); ``cheap_ranker_2x``: the cheap union cut
  at twice ``--thin-max``;

    .venv/bin/python bench/history_groups.py --work bench_work/ranker_days
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ranker_days import REPO, settings_for  # noqa: E402

CHEAP_SOURCES = ("similar", "bought_together", "popular", "new_arrivals", "recent_views")


def cheap_candidates(candidates, max_per_user, sources=CHEAP_SOURCES):  # noqa: ANN001, ANN201
    """The day's candidates as the cheap path would have made them: only the rows a cheap
    source found (``sources``), the union's order and cut recomputed without the others."""
    from pyspark.sql import functions as F

    from recsys_lib import constants as C
    from recsys_lib.sources.union import combine

    sources = {
        s: candidates.filter(F.col(C.source_rank(s)).isNotNull()).select(
            C.USER_ID,
            C.ITEM_ID,
            F.col(C.source_score(s)).alias(C.SCORE),
            F.col(C.source_rank(s)).alias(C.RANK),
        )
        for s in sources
    }
    return combine(sources, max_per_user)


def ranked_lists(spark, settings, as_of, candidates, ranker, variant, k):  # noqa: ANN001, ANN201
    """(variant, user_id, item_id, rank): the ranker's top ``k`` of ``candidates``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from recsys_lib import constants as C
    from recsys_lib.dates import window
    from recsys_lib.models.ranker import score_frame
    from recsys_lib.transforms.ranking_features import INTERACTION_DAYS, ranking_features
    from recsys_lib.warehouse.storage import read_partition, read_window
    from recsys_lib.warehouse.tables import ITEM_FEATURES, USER_ITEM_DAILY, USER_PORTRAIT

    features = ranking_features(
        candidates,
        read_partition(spark, settings, USER_PORTRAIT, as_of),
        read_partition(spark, settings, ITEM_FEATURES, as_of),
        read_window(spark, settings, USER_ITEM_DAILY, window(as_of, INTERACTION_DAYS)),
        as_of,
    )
    order = Window.partitionBy(C.USER_ID).orderBy(F.desc(C.SCORE), F.asc(C.ITEM_ID))
    return (
        score_frame(features, ranker)
        .withColumn(C.RANK, F.row_number().over(order))
        .filter(F.col(C.RANK) <= k)
        .select(F.lit(variant).alias(C.VARIANT), C.USER_ID, C.ITEM_ID, C.RANK)
    )


def holdout_days(spark, settings, nights):  # noqa: ANN001, ANN201
    from pyspark.sql import functions as F

    from recsys_lib import constants as C
    from recsys_lib.warehouse.storage import read_table
    from recsys_lib.warehouse.tables import MODEL_EVALUATION

    days = (
        read_table(spark, settings, MODEL_EVALUATION)
        .filter((F.col(C.MODEL) == C.RANKER) & (F.col(C.VARIANT) == C.RANKER))
        .select(C.DT)
        .distinct()
        .collect()
    )
    return sorted(r[C.DT] for r in days)[-nights:]


def night_ranker(settings, night: dt.date):  # noqa: ANN001, ANN201
    """The ranker night ``night`` trained and registered (when no champion exists yet: the
    gate kept it back, and the best measured order served)."""
    import mlflow

    from recsys_lib.models.ranker import Ranker
    from recsys_lib.models.registry import Champion, client
    from recsys_lib.runtime.tracking import latest_run

    run_id = latest_run(settings, "train_ranker", night).info.run_id
    name = settings.ranker.registered_model
    versions = [
        v
        for v in client(settings).search_model_versions(f"name = '{name}'")
        if v.tags.get("recsys.run_id") == run_id
    ]
    if not versions:
        raise SystemExit(f"night {night} registered no ranker")
    number = versions[0].version
    booster = mlflow.lightgbm.load_model(f"models:/{name}/{number}")
    ranker = Ranker(booster.model_to_string(), tuple(booster.feature_name()))
    print(f"{night}: no champion; night's own ranker {name}/{number}")
    return Champion(ranker, f"{name}/{number}", str(number))


def measure_day(spark, settings, holdout: dt.date, k: int, thin_max: int) -> pd.DataFrame:  # noqa: ANN001
    """(group, variant, users, ndcg, recall) of one holdout day."""
    from pyspark.sql import functions as F

    from recsys_lib import constants as C
    from recsys_lib.dates import window
    from recsys_lib.evaluation import NDCG, RECALL, ranking_metrics
    from recsys_lib.models.registry import load_champion
    from recsys_lib.sources.history import user_history
    from recsys_lib.stages.train_ranker import baseline_lists, holdout_users
    from recsys_lib.warehouse.storage import read_partition, read_window
    from recsys_lib.warehouse.tables import CANDIDATES, CLEAN_EVENTS, POPULAR_ITEMS

    as_of = holdout - dt.timedelta(days=1)
    active = settings.candidates.active_days
    candidates = read_partition(spark, settings, CANDIDATES, as_of).cache()
    history = user_history(
        read_window(spark, settings, CLEAN_EVENTS, window(as_of, active)), as_of, active
    ).cache()
    relevant, users = holdout_users(spark, settings, holdout, candidates)
    champion = load_champion(settings, holdout) or night_ranker(settings, holdout)
    shares = {
        r[C.HISTORY_GROUP]: r["count"]
        for r in history.join(candidates.select(C.USER_ID).distinct(), C.USER_ID)
        .groupBy(C.HISTORY_GROUP)
        .count()
        .collect()
    }
    # Every variant is a per-user function of the user's candidates: only the evaluated
    # users' are ranked.
    candidates = candidates.join(users, C.USER_ID, "left_semi").cache()
    # combine leaves the ALS and EASE columns empty: no row of theirs goes in.
    cheap = cheap_candidates(candidates, None).cache()
    with_ease = cheap_candidates(candidates, None, (*CHEAP_SOURCES, C.SOURCE_EASE))
    popular = read_partition(spark, settings, POPULAR_ITEMS, as_of)
    lists = (
        baseline_lists(candidates, popular, users, k)
        .join(users, C.USER_ID)
        .unionByName(ranked_lists(spark, settings, as_of, candidates, champion.ranker, "full", k))
        .unionByName(
            cheap.filter(F.col(C.UNION_RANK) <= k).select(
                F.lit("cheap_union").alias(C.VARIANT),
                C.USER_ID,
                C.ITEM_ID,
                F.col(C.UNION_RANK).alias(C.RANK),
            )
        )
        .unionByName(
            ranked_lists(
                spark,
                settings,
                as_of,
                cheap.filter(F.col(C.UNION_RANK) <= thin_max),
                champion.ranker,
                "cheap_ranker",
                k,
            )
        )
        .unionByName(
            ranked_lists(
                spark,
                settings,
                as_of,
                with_ease.filter(F.col(C.UNION_RANK) <= thin_max),
                champion.ranker,
                "cheap_ease_ranker",
                k,
            )
        )
        .unionByName(
            ranked_lists(
                spark,
                settings,
                as_of,
                cheap.filter(F.col(C.UNION_RANK) <= 2 * thin_max),
                champion.ranker,
                "cheap_ranker_2x",
                k,
            )
        )
        .join(users, C.USER_ID)
        .cache()
    )
    rows = []
    for group in ("all", *C.HISTORY_GROUPS):
        members = (
            users
            if group == "all"
            else users.join(history.filter(F.col(C.HISTORY_GROUP) == group), C.USER_ID, "left_semi")
        )
        figures = ranking_metrics(lists, relevant, [k], members)
        values = {(v, m): x for v, m, kk, x in figures if kk in (k, 0)}
        evaluated = next((x for (v, m), x in values.items() if m == "users_evaluated"), 0.0)
        for variant in sorted({v for v, _ in values}):
            rows.append(
                {
                    "day": holdout,
                    "group": group,
                    "active_users": shares.get(group, sum(shares.values())),
                    "evaluated": evaluated,
                    "variant": variant,
                    "ndcg": values.get((variant, NDCG), float("nan")),
                    "recall": values.get((variant, RECALL), float("nan")),
                }
            )
    for frame in (candidates, history, users, cheap, lists):
        frame.unpersist()
    return pd.DataFrame(rows)


def report(rows: pd.DataFrame, k: int, variants: list[str]) -> str:
    mean = rows.groupby(["group", "variant"])[["ndcg", "recall"]].mean()
    sizes = rows.groupby("group")[["active_users", "evaluated"]].mean()
    total = sizes.loc["all", "active_users"]
    groups = ["all", *[g for g in sizes.index if g != "all"]]
    lines = [
        f"days: {', '.join(str(d) for d in sorted(rows['day'].unique()))}",
        "",
        "| group | share of active users | evaluated / day | " + " | ".join(variants) + " |",
        "|---|---|---|" + "---|" * len(variants),
    ]
    for group in groups:
        share = sizes.loc[group, "active_users"] / total
        cells = []
        for variant in variants:
            if (group, variant) in mean.index:
                n, r = mean.loc[(group, variant)]
                cells.append(f"{n:.4f} / {r:.4f}")
            else:
                cells.append("–")
        lines.append(
            f"| {group} | {share:.3f} | {sizes.loc[group, 'evaluated']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    lines.append(f"cells: NDCG@{k} / recall@{k}, mean over the days")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench_work" / "ranker_days")
    parser.add_argument("--nights", type=int, default=3, help="the last N holdout days")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--thin-max", type=int, default=30)
    parser.add_argument("--csv", type=Path, help="write the per-day rows here too")
    args = parser.parse_args()
    os.environ.setdefault("RECSYS_PSEUDONYM_KEY", "bench-key")
    from recsys_lib.runtime.spark import get_spark

    settings = settings_for(args.work.resolve())
    spark = get_spark(settings)
    days = holdout_days(spark, settings, args.nights)
    rows = pd.concat([measure_day(spark, settings, d, args.k, args.thin_max) for d in days])
    if args.csv:
        rows.to_csv(args.csv, index=False)
    variants = [
        "full",
        "union",
        "cheap_ranker",
        "cheap_ease_ranker",
        "cheap_ranker_2x",
        "cheap_union",
        "als",
        "ease",
        "similar",
        "bought_together",
        "popular",
        "new_arrivals",
        "recent_views",
        "popularity",
    ]
    print(report(rows, args.k, variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
