"""MovieLens under the Microsoft Recommenders benchmark protocol, measured on the nightly's
own code.

The protocol is the one of Recommenders' ``examples/06_benchmarks/movielens.ipynb`` (with
``benchmark_utils.py``): ``python_stratified_split(ratio=0.75, min_rating=1,
filter_by="item", seed=42)``, top ``k = 10`` per user with the items the user rated in
training removed, every test rating relevant (relevance 1), the metrics averaged over the
users present both in the test set and in the recommendations.

What is measured is the pipeline, not a parallel implementation: the ratings are adapted
into ``clean.events`` and ``clean.items`` rows (:func:`as_events`, :func:`as_items`), and
the library functions the nightly stages call build everything else from them: the daily
aggregates, item features and user portraits, the ALS model and its similar items, EASE,
bought-together pairs, popular lists, the seven candidate sources and their union, the
ranking features, the labels and importance weights, and the LightGBM ranker with its
ablations (:func:`night_of`, :func:`ranker_of`). A change to a source's scoring changes the
figures. The adaptations, and why, are in docs/benchmarks.md ("MovieLens").

Three releases are read in their own formats (:func:`load_release`): 100k (``u.data``,
``u.item``, ``u.user``), 1M (``ratings.dat``, ``movies.dat``, ``users.dat``) and the
``latest`` releases (``ratings.csv``, ``movies.csv``; extra trailing columns tolerated).
Genres become categories; user attributes are read where a release has them but the
nightly's ranker has no demographic features, so they do not enter the model. Example::

    result = run_benchmark(spark, settings, Path("../shared/data/movielens-100k"))
    print(format_report(result))
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.evaluation import (
    MAP,
    NDCG,
    PRECISION,
    RECALL,
    RELEVANCE,
    USERS_EVALUATED,
    day_labels,
    ranking_metrics,
)
from recsys_lib.models.als import interactions, train_model
from recsys_lib.models.importance import (
    ITEM_VIEWS_30D,
    median_item_views,
    static_components,
    with_importance,
)
from recsys_lib.models.ranker import Ranker
from recsys_lib.sources.similar import similar_items
from recsys_lib.stages.aggregate import item_daily, user_daily, user_item_daily
from recsys_lib.stages.candidates import candidates_of
from recsys_lib.stages.features import item_features, price_percentiles
from recsys_lib.stages.train_ranker import top_lists, train_variants, with_group
from recsys_lib.transforms.portraits import user_portraits
from recsys_lib.transforms.ranking_features import labelled, ranking_features
from recsys_lib.transforms.top_n import top_n_per

RATING = "rating"
TIMESTAMP = "timestamp"
TITLE = "title"
GENRES = "genres"
DEFAULT_K = 10
DEFAULT_RATIO = 0.75
INNER_SEED_OFFSET = 1  # the ranker's inner split uses seed + 1
VALID_USER_SHARE = 0.2  # users whose samples are the ranker's early-stopping groups
HISTORY_DAYS = 28  # the ratings' order is spread over this many days ending on the run date
RUN_DATE = dt.date(2000, 1, 31)  # a nominal night: the data's own dates span years
POOL_PER_USER = 200  # unseen candidates a user keeps for the ranker (benchmark_settings)
NO_GENRE = "(no genres listed)"

ALGO_RANKER = "pipeline: sources + ranker"
ALGO_NO_IMPORTANCE = "pipeline: ranker without importance"
ALGO_IMPORTANCE = "pipeline: ranker with importance"
ALGO_UNION = "union order"
ALGO_POPULARITY = "popularity"


def source_algo(source: str) -> str:
    """Row name of a candidate source alone."""
    return f"source {source}"


# --- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """One MovieLens release: ratings (user_id, item_id, rating, timestamp) in file order,
    films (item_id, title, genres: a list), and users' attributes when the release has them."""

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None


