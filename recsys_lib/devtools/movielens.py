"""MovieLens-100k under the Microsoft Recommenders benchmark protocol.

The protocol is the one of Recommenders' ``examples/06_benchmarks/movielens.ipynb`` (with
``benchmark_utils.py``): ``python_stratified_split(ratio=0.75, min_rating=1,
filter_by="item", seed=42)``, top ``k = 10`` recommendations per user with the items the
user rated in training removed, every test rating relevant (relevance 1), and the metrics
averaged over the users present both in the test set and in the recommendations.

Two algorithms of this project run under it:

- ``ALS``: implicit ALS (:func:`recsys_lib.models.als.fit`) on the training ratings as
  confidence, with ``settings.als``; the top ``k`` unseen training items per user.
- ``ALS + ranker``: ALS's top ``n_candidates`` unseen items per user, re-ordered by the
  LightGBM lambdarank model of :mod:`recsys_lib.models.ranker`. The ranker learns on a
  second stratified split of the training set only (inner train / inner holdout), so the
  test set is never seen before scoring.

The data work is pandas (100k rows fit on one node); the metrics are Spark's
(:func:`recsys_lib.evaluation.ranking_metrics`). Example::

    result = run_benchmark(spark, settings, Path("../shared/data/movielens-100k"))
    print(format_report(result))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import SparkSession

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.models import als as als_model
from recsys_lib.models import ranker as ranker_model

RATING = "rating"
TIMESTAMP = "timestamp"
AGE = "age"
GENDER = "gender"
OCCUPATION = "occupation"
ZIP = "zip"
TITLE = "title"
RELEASE_DATE = "release_date"
RELEASE_YEAR = "release_year"
GENRE_PREFIX = "genre_"

DEFAULT_K = 10
DEFAULT_RATIO = 0.75
INNER_SEED_OFFSET = 1  # the ranker's inner split uses seed + 1
N_CANDIDATES = 150  # ALS candidates per user that the ranker re-orders
VALID_USER_SHARE = 0.2  # users whose candidates are the ranker's early-stopping groups

ALGO_ALS = "ALS (implicit)"
ALGO_RANKER = "ALS + LightGBM ranker"

ALS_SCORE = "als_score"
ALS_RANK = "als_rank"
ITEM_POPULARITY = "item_popularity"  # share of the history's users who rated the item
ITEM_MEAN_RATING = "item_mean_rating"
USER_ACTIVITY = "user_activity"  # the user's ratings / the mean user's ratings
USER_MEAN_RATING = "user_mean_rating"
USER_GENDER_MALE = "user_gender_male"
USER_OCCUPATION = "user_occupation"  # code: position in the sorted occupation names
USER_AGE = "user_age"
GENRE_SHARE = "user_genre_share"  # mean share of the user's ratings in the item's genres
YEAR_GAP = "release_year_gap"  # item's release year - mean year of the user's films
BASE_FEATURES = (
    ALS_SCORE,
    ALS_RANK,
    ITEM_POPULARITY,
    ITEM_MEAN_RATING,
    USER_ACTIVITY,
    USER_MEAN_RATING,
    USER_AGE,
    USER_GENDER_MALE,
    USER_OCCUPATION,
    RELEASE_YEAR,
    GENRE_SHARE,
    YEAR_GAP,
)

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


# --- loading -------------------------------------------------------------------------------


def data_file(folder: Path, name: str) -> Path:
    """``folder/name.gz`` if it exists, else ``folder/name`` (pandas reads either)."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MovieLens-100k file {name}[.gz] not found in {folder}")


def load_ratings(folder: Path) -> pd.DataFrame:
    """``u.data`` as (user_id, item_id, rating, timestamp), in file order.

    The order matters: the stratified split draws one random number per row in this order,
    as Recommenders' ``movielens.load_pandas_df`` does.
    """
    frame = pd.read_csv(
        data_file(folder, "u.data"),
        sep="\t",
        names=[C.USER_ID, C.ITEM_ID, RATING, TIMESTAMP],
        dtype={C.USER_ID: np.int64, C.ITEM_ID: np.int64, RATING: np.float64},
    )
    frame[TIMESTAMP] = frame[TIMESTAMP].astype(np.int64)
    return frame


