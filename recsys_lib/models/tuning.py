"""The parts of ``recsys tune als|ease`` that read no table: the search spaces, the lists a
trial proposes, their figure, and the tuned file. The search itself, which reads
``clean.events`` and records the trials in MLflow, is :mod:`recsys_lib.stages.tune`.

As of night D, the validation day is V = D − 1. Each trial fits the model on the window
(``als.window_days`` or ``ease.window_days``) ending on V − 1, exactly as the nightly fits
it, and proposes each user's top k with the candidate source's own kernel
(:func:`~recsys_lib.models.scoring.top_k_for_users` for ALS,
:func:`~recsys_lib.models.scoring.top_k_ease` for EASE). The figure is NDCG@k on what the
users did on V, graded as the ranker's labels (view 1, cart 2, purchase 3), over the users
the model knows who have an event on V. Day D is never read: it stays the holdout of the
ranker's nightly evaluation.

Every trial is a nested MLflow run of one parent run (``tune_<model> <D>``), with its
parameters and figures. The best trial's parameters are written to ``conf/tuned.yaml``
(``config.TUNED_FILE``), which :func:`recsys_lib.config.load_settings` reads over
``conf/base.yaml`` and under the environment's file and variables; trial 0 is always the
settings in force, so the file never holds a setting that measured worse than them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import AlsSettings, Settings
from recsys_lib.evaluation import NDCG, RECALL, RELEVANCE, day_labels, ranking_metrics
from recsys_lib.models import als as als_model
from recsys_lib.models import ease as ease_model
from recsys_lib.models.scoring import ranked_frame, top_k_ease, top_k_for_users

log = logging.getLogger(__name__)

ALS, EASE = "als", "ease"
MODELS = (ALS, EASE)
ALS_FACTORS = (32, 64, 128)
ALS_REGULARIZATION = (-2.0, 2.0)  # log10 range
ALS_ALPHA = (-0.5, 1.7)  # log10 range: about 0.3 .. 50
EASE_REGULARIZATION = (1.0, 4.0)  # log10 range: 10 .. 10,000
BATCH_ROWS = 1024  # users scored at once (a batch_rows x items block)
LIST_COLUMNS = [C.USER_ID, C.RANK, C.ITEM_ID, C.SCORE]
Params = dict[str, Any]


@dataclass(frozen=True)
class Trial:
    """One fit: its parameters, NDCG@k and recall@k on the validation day, and seconds."""

    params: Params
    ndcg: float
    recall: float
    seconds: float


@dataclass(frozen=True)
class TuningResult:
    """The trials in the order run (trial 0: the settings in force) and the best's index."""

    model: str
    run_date: dt.date
    valid_day: dt.date
    users: int
    k: int
    trials: tuple[Trial, ...]
    best: int
    run_id: str


def als_trials(settings: Settings, n: int, seed: int) -> list[Params]:
    """The settings in force, then random draws: factors from :data:`ALS_FACTORS`,
    regularization and alpha log-uniform in their ranges (iterations are not searched)."""
    als = settings.als
    current = {"factors": als.factors, "regularization": als.regularization, "alpha": als.alpha}
    rng = np.random.RandomState(seed)
    trials = [current]
    while len(trials) < n:
        trials.append(
            {
                "factors": int(rng.choice(ALS_FACTORS)),
                "regularization": round(float(10 ** rng.uniform(*ALS_REGULARIZATION)), 4),
                "alpha": round(float(10 ** rng.uniform(*ALS_ALPHA)), 3),
            }
        )
    return trials


def ease_trials(settings: Settings, n: int, seed: int) -> list[Params]:
    """The settings in force, then ``n - 1`` regularizations evenly spaced in log10 over
    :data:`EASE_REGULARIZATION` (``seed`` is unused: the grid is fixed)."""
    grid = np.logspace(*EASE_REGULARIZATION, num=max(n - 1, 1))
    current = {"regularization": settings.ease.regularization}
    return [current, *({"regularization": round(float(x), 1)} for x in grid[: n - 1])]


def validation_relevance(events: DataFrame) -> DataFrame:
    """(user_id, item_id, relevance): the validation day's items, graded as labels."""
    return day_labels(events).select(
        C.USER_ID, C.ITEM_ID, F.col(C.LABEL).cast("double").alias(RELEVANCE)
    )


