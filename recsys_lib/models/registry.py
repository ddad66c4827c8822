"""The ranker's registry: MLflow Model Registry versions, the alias ``champion`` and the gate
that moves it, and the loss predictor saved with a ``train_ranker`` run.

A version's content hash tag lets a rerun reuse the version it registered before; the tags
``recsys.promoted_for`` and ``recsys.previous_champion`` let a rerun of a past night see the
champion that night saw (:func:`load_champion` with ``as_of``).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import mlflow.lightgbm
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from recsys_lib.config import Settings
from recsys_lib.models.importance import LossPredictor
from recsys_lib.models.ranker import Ranker
from recsys_lib.runtime import tracking
from recsys_lib.runtime.notify import CHAMPION_NOT_PROMOTED, notify

log = logging.getLogger(__name__)

CHAMPION = "champion"
CONTENT_HASH_TAG = "recsys.content_hash"
PROMOTED_FOR_TAG = tracking.PROMOTED_FOR_TAG
PREVIOUS_CHAMPION_TAG = "recsys.previous_champion"  # the version that held it before
NO_CHAMPION = "none"
PREDICTOR_ARTIFACT = "loss_predictor"
MODEL_ARTIFACT = "ranker"


@dataclass(frozen=True)
class Champion:
    """A registered version that holds (or held) the alias ``champion``."""

    ranker: Ranker
    version: str  # ``model_version`` of the recommendations it ranks: recsys-ranker/3
    number: str  # its registry version: 3


def client(settings: Settings) -> MlflowClient:
    tracking.use_experiment(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri)


def load_champion(
    settings: Settings, as_of: dt.date | None = None, *, before_night: bool = False
) -> Champion | None:
    """The version with the alias ``champion`` (None before the first promotion).

    With ``as_of``, the version that held the alias at the end of night ``as_of`` (at its
    start with ``before_night``): versions promoted by later nights are stepped back through
    along their ``recsys.previous_champion`` tags, so a rerun of a past night sees the
    champion that night saw."""
    mlflow_client = client(settings)
    name = settings.ranker.registered_model
    try:
        version: ModelVersion | None = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    while version is not None and as_of is not None:
        promoted_for = version.tags.get(PROMOTED_FOR_TAG)
        night = as_of.isoformat()
        if (
            promoted_for is None
            or promoted_for < night
            or (promoted_for == night and not before_night)
        ):
            break
        previous = version.tags.get(PREVIOUS_CHAMPION_TAG, NO_CHAMPION)
        version = (
            None if previous == NO_CHAMPION else mlflow_client.get_model_version(name, previous)
        )
    if version is None:
        return None
    booster = mlflow.lightgbm.load_model(f"models:/{name}/{version.version}")
    ranker = Ranker(booster.model_to_string(), tuple(booster.feature_name()))
    return Champion(ranker, f"{name}/{version.version}", str(version.version))


def register(settings: Settings, ranker: Ranker, run_id: str) -> str:
    """The registry version of ``ranker``: an existing version with the same content, or a new
    one logged with the current run."""
    mlflow_client = client(settings)
    name = settings.ranker.registered_model
    try:
        existing = [
            int(v.version)
            for v in mlflow_client.search_model_versions(
                f"name = '{name}' AND tags.`{CONTENT_HASH_TAG}` = '{ranker.content_hash}'"
            )
        ]
    except MlflowException:
        existing = []
    if existing:
        return str(min(existing))
    # Stated requirements: inferring them imports and inspects the environment (10 s here).
    info = mlflow.lightgbm.log_model(
        ranker.booster(),
        name=MODEL_ARTIFACT,
        registered_model_name=name,
        pip_requirements=[f"lightgbm=={lgb.__version__}"],
    )
    version = str(info.registered_model_version)
    mlflow_client.set_model_version_tag(name, version, CONTENT_HASH_TAG, ranker.content_hash)
    mlflow_client.set_model_version_tag(name, version, "recsys.run_id", run_id)
    return version


@dataclass(frozen=True)
class Baseline:
    """The best order measured beside a ranker on its holdout without a model: a candidate
    source's, the candidates' union or the popularity list's, and its NDCG."""

    variant: str
    ndcg: float


def gate(
    new_ndcg: float,
    champion_ndcg: float | None,
    tolerance: float,
    baseline: Baseline | None = None,
) -> bool:
    """Whether a new ranker takes the alias. With a champion: when its holdout NDCG is at
    least the champion's (same holdout) minus the tolerance. The first ranker: when it beats
    the best order measured without a model (``baseline``: every single source and the
    popularity list, on the same users); with nothing measured, it takes it."""
    if champion_ndcg is not None:
        return new_ndcg >= champion_ndcg - tolerance
    return baseline is None or new_ndcg > baseline.ndcg


def apply_gate(
    settings: Settings,
    version: str,
    new_ndcg: float,
    champion: Champion | None,
    champion_ndcg: float | None,
    run_date: dt.date,
    baseline: Baseline | None = None,
) -> bool:
    """Give ``version`` the alias ``champion`` if it passes the gate against ``champion`` (the
    champion at the start of night ``run_date``), or, as the first ranker, against
    ``baseline``; log the decision. A rerun of a past night never takes the alias from a
    version a later night promoted."""
    ranker = settings.ranker
    name = ranker.registered_model
    if not gate(new_ndcg, champion_ndcg, ranker.champion_tolerance, baseline):
        k = ranker.gate_k
        if champion is None:
            assert baseline is not None
            reason = (
                f"{name} version {version} NOT promoted: the first ranker's holdout NDCG@{k} "
                f"{new_ndcg:.4f} does not beat {baseline.variant}'s {baseline.ndcg:.4f}; the "
                "best measured order serves until a ranker does"
            )
        else:
            assert champion_ndcg is not None
            reason = (
                f"{name} version {version} NOT promoted: holdout NDCG@{k} {new_ndcg:.4f} < "
                f"champion {champion.version}'s {champion_ndcg:.4f} - "
                f"{ranker.champion_tolerance:.4f}; {champion.version} stays the champion"
            )
        notify(settings, CHAMPION_NOT_PROMOTED, reason, run_date, version=f"{name}/{version}")
        return False
    mlflow_client = client(settings)
    current = load_champion(settings)
    if current is not None:
        holder = mlflow_client.get_model_version(name, current.number)
        later = holder.tags.get(PROMOTED_FOR_TAG, "") > run_date.isoformat()
        if later and current.number != version:
            log.warning(
                "%s version %s passed the gate of past night %s, but %s was promoted by a "
                "later night and stays the champion",
                name,
                version,
                run_date,
                current.version,
            )
            return False
    mlflow_client.set_model_version_tag(name, version, PROMOTED_FOR_TAG, run_date.isoformat())
    mlflow_client.set_model_version_tag(
        name, version, PREVIOUS_CHAMPION_TAG, champion.number if champion else NO_CHAMPION
    )
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    log.info(
        "%s version %s is the champion (holdout NDCG@%d %.4f; previous champion %s)",
        name,
        version,
        ranker.gate_k,
        new_ndcg,
        "none" if champion is None else f"{champion.version} at {champion_ndcg:.4f}",
    )
    return True


def load_predictor(run_id: str) -> LossPredictor | None:
    """The loss predictor saved with a ``train_ranker`` run (None if it saved none)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=PREDICTOR_ARTIFACT, dst_path=tmp
            )
        except (MlflowException, OSError):
            return None
        return LossPredictor.load(Path(local))
