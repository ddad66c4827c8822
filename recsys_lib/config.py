"""Settings: one frozen object built from conf/*.yaml and ``RECSYS__SECTION__KEY`` variables.

Precedence, lowest first: ``conf/base.yaml``, ``conf/<RECSYS_ENV>.yaml`` (default ``local``),
environment variables. Example::

    RECSYS__ALS__FACTORS=128 RECSYS__SPARK__MASTER=spark://127.0.0.1:7077 recsys run train_als ...

Relative paths are resolved against ``RECSYS_HOME`` (default: the current directory).
This module imports nothing heavy, so DAG files may use it.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "RECSYS__"
ENV_HOME = "RECSYS_HOME"
ENV_NAME = "RECSYS_ENV"
ENV_CONF_DIR = "RECSYS_CONF_DIR"
DEFAULT_ENV = "local"


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


@dataclass(frozen=True)
class PathSettings:
    warehouse: str
    jars_cache: str
    jvm_archive: str = ""  # class-data archive of the driver JVM (make setup); "" = none


@dataclass(frozen=True)
class SparkSettings:
    master: str
    app_name: str
    driver_memory: str
    executor_memory: str
    executor_cores: int
    shuffle_partitions: int
    packages: tuple[str, ...]
    conf: Mapping[str, str] = field(default_factory=dict)
    submit_java_options: str = ""
    concurrent_actions: int = 4  # independent Spark actions a stage runs side by side; 1 = none


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    artifact_root: str
    experiment: str


@dataclass(frozen=True)
class InputSettings:
    format: str
    events_path: str
    # Catalogue: item_properties*.csv[.gz] (a file or a directory of them) and the category
    # tree; an empty path means the shop has none (items are then known from events only).
    item_properties_path: str = ""
    category_tree_path: str = ""


@dataclass(frozen=True)
class CleanSettings:
    max_rejected_share: float


@dataclass(frozen=True)
class BackfillSettings:
    chunk_days: int = 31  # ranged stages (ingest, clean, aggregate) process this many days a pass


@dataclass(frozen=True)
class PrivacySettings:
    key_env: str
    allow_demo_key: bool


@dataclass(frozen=True)
class AlsSettings:
    window_days: int
    factors: int
    regularization: float
    iterations: int
    alpha: float
    event_weights: Mapping[str, float]
    threads: int
    seed: int
    max_matrix_mb: int
    backend: str = "implicit"  # implicit (single node) or spark (MLlib, scales out)
    half_life_days: float = 0.0  # time decay of confidence; 0 = none
    similar_top_n: int = 20  # recs.similar_items per item
    similar_batch_rows: int = 1024  # items scored against all items at once


@dataclass(frozen=True)
class BoughtTogetherSettings:
    window_days: int
    hours: float  # same user, carted or bought within this many hours (or same transaction)
    event_types: tuple[str, ...]
    min_support: int  # users who have the pair
    min_lift: float
    top_n: int
    max_items_per_user: int  # users with more distinct items in the window are skipped


@dataclass(frozen=True)
class PopularSettings:
    window_days: int
    half_life_days: float
    top_n: int
    new_arrival_days: int  # an item first seen in the last K days is a new arrival
    new_arrivals_top_n: int


@dataclass(frozen=True)
class CandidateSettings:
    active_days: int  # users with an event in this many days ending on D get candidates
    recent_days: int  # "recent" views, carts and purchases
    recent_items: int  # most recent items per user that seed similar / bought-together
    per_source: Mapping[str, int]  # at most this many candidates per user from each source
    recall_k: tuple[int, ...]  # cut-offs of the recall evaluation
    max_per_user: int = 100  # the union keeps this many per user, in its own order


@dataclass(frozen=True)
class FeatureSettings:
    event_weights: Mapping[str, float]
    affinity_half_life_days: float
    rate_prior_strength: float
    top_categories: int


@dataclass(frozen=True)
class CompletionSettings:
    window_days: int
    holdout_share: float
    min_confidence: float
    leaf_min_confidence: float
    num_boost_round: int
    early_stopping_rounds: int
    learning_rate: float
    num_leaves: int
    min_labelled_items: int
    max_training_rows: int
    seed: int


@dataclass(frozen=True)
class QualitySettings:
    min_row_ratio: float
    max_row_ratio: float


@dataclass(frozen=True)
class RecommendSettings:
    top_k: int
    category_cap: int = 0  # at most this many items of one leaf category per list; 0 = no cap
    min_user_coverage: float = 0.9  # share of candidate users who must get a list
    min_row_ratio: float = 0.5  # rows vs yesterday's published partition
    max_row_ratio: float = 2.0


@dataclass(frozen=True)
class ImportanceSettings:
    event_values: Mapping[str, float]  # weight of a sample by its label: none, view, cart, purchase
    recency_half_life_days: float  # halves with each half-life since the user's last event
    propensity_power: float  # (1 + item views / median views) ** -power; 0 = off
    learned_power: float  # exponent of the learned component; 0 = off
    floor: float  # importance never falls below this (it stays in (0, 1])
    folds: int  # out-of-fold losses of the pilot ranker: folds by user
    pilot_rounds: int  # boosting rounds of the pilot ranker
    predictor_rounds: int  # boosting rounds of the loss predictor (a LightGBM regressor)
    seed: int


@dataclass(frozen=True)
class RankerSettings:
    registered_model: str  # MLflow Model Registry name
    train_days: int  # label days of training (before the validation and holdout days)
    num_boost_round: int
    early_stopping_rounds: int
    learning_rate: float
    num_leaves: int
    min_child_samples: int
    feature_fraction: float
    lambdarank_truncation_level: int
    seed: int
    eval_k: tuple[int, ...]  # cut-offs of the holdout evaluation
    gate_k: int  # the champion gate compares NDCG at this cut-off ...
    champion_tolerance: float  # ... and promotes when new >= champion - tolerance
    sample_fraction: float  # share of samples the ranker trains on (importance sampling); 1 = all
    ablation_fraction: float  # the sampled ablation's share
    ablations: bool  # also train without importance and on the sampled share
    max_training_rows: int  # memory bound of the single-node training step


@dataclass(frozen=True)
class Settings:
    """Everything a stage needs to know; built once per process by :func:`load_settings`."""

    home: Path
    env: str
    paths: PathSettings
    spark: SparkSettings
    mlflow: MlflowSettings
    input: InputSettings
    clean: CleanSettings
    privacy: PrivacySettings
    features: FeatureSettings
    completion: CompletionSettings
    quality: QualitySettings
    als: AlsSettings
    bought_together: BoughtTogetherSettings
    popular: PopularSettings
    candidates: CandidateSettings
    importance: ImportanceSettings
    ranker: RankerSettings
    recommend: RecommendSettings
    backfill: BackfillSettings = field(default_factory=BackfillSettings)

    def resolve(self, path: str) -> str:
        """Absolute form of a configured path; URIs (``s3a://``, ``file:``) are kept."""
        if "://" in path or path.startswith("file:"):
            return path
        p = Path(path)
        return str(p if p.is_absolute() else (self.home / p).resolve())

    @property
    def warehouse(self) -> str:
        return self.resolve(self.paths.warehouse)

    @property
    def jars_cache(self) -> str:
        return self.resolve(self.paths.jars_cache)

    @property
    def tracking_uri(self) -> str:
        """MLflow URI with a relative sqlite path made absolute."""
        uri = self.mlflow.tracking_uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
            return prefix + self.resolve(uri[len(prefix) :])
        return uri


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    return data


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested mapping from ``RECSYS__SECTION__KEY[__SUBKEY]=value`` variables.

    Values are parsed as YAML scalars, so ``64`` is an int and ``true`` a bool. Names are
    matched in lower case, except a key with a dot: a Spark setting under ``spark.conf``
    (``RECSYS__SPARK__CONF__spark.sql.autoBroadcastJoinThreshold``) keeps its case, which
    Spark needs.
    """
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k if "." in k else k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if len(keys) < 2 or not all(keys):
            raise ConfigError(f"{name}: expected RECSYS__SECTION__KEY")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return tree


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(annotation, value, where)  # type: ignore[arg-type]
    if origin in (tuple,):
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        item_type = (typing.get_args(annotation) or (str,))[0]
        if item_type is str:
            return tuple(str(v).strip() for v in items)
        return tuple(_coerce(v, item_type, where) for v in items)
    if origin in (Mapping, dict) or annotation is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        value_type = typing.get_args(annotation)[1] if typing.get_args(annotation) else str
        return types.MappingProxyType(
            {str(k): _coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
        )
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is str and value is None:
        return ""  # `key:` in a file or a blank variable: empty, not the text "None"
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from exc
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing key {f.name!r}")
    return cls(**kwargs)


def load_settings(
    env: str | None = None,
    *,
    conf_dir: Path | None = None,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from the configuration files and environment overrides."""
    environ = os.environ if environ is None else environ
    home = (home or Path(environ.get(ENV_HOME, "."))).resolve()
    conf_dir = conf_dir or Path(environ.get(ENV_CONF_DIR, home / "conf"))
    env = env or environ.get(ENV_NAME, DEFAULT_ENV)
    base_file = conf_dir / "base.yaml"
    if not base_file.is_file():
        raise ConfigError(
            f"configuration not found: {base_file} (set {ENV_HOME} or {ENV_CONF_DIR})"
        )
    data = _read_yaml(base_file)
    env_file = conf_dir / f"{env}.yaml"
    if env_file.is_file():
        data = _deep_merge(data, _read_yaml(env_file))
    elif env != DEFAULT_ENV:
        raise ConfigError(f"environment {env!r} has no configuration file {env_file}")
    data = _deep_merge(data, env_overrides(environ))
    sections = {k: v for k, v in data.items()}
    settings: Settings = _build(Settings, {"home": home, "env": env, **sections}, "settings")
    return dataclasses.replace(settings, home=home)