def als_lists(
    collected: tuple[sp.csr_matrix, np.ndarray, np.ndarray],
    rows: np.ndarray,
    als: AlsSettings,
    params: Params,
    k: int,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """(user_id, rank, item_id, score): the top ``k`` of the users at matrix ``rows`` by
    ALS fitted with ``params`` on the collected (matrix, user ids, item ids), scored as the
    ``als`` source scores (:func:`~recsys_lib.models.scoring.top_k_for_users`)."""
    matrix, user_ids, item_ids = collected
    user_factors, item_factors = als_model.fit(matrix, dataclasses.replace(als, **params))
    parts = []
    for start in range(0, len(rows), batch_rows):
        block = rows[start : start + batch_rows]
        nothing = [np.zeros(0, dtype=np.int64)] * len(block)
        best, scores = top_k_for_users(user_factors[block], nothing, item_ids, item_factors, k)
        parts.append(ranked_frame(user_ids[block], best, scores, item_ids))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LIST_COLUMNS)


def ease_lists(
    collected: tuple[sp.csr_matrix, np.ndarray, np.ndarray],
    rows: np.ndarray,
    params: Params,
    k: int,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """(user_id, rank, item_id, score): the top ``k`` of the users at matrix ``rows`` by
    EASE fitted with ``params`` on the collected (binary matrix, user ids, item ids), scored
    as the ``ease`` source scores (:func:`~recsys_lib.models.scoring.top_k_ease`)."""
    matrix, user_ids, item_ids = collected
    model = ease_model.fit(matrix, item_ids, float(params["regularization"]))
    parts = []
    for start in range(0, len(rows), batch_rows):
        block = rows[start : start + batch_rows]
        histories = [
            item_ids[matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]]] for r in block
        ]
        best, scores = top_k_ease(histories, model.item_ids, model.weights, k)
        parts.append(ranked_frame(user_ids[block], best, scores, model.item_ids))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LIST_COLUMNS)


def judge(
    spark: SparkSession, lists: pd.DataFrame, relevant: DataFrame, users: DataFrame, k: int
) -> tuple[float, float]:
    """NDCG@k and recall@k of a trial's ``lists`` on the validation day's ``relevant``
    items, over ``users`` (:func:`~recsys_lib.evaluation.ranking_metrics`)."""
    frame = spark.createDataFrame(
        lists[[C.USER_ID, C.ITEM_ID, C.RANK]].assign(**{C.VARIANT: "trial"}),
        f"{C.USER_ID} string, {C.ITEM_ID} long, {C.RANK} int, {C.VARIANT} string",
    )
    figures = {(m, kk): v for _, m, kk, v in ranking_metrics(frame, relevant, [k], users)}
    return figures.get((NDCG, k), 0.0), figures.get((RECALL, k), 0.0)


def best_trial(trials: Sequence[Trial]) -> int:
    """The index of the highest NDCG; ties to the earlier trial (the settings in force)."""
    return max(range(len(trials)), key=lambda i: (trials[i].ndcg, -i))


def write_tuned(path: Path, result: TuningResult) -> bool:
    """Write the best trial's parameters as the ``<model>`` section of ``path`` with a
    provenance comment line, keeping the other models' sections and lines; the file is
    replaced whole (a reader sees the old file or the new one). When the settings in force
    (trial 0) measured best, nothing changes and False is returned."""
    if result.best == 0:
        return False
    data: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if path.is_file():
        text = path.read_text()
        data = yaml.safe_load(text) or {}
        notes = {
            m: line for line in text.splitlines() for m in MODELS if line.startswith(f"# {m}: ")
        }
    best, before = result.trials[result.best], result.trials[0]
    data[result.model] = {**data.get(result.model, {}), **best.params}
    notes[result.model] = (
        f"# {result.model}: `recsys tune {result.model} --date {result.run_date}` (MLflow run "
        f"{result.run_id}): NDCG@{result.k} {best.ndcg:.4f} on {result.valid_day} "
        f"({result.users} users) against {before.ndcg:.4f} with the settings before "
        f"(trial {result.best} of {len(result.trials)})"
    )
    header = [
        "# Written by `recsys tune` (recsys_lib/stages/tune.py); read over conf/base.yaml.",
        *[notes[m] for m in MODELS if m in notes],
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text("\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=True))
    os.replace(staged, path)
    return True


def format_result(result: TuningResult) -> str:
    """The trials, best first, and what the settings before measured."""
    lines = [
        f"tune {result.model} as of {result.run_date}: fitted on the window ending "
        f"{result.valid_day - dt.timedelta(days=1)}, judged on {result.valid_day} "
        f"({result.users} users), NDCG@{result.k}",
        f"{'trial':>5} {'ndcg':>8} {'recall':>8} {'seconds':>8}  params",
    ]
    order = sorted(range(len(result.trials)), key=lambda i: -result.trials[i].ndcg)
    for i in order:
        t = result.trials[i]
        mark = " (settings before)" if i == 0 else ""
        lines.append(f"{i:>5} {t.ndcg:>8.4f} {t.recall:>8.4f} {t.seconds:>8.1f}  {t.params}{mark}")
    return "\n".join(lines)