def load_users(folder: Path) -> pd.DataFrame:
    """``u.user`` as (user_id, age, gender, occupation, zip)."""
    return pd.read_csv(
        data_file(folder, "u.user"),
        sep="|",
        names=[C.USER_ID, AGE, GENDER, OCCUPATION, ZIP],
        dtype={C.USER_ID: np.int64, AGE: np.int64, ZIP: str},
    )


def genre_names(folder: Path) -> list[str]:
    """The 19 genres of ``u.genre`` in flag order (``unknown``, ``Action``, ...)."""
    pairs = pd.read_csv(
        data_file(folder, "u.genre"), sep="|", names=["name", "id"], encoding="latin-1"
    )
    return list(pairs.dropna().sort_values("id")["name"])


def genre_column(name: str) -> str:
    """Column of a genre flag: ``genre_action``, ``genre_children_s``, ..."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in name.lower())
    return GENRE_PREFIX + slug


def load_items(folder: Path) -> pd.DataFrame:
    """``u.item`` (ISO-8859-1) as (item_id, title, release_date, release_year, genre_*).

    ``release_date`` is a timestamp (NaT for the one film without), ``release_year`` a float
    (NaN when unknown), and the 19 genre flags are 0/1 integers.
    """
    genres = [genre_column(g) for g in genre_names(folder)]
    columns = [C.ITEM_ID, TITLE, RELEASE_DATE, "video_release_date", "imdb_url", *genres]
    frame = pd.read_csv(data_file(folder, "u.item"), sep="|", names=columns, encoding="latin-1")
    frame[RELEASE_DATE] = pd.to_datetime(frame[RELEASE_DATE], format="%d-%b-%Y", errors="coerce")
    frame[RELEASE_YEAR] = frame[RELEASE_DATE].dt.year.astype(float)
    frame[genres] = frame[genres].astype(np.int64)
    return frame[[C.ITEM_ID, TITLE, RELEASE_DATE, RELEASE_YEAR, *genres]]


def genre_columns(items: pd.DataFrame) -> list[str]:
    """The genre flag columns of an items frame, in file order."""
    return [c for c in items.columns if c.startswith(GENRE_PREFIX)]


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


# --- ALS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factors:
    """ALS factors with their ids and the training matrix (its non-zeros are "seen")."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    seen: sp.csr_matrix