def data_file(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` if it exists, else ``folder/name``, else None (pandas reads either)."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _required(folder: Path, name: str) -> Path:
    path = data_file(folder, name)
    if path is None:
        raise FileNotFoundError(f"MovieLens file {name}[.gz] not found in {folder}")
    return path


def _ratings(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            C.USER_ID: frame.iloc[:, 0].astype(np.int64),
            C.ITEM_ID: frame.iloc[:, 1].astype(np.int64),
            RATING: frame.iloc[:, 2].astype(np.float64),
            TIMESTAMP: frame.iloc[:, 3].astype(np.int64),
        }
    )
    return out.reset_index(drop=True)


def load_ratings(folder: Path) -> pd.DataFrame:
    """The release's ratings as (user_id, item_id, rating, timestamp), in file order.

    The order matters: the stratified split draws one random number per row in this order,
    as Recommenders' loaders do. ``u.data`` is tab-separated, ``ratings.dat`` uses ``::``,
    ``ratings.csv`` has a header and may carry extra trailing columns (ignored).
    """
    if (path := data_file(folder, "u.data")) is not None:
        return _ratings(pd.read_csv(path, sep="\t", header=None))
    if (path := data_file(folder, "ratings.dat")) is not None:
        return _ratings(pd.read_csv(path, sep="::", header=None, engine="python"))
    if (path := data_file(folder, "ratings.csv")) is not None:
        return _ratings(pd.read_csv(path, usecols=[0, 1, 2, 3]))
    raise FileNotFoundError(
        f"no MovieLens ratings in {folder}: expected u.data (100k), ratings.dat (1M) or "
        "ratings.csv (latest), optionally gzipped"
    )


def _genre_list(value: object) -> list[str]:
    text = value if isinstance(value, str) else ""
    return [g for g in text.split("|") if g and g != NO_GENRE]


def load_items(folder: Path) -> pd.DataFrame:
    """Films as (item_id, title, genres), genres a list (empty when the file has none).

    ``u.item`` (ISO-8859-1, 19 genre flags named by ``u.genre``), ``movies.dat``
    (``::``, ISO-8859-1, genres ``A|B``) or ``movies.csv`` (UTF-8, quoted titles).
    """
    if (path := data_file(folder, "u.item")) is not None:
        names = pd.read_csv(
            _required(folder, "u.genre"), sep="|", names=["name", "id"], encoding="latin-1"
        ).dropna()
        genres = list(names.sort_values("id")["name"])
        frame = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
        flags = frame.iloc[:, -len(genres) :].to_numpy(dtype=bool)
        lists = [[g for g, on in zip(genres, row, strict=True) if on and g != "unknown"]
                 for row in flags]  # fmt: skip
        return pd.DataFrame({C.ITEM_ID: frame[0].astype(np.int64), TITLE: frame[1], GENRES: lists})
    if (path := data_file(folder, "movies.dat")) is not None:
        frame = pd.read_csv(path, sep="::", header=None, engine="python", encoding="latin-1")
    elif (path := data_file(folder, "movies.csv")) is not None:
        frame = pd.read_csv(path, usecols=[0, 1, 2])
    else:
        raise FileNotFoundError(f"no MovieLens films in {folder}: u.item, movies.dat or movies.csv")
    return pd.DataFrame(
        {
            C.ITEM_ID: frame.iloc[:, 0].astype(np.int64),
            TITLE: frame.iloc[:, 1],
            GENRES: [_genre_list(v) for v in frame.iloc[:, 2]],
        }
    )


def load_users(folder: Path) -> pd.DataFrame | None:
    """(user_id, age, gender, occupation) of ``u.user`` or ``users.dat``; None without."""
    columns = [C.USER_ID, "age", "gender", "occupation"]
    if (path := data_file(folder, "u.user")) is not None:
        frame = pd.read_csv(path, sep="|", header=None)
        return frame.iloc[:, [0, 1, 2, 3]].set_axis(columns, axis=1)
    if (path := data_file(folder, "users.dat")) is not None:
        frame = pd.read_csv(path, sep="::", header=None, engine="python")
        return frame.iloc[:, [0, 2, 1, 3]].set_axis(columns, axis=1)
    return None


def load_release(folder: Path) -> Release:
    """The ratings, films and (where present) users of the release in ``folder``."""
    return Release(folder.name, load_ratings(folder), load_items(folder), load_users(folder))


# Recommenders' published MovieLens-100k results (k = 10, stratified 75/25 split by item).
# Two tables, because their MAP changed meaning: the README's "MAP" is Recommenders' `map`
# (average precision over the first k divided by the user's number of relevant items); the
# later notebook run reports "MAP@k", their `map_at_k` (divided by min(relevant, k)), which
# is what `recsys_lib.evaluation.ranking_metrics` computes. Rows: algo, MAP, nDCG@k,
# Precision@k, Recall@k, train seconds, top-k recommending seconds (None: not published).
PublishedRow = tuple[str, float, float, float, float, float | None, float | None]

# recommenders-team/recommenders, README.md, "Algorithm Comparison", commit
# 005dcd06bd32ab996c7e4c9892ebbfcab80adb1a: Azure NC6s_v2 (6 vCPUs, 112 GB, 1 P100 GPU),
# 15 epochs; no timings.
README_SOURCE = (
    "recommenders-team/recommenders README.md 'Algorithm Comparison' "
    "@ 005dcd06bd32ab996c7e4c9892ebbfcab80adb1a; MAP = their `map` (/ |relevant|); "
    "6 vCPUs + P100 GPU; no timings"
)
PUBLISHED_README: tuple[PublishedRow, ...] = (
    ("ALS", 0.004732, 0.044239, 0.048462, 0.017796, None, None),
    ("BiVAE", 0.146126, 0.475077, 0.411771, 0.219145, None, None),
    ("BPR", 0.132478, 0.441997, 0.388229, 0.212522, None, None),
    ("FastAI", 0.025503, 0.147866, 0.130329, 0.053824, None, None),
    ("LightGCN", 0.088526, 0.419846, 0.379626, 0.144336, None, None),
    ("NCF", 0.107720, 0.396118, 0.347296, 0.180775, None, None),
    ("SAR", 0.110591, 0.382461, 0.330753, 0.176385, None, None),
    ("SVD", 0.012873, 0.095930, 0.091198, 0.032783, None, None),
)

# examples/06_benchmarks/movielens.ipynb of recommenders-team/recommenders at commit
# 6232b154548c955315650d58dca6bf1411c56020, output of its "Results" cell: 4 CPUs, 30 GB,
# GeForce GTX 1660 Ti. Read from a verbatim third-party copy of that file: the versions of
# the notebook stored in the search index are older, partial runs.
NOTEBOOK_SOURCE = (
    "recommenders-team/recommenders examples/06_benchmarks/movielens.ipynb "
    "@ 6232b154548c955315650d58dca6bf1411c56020; MAP@k = their `map_at_k`; "
    "4 CPUs + GTX 1660 Ti"
)
PUBLISHED_NOTEBOOK: tuple[PublishedRow, ...] = (
    ("als", 0.012740, 0.037863, 0.042842, 0.013880, 9.7989, 0.1483),
    ("sar", 0.258452, 0.393819, 0.340615, 0.185377, 0.4918, 0.1171),
    ("ncf", 0.252473, 0.384246, 0.338176, 0.176739, 91.1847, 10.5998),
    ("embdotbias", 0.053549, 0.117810, 0.104242, 0.042450, 107.2887, 2.8453),
    ("bpr", 0.297456, 0.444991, 0.388653, 0.216555, 7.1731, 0.6734),
    ("bivae", 0.329962, 0.471722, 0.411347, 0.224300, 20.3837, 0.9034),
    ("lightgcn", 0.276277, 0.417327, 0.361824, 0.196233, 65.9464, 0.0888),
)


# --- the split -----------------------------------------------------------------------------


def stratified_split(
    ratings: pd.DataFrame,
    ratio: float = DEFAULT_RATIO,
    seed: int = C.DEFAULT_SEED,
    by: str = C.ITEM_ID,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): about ``ratio`` of each ``by`` value's ratings in train, the rest in test.

    Recommenders' ``python_stratified_split(filter_by="item", min_rating=1)``: one uniform
    number per row from NumPy's legacy generator seeded with ``seed``, drawn in input order;
    within each item the rows are ordered by it, and a row whose position / count is at most
    ``ratio`` trains. An item with a single rating is therefore test only; one with two or
    more ratings is in both parts. Both parts keep the input's row order and index; the input
    is not modified.

    Example: ``train, test = stratified_split(load_ratings(folder))``.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if by not in ratings.columns:
        raise ValueError(f"column {by!r} not in the ratings ({list(ratings.columns)})")
    draw = np.random.RandomState(seed).rand(len(ratings))
    keys = pd.DataFrame({"key": ratings[by].to_numpy(), "draw": draw}, index=ratings.index)
    ordered = keys.sort_values(["key", "draw"], kind="mergesort")
    groups = ordered.groupby("key", sort=False)
    position = (groups.cumcount() + 1) / groups["key"].transform("count")
    in_train = (position <= ratio).reindex(ratings.index)
    return ratings[in_train.to_numpy()], ratings[~in_train.to_numpy()]


def subsample_users(
    ratings: pd.DataFrame, n_users: int, seed: int = C.DEFAULT_SEED
) -> pd.DataFrame:
    """The ratings of ``n_users`` users drawn at random (all users if there are fewer)."""
    users = np.sort(ratings[C.USER_ID].unique())
    if n_users < len(users):
        users = np.random.RandomState(seed).choice(users, n_users, replace=False)
    return ratings[ratings[C.USER_ID].isin(users)]


# --- the ratings as the pipeline's rows ----------------------------------------------------

EVENTS_SCHEMA = (
    f"{C.DT} date, {C.EVENT_TS} timestamp, {C.USER_ID} string, {C.ITEM_ID} bigint, "
    f"{C.EVENT_TYPE} string, {C.TRANSACTION_ID} string, {C.CATEGORY_ID} bigint, "
    f"{C.PRICE} double"
)
ITEMS_SCHEMA = (
    f"{C.ITEM_ID} bigint, {C.CATEGORY_ID} bigint, {C.TOP_CATEGORY_ID} bigint, "
    f"{C.PRICE} double, {C.FIRST_SEEN} date, {C.AVAILABLE} boolean"
)


def event_types(ratings: pd.Series) -> np.ndarray:
    """A rating as the event type it stands for: 4.5 and up a purchase, 3.5 and up a cart,
    anything lower a view (on the 1–5 scale: 5, 4, and 1–3)."""
    values = ratings.to_numpy(dtype=np.float64)
    return np.where(values >= 4.5, C.PURCHASE, np.where(values >= 3.5, C.CART, C.VIEW))


def as_events(
    spark: SparkSession, ratings: pd.DataFrame, run_date: dt.date, event_type: str | None = None
) -> DataFrame:
    """``clean.events`` rows of ``ratings``: one event per rating (:func:`event_types`, or
    ``event_type`` for all).

    The releases span years, and the nightly's windows are days (30 for features and
    sources, 90 for portraits). The ratings keep their order (by timestamp, then file
    order) and are spread evenly over the :data:`HISTORY_DAYS` days ending on
    ``run_date``, each day's share evenly over its 24 hours: so every window sees the whole
    history, the latest ratings are the "recent" ones, and a user's sequence is kept.
    """
    ordered = ratings.sort_values(TIMESTAMP, kind="mergesort")
    n = len(ordered)
    position = np.arange(n)
    day = position * HISTORY_DAYS // max(n, 1)
    first = np.searchsorted(day, day)
    per_day = np.bincount(day, minlength=HISTORY_DAYS)
    seconds = (position - first) * 86_400 / np.maximum(per_day[day], 1)
    start = pd.Timestamp(run_date - dt.timedelta(days=HISTORY_DAYS - 1))
    micros = np.round(seconds * 1e6).astype(np.int64)  # Spark keeps microseconds
    moments = start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(micros, unit="us")
    frame = pd.DataFrame(
        {
            C.DT: moments.date,
            C.EVENT_TS: moments,
            C.USER_ID: ordered[C.USER_ID].astype(str).to_numpy(),
            C.ITEM_ID: ordered[C.ITEM_ID].to_numpy(dtype=np.int64),
            C.EVENT_TYPE: event_types(ordered[RATING]) if event_type is None else event_type,
            C.TRANSACTION_ID: None,
            C.CATEGORY_ID: None,
            C.PRICE: np.nan,
        }
    )
    return spark.createDataFrame(frame, EVENTS_SCHEMA)


def category_codes(items: pd.DataFrame) -> dict[str, int]:
    """Each genre of the release as a category id (1, 2, … in name order)."""
    names = sorted({g for genres in items[GENRES] for g in genres})
    return {name: code for code, name in enumerate(names, start=1)}


def as_items(spark: SparkSession, items: pd.DataFrame, events: DataFrame) -> DataFrame:
    """``clean.items`` rows of the films: the first listed genre is the category (and its
    own top-level category; 0 without a genre), no price, first seen on the day of the
    film's first event (films without one are left out), always available."""
    codes = category_codes(items)
    first_seen = events.groupBy(C.ITEM_ID).agg(F.min(C.DT).alias(C.FIRST_SEEN)).toPandas()
    category = [codes[g[0]] if g else 0 for g in items[GENRES]]
    frame = pd.DataFrame(
        {C.ITEM_ID: items[C.ITEM_ID].to_numpy(dtype=np.int64), C.CATEGORY_ID: category}
    ).merge(first_seen, on=C.ITEM_ID)
    frame[C.TOP_CATEGORY_ID] = frame[C.CATEGORY_ID]
    frame[C.PRICE] = np.nan
    frame[C.AVAILABLE] = True
    columns = [C.ITEM_ID, C.CATEGORY_ID, C.TOP_CATEGORY_ID, C.PRICE, C.FIRST_SEEN, C.AVAILABLE]
    return price_percentiles(spark.createDataFrame(frame[columns], ITEMS_SCHEMA))


def benchmark_settings(settings: Settings) -> Settings:
    """``settings`` with what the protocol and the adapted history need, nothing else.

    - The protocol removes every film the user rated; a MovieLens user has rated about 80
      of the 75 % kept for training, most of them among ALS's and the lists' best. So the
      sources propose more (ALS and EASE 300, the category lists 150) before the rated
      films are removed, and the union keeps 200 a user (``candidates.max_per_user``: the
      ranker's pool).
    - The history's days are not real (:func:`as_events`): ALS's time decay is off, and
      no user takes the cheap path of thin histories (``candidates.thin_groups``): a day
      of compressed ratings is not a one-day visit, and the protocol scores every user.
    """
    per_source = dict(settings.candidates.per_source)
    per_source.update(
        {C.SOURCE_ALS: 300, C.SOURCE_EASE: 300, C.SOURCE_POPULAR: 150, C.SOURCE_NEW_ARRIVALS: 50}
    )
    candidates = dataclasses.replace(
        settings.candidates, per_source=per_source, max_per_user=POOL_PER_USER, thin_groups=()
    )
    return dataclasses.replace(
        settings,
        candidates=candidates,
        popular=dataclasses.replace(settings.popular, top_n=max(settings.popular.top_n, 300)),
        als=dataclasses.replace(settings.als, half_life_days=0.0),
    )


@dataclass(frozen=True)
class Night:
    """What the nightly stages compute from one history: the unseen candidates with their
    ranking features (the union cut as every night), every source's unseen candidates
    before that cut (user_id, item_id and the source ranks), the popular lists, and the
    history's (user, item) pairs."""

    features: DataFrame
    sources: DataFrame
    popular: DataFrame
    seen: DataFrame


def night_of(
    spark: SparkSession,
    settings: Settings,
    ratings: pd.DataFrame,
    items: pd.DataFrame,
    run_date: dt.date,
) -> Night:
    """The stages ``aggregate`` .. ``candidates`` and the ranking features on ``ratings``:
    the same library functions (:func:`recsys_lib.stages.candidates.candidates_of` for the
    sources and their union), on the adapted rows instead of the warehouse's tables.

    The one change is the protocol's: the films the user rated are removed from the union
    before it is cut at ``candidates.max_per_user`` (the nightly keeps them and removes
    purchases after ranking).
    """
    events = as_events(spark, ratings, run_date).cache()
    catalogue = as_items(spark, items, events).cache()
    daily_items, daily_pairs = item_daily(events).cache(), user_item_daily(events).cache()
    features = settings.features
    item_rows = item_features(daily_items, catalogue, run_date, features)
    prices = catalogue.select(C.ITEM_ID, C.CATEGORY_ID, C.PRICE, C.PRICE_PCT_IN_CATEGORY)
    portraits = user_portraits(user_daily(events), daily_pairs, prices, run_date, features)
    portraits = portraits.cache()
    als = settings.als
    model, _ = train_model(spark, interactions(events, als, run_date), als)
    similar = similar_items(spark, model, als.similar_top_n, als.similar_batch_rows)
    found = candidates_of(
        events, portraits, catalogue, daily_items, model, similar, run_date, settings, None
    )
    seen = events.select(C.USER_ID, C.ITEM_ID).distinct().cache()
    unseen = found.union.join(seen, [C.USER_ID, C.ITEM_ID], "left_anti").cache()
    cut = top_n_per(
        unseen, [C.USER_ID], [F.asc(C.UNION_RANK)], settings.candidates.max_per_user, "_rank"
    )
    candidates = cut.drop(C.UNION_RANK).withColumnRenamed("_rank", C.UNION_RANK)
    ranked = ranking_features(candidates, portraits, item_rows, daily_pairs, run_date)
    ranks = [C.source_rank(s) for s in C.CANDIDATE_SOURCES]
    return Night(ranked.cache(), unseen.select(C.USER_ID, C.ITEM_ID, *ranks), found.lists, seen)


def as_frame(features: DataFrame) -> pd.DataFrame:
    """Ranking features on the driver, the features as floats (as ``train_ranker`` has them)."""
    frame = features.toPandas()
    for column in C.RANKING_FEATURES:
        frame[column] = frame[column].astype(float)
    return frame


def ranker_of(
    spark: SparkSession,
    settings: Settings,
    train: pd.DataFrame,
    items: pd.DataFrame,
    seed: int,
) -> tuple[dict[str, Ranker], dict[str, float]]:
    """The nightly's ranker variants trained without the test set, and their fit figures.

    The training ratings are split again (:func:`stratified_split`, ``seed + 1``): the
    night of the inner train gives candidates, labelled as ``samples`` labels them by the
    inner holdout's events on the next day (all of one grade: every rating is relevant in the
    protocol), with the importance
    weights of the first night (no loss predictor). A share of the users
    (:data:`VALID_USER_SHARE`) are the early-stopping groups; :func:`train_variants` fits
    the ranker and, with ``ranker.ablations``, the ranker without importance.
    """
    inner_train, inner_holdout = stratified_split(train, seed=seed + INNER_SEED_OFFSET)
    night = night_of(spark, settings, inner_train, items, RUN_DATE)
    label_day = RUN_DATE + dt.timedelta(days=1)
    # Labels follow the protocol's relevance: every rating counts, whatever its value.
    holdout_events = as_events(spark, inner_holdout, label_day, C.VIEW)
    active = holdout_events.select(C.USER_ID).distinct()
    median = median_item_views(night.features.select(C.ITEM_ID, ITEM_VIEWS_30D))
    samples = labelled(
        night.features.join(active, C.USER_ID, "left_semi"), day_labels(holdout_events)
    )
    weighted = with_importance(
        static_components(samples, median, settings.importance), None, settings.importance
    )
    frame = as_frame(weighted.withColumn(C.DT, F.lit(label_day)))
    frame = with_group(frame)
    frame = frame[frame.groupby(C.GROUP)[C.LABEL].transform("max") > 0]
    frame = frame.sort_values([C.GROUP, C.ITEM_ID], kind="mergesort")
    users = np.sort(frame[C.USER_ID].unique())
    valid_users = np.random.RandomState(seed).choice(
        users, int(round(VALID_USER_SHARE * len(users))), replace=False
    )
    is_valid = frame[C.USER_ID].isin(valid_users)
    trained = train_variants(frame[~is_valid], frame[is_valid], settings)
    figures = {
        "inner_train_ratings": float(len(inner_train)),
        "inner_holdout_ratings": float(len(inner_holdout)),
        "training_rows": float((~is_valid).sum()),
        "validation_rows": float(is_valid.sum()),
        "positive_share": float((frame[C.LABEL] > 0).mean()) if len(frame) else 0.0,
        **{f"{v}.best_iteration": f["best_iteration"] for v, (_, f) in trained.items()},
    }
    return {variant: ranker for variant, (ranker, _) in trained.items()}, figures


@dataclass(frozen=True)
class Recommendations:
    """Top-k lists (user_id, item_id, rank) of one algorithm and its two timings."""

    algo: str
    lists: pd.DataFrame
    train_seconds: float | None = None
    predict_seconds: float | None = None


def popular_unseen(popular: DataFrame, seen: DataFrame, users: np.ndarray, k: int) -> pd.DataFrame:
    """(user_id, item_id, rank): the global popular list without each user's rated films."""
    top = (
        popular.filter((F.col(C.LIST) == C.LIST_POPULAR) & (F.col(C.SCOPE) == C.SCOPE_GLOBAL))
        .select(C.ITEM_ID, C.RANK)
        .toPandas()
        .sort_values(C.RANK)
    )
    seen_pairs = seen.toPandas()
    grid = pd.DataFrame(
        {
            C.USER_ID: np.repeat(users, len(top)),
            C.ITEM_ID: np.tile(top[C.ITEM_ID].to_numpy(), len(users)),
            "_order": np.tile(np.arange(len(top)), len(users)),
        }
    )
    grid = grid.merge(seen_pairs.assign(_seen=True), on=[C.USER_ID, C.ITEM_ID], how="left")
    grid = grid[grid["_seen"].isna()].sort_values([C.USER_ID, "_order"], kind="mergesort")
    grid[C.RANK] = grid.groupby(C.USER_ID).cumcount() + 1
    return grid[grid[C.RANK] <= k][[C.USER_ID, C.ITEM_ID, C.RANK]]


def lists_of(frame: pd.DataFrame, order: np.ndarray, k: int) -> pd.DataFrame:
    """(user_id, item_id, rank): each user's best ``k`` rows by ``order`` (higher first;
    NaN rows left out), as ``train_ranker`` makes its lists."""
    kept = ~np.isnan(order)
    top = top_lists(frame[kept], order[kept], "", k)
    return top[[C.USER_ID, C.ITEM_ID, C.RANK]]


def pipeline_recommendations(
    spark: SparkSession,
    settings: Settings,
    train: pd.DataFrame,
    items: pd.DataFrame,
    k: int,
    seed: int,
) -> tuple[list[Recommendations], dict[str, float]]:
    """Every variant's lists for the training users: the ranker (and its ablation), each
    source alone, the union's order and popularity; with the ranker's fit figures."""
    started = time.perf_counter()
    rankers, figures = ranker_of(spark, settings, train, items, seed)
    night = night_of(spark, settings, train, items, RUN_DATE)
    frame = as_frame(night.features)
    trained = time.perf_counter()
    names = {
        C.RANKER: ALGO_RANKER,
        C.RANKER_NO_IMPORTANCE: ALGO_NO_IMPORTANCE,
        C.RANKER_IMPORTANCE: ALGO_IMPORTANCE,
    }
    out = []
    for variant, ranker in rankers.items():
        if variant not in names:
            continue
        scoring = time.perf_counter()
        lists = lists_of(frame, ranker.predict(frame), k)
        out.append(
            Recommendations(names[variant], lists, trained - started, time.perf_counter() - scoring)
        )
    # Each source alone: its own unseen items in its own order, before the union's cut.
    proposed = night.sources.toPandas()
    for source in C.CANDIDATE_SOURCES:
        ranks = proposed[C.source_rank(source)].to_numpy(dtype=float)
        out.append(Recommendations(source_algo(source), lists_of(proposed, -ranks, k)))
    union = frame[C.UNION_RANK].to_numpy(dtype=float)
    out.append(Recommendations(ALGO_UNION, lists_of(frame, -union, k)))
    users = np.sort(train[C.USER_ID].astype(str).unique())
    out.append(
        Recommendations(ALGO_POPULARITY, popular_unseen(night.popular, night.seen, users, k))
    )
    # recent_views proposes viewed films, all rated here: an empty variant has no row
    return [r for r in out if len(r.lists)], figures


# --- evaluation and the report -------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table; timings are None where unknown."""

    algo: str
    map: float
    ndcg: float
    precision: float
    recall: float
    train_seconds: float | None = None
    predict_seconds: float | None = None
    users: int | None = None


def evaluate(
    spark: SparkSession,
    recommendations: Sequence[Recommendations],
    test: pd.DataFrame,
    k: int = DEFAULT_K,
) -> tuple[Row, ...]:
    """Recommenders' ranking metrics at ``k`` of each algorithm's lists against ``test``.

    Every test rating is relevant (relevance 1). The users evaluated are those with a test
    rating and a list, as Recommenders' evaluation joins truth and predictions on users.
    """

    lists = pd.concat(
        [r.lists.assign(**{C.VARIANT: r.algo}) for r in recommendations], ignore_index=True
    )
    lists[C.USER_ID] = lists[C.USER_ID].astype("int64")  # the events' ids are text
    lists_df = spark.createDataFrame(
        lists[[C.VARIANT, C.USER_ID, C.ITEM_ID, C.RANK]].astype(
            {C.USER_ID: "int64", C.ITEM_ID: "int64", C.RANK: "int32"}
        ),
        f"{C.VARIANT} string, {C.USER_ID} long, {C.ITEM_ID} long, {C.RANK} int",
    )
    truth = test[[C.USER_ID, C.ITEM_ID]].drop_duplicates().assign(**{RELEVANCE: 1.0})
    relevant_df = spark.createDataFrame(
        truth, f"{C.USER_ID} long, {C.ITEM_ID} long, {RELEVANCE} double"
    )
    common = np.intersect1d(truth[C.USER_ID].unique(), lists[C.USER_ID].unique())
    users_df = spark.createDataFrame(
        pd.DataFrame({C.USER_ID: common.astype("int64")}), f"{C.USER_ID} long"
    )
    figures = ranking_metrics(lists_df, relevant_df, [k], users=users_df)
    values: dict[tuple[str, str], float] = {}
    for variant, metric, cut, value in figures:
        if metric == USERS_EVALUATED or cut == k:
            values[(variant, metric)] = float(value)
    rows = []
    for r in recommendations:
        users = values.get((r.algo, USERS_EVALUATED))
        rows.append(
            Row(
                algo=r.algo,
                map=values[(r.algo, MAP)],
                ndcg=values[(r.algo, NDCG)],
                precision=values[(r.algo, PRECISION)],
                recall=values[(r.algo, RECALL)],
                train_seconds=r.train_seconds,
                predict_seconds=r.predict_seconds,
                users=None if users is None else int(users),
            )
        )
    return tuple(rows)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """Markdown table: Algo | MAP | nDCG@k | Precision@k | Recall@k | Train / Predicting s."""
    lines = [
        "| Algo | MAP | nDCG@k | Precision@k | Recall@k | Train time (s) | Predicting time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.algo} | {r.map:.6f} | {r.ndcg:.6f} | {r.precision:.6f} | {r.recall:.6f} "
            f"| {_seconds(r.train_seconds)} | {_seconds(r.predict_seconds)} |"
        )
    return "\n".join(lines)


def published_rows(table: Sequence[PublishedRow]) -> tuple[Row, ...]:
    """A published table as rows."""
    return tuple(Row(*row) for row in table)


@dataclass(frozen=True)
class BenchmarkResult:
    """Our rows, the split's sizes, the ranker's fit figures and the whole run's seconds."""

    release: str
    rows: tuple[Row, ...]
    k: int
    seed: int
    train_ratings: int
    test_ratings: int
    ranker_figures: dict[str, float]
    seconds: float
    recommendations: tuple[Recommendations, ...] = ()


def run_benchmark(
    spark: SparkSession,
    settings: Settings,
    folder: Path,
    k: int = DEFAULT_K,
    seed: int = C.DEFAULT_SEED,
    n_users: int | None = None,
) -> BenchmarkResult:
    """Load the release, split, run the pipeline's variants, evaluate. ``n_users``
    subsamples users (tests)."""
    started = time.perf_counter()
    release = load_release(folder)
    ratings = release.ratings
    if n_users is not None:
        ratings = subsample_users(ratings, n_users, seed)
    train, test = stratified_split(ratings, DEFAULT_RATIO, seed)
    recommendations, figures = pipeline_recommendations(
        spark, benchmark_settings(settings), train, release.items, k, seed
    )
    rows = evaluate(spark, recommendations, test, k)
    seconds = time.perf_counter() - started
    return BenchmarkResult(
        release.name, rows, k, seed, len(train), len(test), figures, seconds, tuple(recommendations)
    )


def format_report(result: BenchmarkResult) -> str:
    """Our table, then the published ones, labelled as measured on their machines."""
    users = {r.users for r in result.rows if r.users is not None}
    evaluated = f"{users.pop()} users evaluated" if len(users) == 1 else "users evaluated vary"
    lines = [
        f"MovieLens ({result.release}), Recommenders protocol: stratified split by item "
        f"({DEFAULT_RATIO:.0%} train, seed {result.seed}), k = {result.k}, seen items "
        "removed, every test rating relevant.",
        f"{result.train_ratings} train / {result.test_ratings} test ratings, {evaluated}. "
        "MAP is Recommenders' map_at_k; train = everything before scoring the test "
        "candidates; predicting = ranker scoring + top k.",
        f"the whole run: {result.seconds:.0f} s; ranker: "
        + ", ".join(f"{n} {v:g}" for n, v in sorted(result.ranker_figures.items())),
        "",
        "measured here (the nightly's sources, features and ranker):",
        format_table(result.rows),
    ]
    if result.train_ratings + result.test_ratings == 100_000:  # the whole 100k release
        lines += [
            "",
            f"published, MovieLens-100k (their machine): {NOTEBOOK_SOURCE}",
            format_table(published_rows(PUBLISHED_NOTEBOOK)),
            "",
            f"published, MovieLens-100k (their machine): {README_SOURCE}",
            format_table(published_rows(PUBLISHED_README)),
        ]
    return "\n".join(lines)