def confidence_matrix(history: pd.DataFrame) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """User x item CSR matrix of the ratings (as confidence), with sorted user and item ids."""
    user_ids = np.unique(history[C.USER_ID].to_numpy())
    item_ids = np.unique(history[C.ITEM_ID].to_numpy())
    rows = np.searchsorted(user_ids, history[C.USER_ID].to_numpy())
    cols = np.searchsorted(item_ids, history[C.ITEM_ID].to_numpy())
    matrix = sp.csr_matrix(
        (history[RATING].to_numpy(dtype=np.float32), (rows, cols)),
        shape=(len(user_ids), len(item_ids)),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix, user_ids, item_ids


def fit_als(history: pd.DataFrame, settings: Settings) -> Factors:
    """Implicit ALS (``settings.als``) on the ratings of ``history`` as confidence."""
    matrix, user_ids, item_ids = confidence_matrix(history)
    user_factors, item_factors = als_model.fit(matrix, settings.als)
    return Factors(user_ids, item_ids, user_factors, item_factors, matrix)


def top_unseen(factors: Factors, n: int) -> pd.DataFrame:
    """(user_id, item_id, als_score, als_rank): each user's ``n`` best items not in training.

    Scores are dot products of the factors; ties go to the smaller item id. Users who have
    seen all but fewer than ``n`` items get what is left.
    """
    scores = factors.user_factors @ factors.item_factors.T
    rows, cols = factors.seen.nonzero()
    scores[rows, cols] = -np.inf
    n = min(n, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    top = np.take_along_axis(scores, order, axis=1)
    frame = pd.DataFrame(
        {
            C.USER_ID: np.repeat(factors.user_ids, n),
            C.ITEM_ID: factors.item_ids[order.ravel()],
            ALS_SCORE: top.ravel().astype(np.float64),
            ALS_RANK: np.tile(np.arange(1, n + 1, dtype=np.int64), len(factors.user_ids)),
        }
    )
    return frame[np.isfinite(frame[ALS_SCORE])].reset_index(drop=True)


# --- ranker features -----------------------------------------------------------------------


def features(
    candidates: pd.DataFrame,
    history: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
) -> pd.DataFrame:
    """``candidates`` (user_id, item_id, als_score, als_rank) with the ranker's features.

    Statistics come from ``history`` only (the ratings the candidates' ALS was fitted on),
    scaled so that a history of 56 % or 75 % of the data gives comparable values: item
    popularity as a share of users, user activity relative to the mean user. Demographics
    come from ``users``, release year and genre flags from ``items``.
    """
    genres = genre_columns(items)
    catalogue = items.set_index(C.ITEM_ID)
    by_item = history.groupby(C.ITEM_ID)[RATING].agg(["count", "mean"])
    n_users = history[C.USER_ID].nunique()
    by_user = history.groupby(C.USER_ID)[RATING].agg(["count", "mean"])
    rated = history[[C.USER_ID, C.ITEM_ID]].join(catalogue[[RELEASE_YEAR, *genres]], on=C.ITEM_ID)
    per_user = rated.groupby(C.USER_ID)
    genre_share = per_user[genres].sum().div(by_user["count"], axis=0)
    mean_year = per_user[RELEASE_YEAR].mean()
    occupations = {name: code for code, name in enumerate(sorted(users[OCCUPATION].unique()))}
    people = users.set_index(C.USER_ID)

    out = candidates.copy()
    user_key, item_key = out[C.USER_ID], out[C.ITEM_ID]
    out[ITEM_POPULARITY] = item_key.map(by_item["count"]).fillna(0.0).to_numpy() / max(n_users, 1)
    out[ITEM_MEAN_RATING] = item_key.map(by_item["mean"]).to_numpy()
    out[USER_ACTIVITY] = user_key.map(by_user["count"]).to_numpy() / by_user["count"].mean()
    out[USER_MEAN_RATING] = user_key.map(by_user["mean"]).to_numpy()
    out[USER_AGE] = user_key.map(people[AGE]).astype(float).to_numpy()
    out[USER_GENDER_MALE] = (user_key.map(people[GENDER]) == "M").astype(float).to_numpy()
    out[USER_OCCUPATION] = user_key.map(people[OCCUPATION]).map(occupations).astype(float)
    out[RELEASE_YEAR] = item_key.map(catalogue[RELEASE_YEAR]).to_numpy()
    flags = catalogue.loc[item_key, genres].to_numpy(dtype=float)
    shares = genre_share.reindex(user_key).fillna(0.0).to_numpy()
    out[GENRE_SHARE] = (flags * shares).sum(axis=1) / np.maximum(flags.sum(axis=1), 1.0)
    out[YEAR_GAP] = out[RELEASE_YEAR].to_numpy() - user_key.map(mean_year).to_numpy()
    for column, values in zip(genres, flags.T, strict=True):
        out[column] = values
    return out


def feature_names(items: pd.DataFrame) -> list[str]:
    """The ranker's feature columns: :data:`BASE_FEATURES` and the genre flags."""
    return [*BASE_FEATURES, *genre_columns(items)]


def label(candidates: pd.DataFrame, holdout: pd.DataFrame) -> np.ndarray:
    """1 where the user rated the candidate in ``holdout`` (any rating), else 0."""
    pairs = pd.MultiIndex.from_frame(holdout[[C.USER_ID, C.ITEM_ID]])
    keys = pd.MultiIndex.from_frame(candidates[[C.USER_ID, C.ITEM_ID]])
    return keys.isin(pairs).astype(np.int64)


# --- the two algorithms --------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendations:
    """Top-k lists (user_id, item_id, rank) of one algorithm and its two timings."""

    algo: str
    lists: pd.DataFrame
    train_seconds: float
    predict_seconds: float


def top_k(frame: pd.DataFrame, score: str, k: int) -> pd.DataFrame:
    """(user_id, item_id, rank): each user's ``k`` highest ``score`` rows, rank 1 = best.

    Ties go to the better ALS rank.
    """
    ordered = frame.assign(_neg=-frame[score]).sort_values(
        [C.USER_ID, "_neg", ALS_RANK], kind="mergesort"
    )
    ordered[C.RANK] = ordered.groupby(C.USER_ID).cumcount() + 1
    best = ordered[ordered[C.RANK] <= k]
    return best[[C.USER_ID, C.ITEM_ID, C.RANK]].reset_index(drop=True)


def recommend_als(train: pd.DataFrame, settings: Settings, k: int = DEFAULT_K) -> Recommendations:
    """ALS alone: train = building the matrix and the fit; predict = scoring and top ``k``."""
    started = time.perf_counter()
    factors = fit_als(train, settings)
    trained = time.perf_counter()
    lists = top_unseen(factors, k).rename(columns={ALS_RANK: C.RANK})[
        [C.USER_ID, C.ITEM_ID, C.RANK]
    ]
    done = time.perf_counter()
    return Recommendations(ALGO_ALS, lists, trained - started, done - trained)


def ranker_frame(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    settings: Settings,
    n_candidates: int,
) -> pd.DataFrame:
    """Labelled, featured ALS candidates: ALS on ``train``, labels from ``holdout``."""
    candidates = top_unseen(fit_als(train, settings), n_candidates)
    frame = features(candidates, train, users, items)
    frame[C.LABEL] = label(frame, holdout)
    frame[C.GROUP] = frame[C.USER_ID]
    return frame


def recommend_ranker(
    train: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    settings: Settings,
    k: int = DEFAULT_K,
    seed: int = C.DEFAULT_SEED,
    n_candidates: int = N_CANDIDATES,
) -> tuple[Recommendations, dict[str, float]]:
    """ALS + ranker, trained without the test set; also returns figures of the ranker fit.

    The training set is split again (:func:`stratified_split`, seed ``seed + 1``); ALS on
    the inner train gives candidates labelled by the inner holdout; a share of users
    (:data:`VALID_USER_SHARE`) are early-stopping groups; groups without a positive are
    dropped. Then ALS is refitted on the whole training set and its candidates, with
    features from the whole training set, are scored. Train time is everything before
    scoring the final candidates; predict time is the scoring and the top ``k``.
    """
    started = time.perf_counter()
    inner_train, inner_holdout = stratified_split(train, seed=seed + INNER_SEED_OFFSET)
    learn = ranker_frame(inner_train, inner_holdout, users, items, settings, n_candidates)
    names = feature_names(items)
    learn_users = np.sort(learn[C.USER_ID].unique())
    rng = np.random.RandomState(seed)
    valid_users = rng.choice(
        learn_users, int(round(VALID_USER_SHARE * len(learn_users))), replace=False
    )
    positives = learn.groupby(C.GROUP)[C.LABEL].transform("max") > 0
    learn = learn[positives]
    is_valid = learn[C.USER_ID].isin(valid_users)
    model = ranker_model.fit_ranker(learn[~is_valid], learn[is_valid], names, settings.ranker)
    final = top_unseen(fit_als(train, settings), n_candidates)
    final = features(final, train, users, items)
    trained = time.perf_counter()
    final["_score"] = ranker_model.predict(model, final, names)
    lists = top_k(final, "_score", k)
    done = time.perf_counter()
    figures = {
        "inner_train_ratings": float(len(inner_train)),
        "inner_holdout_ratings": float(len(inner_holdout)),
        "training_rows": float((~is_valid).sum()),
        "validation_rows": float(is_valid.sum()),
        "positive_share": float(learn[C.LABEL].mean()) if len(learn) else 0.0,
        "best_iteration": float(model.best_iteration_ or settings.ranker.num_boost_round),
    }
    return Recommendations(ALGO_RANKER, lists, trained - started, done - trained), figures


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


@dataclass(frozen=True)
class BenchmarkResult:
    """Our rows, the split's sizes and the ranker's fit figures."""

    rows: tuple[Row, ...]
    k: int
    seed: int
    train_ratings: int
    test_ratings: int
    ranker_figures: dict[str, float]


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
    from recsys_lib.evaluation import ranking_metrics

    lists = pd.concat(
        [r.lists.assign(**{C.VARIANT: r.algo}) for r in recommendations], ignore_index=True
    )
    lists_df = spark.createDataFrame(
        lists[[C.VARIANT, C.USER_ID, C.ITEM_ID, C.RANK]].astype(
            {C.USER_ID: "int64", C.ITEM_ID: "int64", C.RANK: "int32"}
        ),
        f"{C.VARIANT} string, {C.USER_ID} long, {C.ITEM_ID} long, {C.RANK} int",
    )
    truth = test[[C.USER_ID, C.ITEM_ID]].drop_duplicates().assign(relevance=1.0)
    relevant_df = spark.createDataFrame(
        truth, f"{C.USER_ID} long, {C.ITEM_ID} long, relevance double"
    )
    common = np.intersect1d(truth[C.USER_ID].unique(), lists[C.USER_ID].unique())
    users_df = spark.createDataFrame(
        pd.DataFrame({C.USER_ID: common.astype("int64")}), f"{C.USER_ID} long"
    )
    figures = ranking_metrics(lists_df, relevant_df, [k], users=users_df)
    values: dict[tuple[str, str], float] = {}
    for variant, metric, cut, value in figures:
        if metric == "users_evaluated" or cut == k:
            values[(variant, metric)] = float(value)
    rows = []
    for r in recommendations:
        users = values.get((r.algo, "users_evaluated"))
        rows.append(
            Row(
                algo=r.algo,
                map=values[(r.algo, "map")],
                ndcg=values[(r.algo, "ndcg")],
                precision=values[(r.algo, "precision")],
                recall=values[(r.algo, "recall")],
                train_seconds=r.train_seconds,
                predict_seconds=r.predict_seconds,
                users=None if users is None else int(users),
            )
        )
    return tuple(rows)


def run_benchmark(
    spark: SparkSession,
    settings: Settings,
    folder: Path,
    k: int = DEFAULT_K,
    seed: int = C.DEFAULT_SEED,
    n_users: int | None = None,
    n_candidates: int = N_CANDIDATES,
) -> BenchmarkResult:
    """Split, run both algorithms, evaluate. ``n_users`` subsamples users (tests)."""
    ratings = load_ratings(folder)
    if n_users is not None:
        ratings = subsample_users(ratings, n_users, seed)
    users, items = load_users(folder), load_items(folder)
    train, test = stratified_split(ratings, DEFAULT_RATIO, seed)
    als_recs = recommend_als(train, settings, k)
    ranker_recs, figures = recommend_ranker(train, users, items, settings, k, seed, n_candidates)
    rows = evaluate(spark, [als_recs, ranker_recs], test, k)
    return BenchmarkResult(rows, k, seed, len(train), len(test), figures)


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


def format_report(result: BenchmarkResult) -> str:
    """Our table, then the published one, labelled as measured on their machine."""
    users = {r.users for r in result.rows if r.users is not None}
    evaluated = f"{users.pop()} users evaluated" if len(users) == 1 else "users evaluated vary"
    return "\n".join(
        [
            f"MovieLens-100k, Recommenders protocol: stratified split by item "
            f"({DEFAULT_RATIO:.0%} train, seed {result.seed}), k = {result.k}, seen items "
            f"removed, every test rating relevant.",
            f"{result.train_ratings} train / {result.test_ratings} test ratings, {evaluated}. "
            "MAP is Recommenders' map_at_k; predicting = scoring + top k.",
            "",
            "measured here:",
            format_table(result.rows),
            "",
            f"published (their machine): {NOTEBOOK_SOURCE}",
            format_table(published_rows(PUBLISHED_NOTEBOOK)),
            "",
            f"published (their machine): {README_SOURCE}",
            format_table(published_rows(PUBLISHED_README)),
        ]
    )
