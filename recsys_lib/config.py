"""Settings: one frozen object built from conf/*.yaml and ``RECSYS__SECTION__KEY`` variables.

Precedence, lowest first: ``conf/base.yaml``, ``conf/<RECSYS_ENV>.yaml`` (default ``local``),
environment variables. Example::

    RECSYS__ALS__FACTORS=128 RECSYS__SPARK__MASTER=spark://127.0.0.1:7077 recsys run train_als ...

Relative paths are resolved against ``RECSYS_HOME`` (default: the current directory).
This module imports nothing heavy, so DAG files may use it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import types
import typing
import zoneinfo
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
TUNED_FILE = "tuned.yaml"  # written by `recsys tune`; read over base.yaml, under the env's
ENV_TUNED = "RECSYS_TUNED"  # "off": leave tuned.yaml out (the tests: figures of base.yaml)


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


# The Spark setting of an S3-compatible endpoint; boto3 clients (input arrival, claims) use
# the same endpoint as the stages' s3a:// reads.
S3_ENDPOINT = "spark.hadoop.fs.s3a.endpoint"


@dataclass(frozen=True)
class PathSettings:
    warehouse: str
    jars_cache: str
    jvm_archive: str = ".cache/jvm/recsys.jsa"  # the driver JVM's class-data archive; "" = none
    object_store_jars_cache: str = ".cache/ivy-s3"  # spark.object_store_packages (s3a://)


@dataclass(frozen=True)
class SparkSettings:
    master: str
    app_name: str
    driver_memory: str
    executor_memory: str
    executor_cores: int
    shuffle_partitions: int
    packages: tuple[str, ...]
    # s3a:// support, resolved apart and added to sessions whose paths are on object storage.
    object_store_packages: tuple[str, ...]
    object_store_excludes: tuple[str, ...]  # group:artifact left out of their resolution
    conf: Mapping[str, str] = field(default_factory=dict)
    submit_java_options: str = ""
    concurrent_actions: int = 4  # independent Spark actions a stage runs side by side; 1 = none


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    artifact_root: str
    experiment: str


SOURCE_FORMATS = ("csv", "tsv", "jsonl", "parquet")
SOURCE_LAYOUTS = ("auto", "file", "daily", "parts")
SOURCE_COMPRESSIONS = ("auto", "none", "gzip", "bzip2")
SOURCE_ENCODINGS = ("utf-8", "iso-8859-1")
TIMESTAMP_UNITS = ("s", "ms", "us", "ns", "iso", "pattern")
# The canonical fields a source's columns map onto; the first four are required.
REQUIRED_FIELDS = ("timestamp", "user", "item", "event")
OPTIONAL_FIELDS = ("transaction", "session", "category", "price", "quantity")
CANONICAL_EVENT_TYPES = ("view", "cart", "purchase")
NO_EVENT_LABEL = "none"  # a sample's label when the user did nothing with the item
# The keys of ``input`` that describe a source's format (what a conf/sources/ file may set).
SOURCE_KEYS = (
    "format",
    "header",
    "names",
    "delimiter",
    "quote",
    "encoding",
    "compression",
    "layout",
    "daily_files",
    "parts",
    "columns",
    "event_types",
    "drop_events",
    "extra_columns",
    "timestamp",
)


def _one_of(where: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _keyed_by(where: str, mapping: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """A mapping with a value for each of ``keys`` and no other key (a typo is not kept)."""
    unknown = sorted(set(mapping) - set(keys))
    missing = [k for k in keys if k not in mapping]
    if unknown or missing:
        wrong = f"unknown keys {unknown}" if unknown else f"missing keys {missing}"
        raise ConfigError(f"{where}: {wrong}; it takes exactly {', '.join(keys)}")


@dataclass(frozen=True)
class TimestampSettings:
    """How a source writes its event times (docs/inputs.md)."""

    unit: str = "ms"  # s | ms | us | ns (epoch numbers) | iso (ISO-8601 text) | pattern
    format: str = ""  # a Spark datetime pattern, for unit: pattern
    timezone: str = "UTC"  # zone of timestamps written without an offset
    earliest: str = "2000-01-01"  # times before this day are implausible ...
    latest: str = "2100-01-01"  # ... and so are those from this day on

    def __post_init__(self) -> None:
        _one_of("input.timestamp.unit", self.unit, TIMESTAMP_UNITS)
        if self.unit == "pattern" and not self.format:
            raise ConfigError("input.timestamp.format: unit pattern needs a datetime pattern")
        for key in ("earliest", "latest"):
            try:
                dt_value = _dt.date.fromisoformat(str(getattr(self, key)))
            except ValueError:
                raise ConfigError(
                    f"input.timestamp.{key}: expected a date YYYY-MM-DD, got {getattr(self, key)!r}"
                ) from None
            object.__setattr__(self, key, dt_value.isoformat())
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"input.timestamp.timezone: unknown time zone {self.timezone!r}"
            ) from None
        if self.earliest >= self.latest:
            raise ConfigError("input.timestamp: earliest must be before latest")


@dataclass(frozen=True)
class InputSettings:
    """Where the shop's files are and how to read them.

    ``source`` names a file of ``conf/sources/`` (or is a path to a YAML file) whose keys
    (:data:`SOURCE_KEYS`) are the defaults of this section; keys set here override them.
    docs/inputs.md describes every key.
    """

    events_path: str
    source: str = "retailrocket"  # profile of conf/sources/ (its name) or a YAML file's path
    format: str = "csv"  # csv | tsv | jsonl | parquet
    header: bool = True  # csv/tsv: the first line of each file names the columns
    names: tuple[str, ...] = ()  # the file's columns in order (needed without a header)
    delimiter: str = ""  # csv: "," and tsv: a tab, unless set
    quote: str = '"'  # csv/tsv quote character; "" = none
    encoding: str = "utf-8"  # utf-8 | iso-8859-1
    compression: str = "auto"  # auto (by file suffix) | none | gzip | bzip2
    layout: str = "auto"  # file | daily | parts | auto (a file: file, a directory: daily)
    daily_files: str = "events_{date}.csv"  # daily layout: {date} or {date:%Y%m%d}
    parts: str = "*"  # parts layout: glob of the part files under events_path
    columns: Mapping[str, str] = field(default_factory=dict)  # canonical field -> column
    event_types: Mapping[str, str] = field(default_factory=dict)  # event name -> type
    drop_events: tuple[str, ...] = ()  # event names that are counted, then left out
    extra_columns: str = "fail"  # fail | ignore (a column the source does not know)
    timestamp: TimestampSettings = field(default_factory=TimestampSettings)
    # Catalogue: item_properties*.csv[.gz] (a file or a directory of them) and the category
    # tree; an empty path means the shop has none (items are then known from events only).
    item_properties_path: str = "data/shop/item_properties.csv"
    category_tree_path: str = "data/shop/category_tree.csv"

    def __post_init__(self) -> None:
        if self.format == "retailrocket":
            raise ConfigError(
                "input.format: 'retailrocket' names a source now; set input.source: "
                "retailrocket (input.format is one of " + ", ".join(SOURCE_FORMATS) + ")"
            )
        _one_of("input.format", self.format, SOURCE_FORMATS)
        _one_of("input.layout", self.layout, SOURCE_LAYOUTS)
        _one_of("input.compression", self.compression, SOURCE_COMPRESSIONS)
        _one_of("input.encoding", self.encoding.lower(), SOURCE_ENCODINGS)
        _one_of("input.extra_columns", self.extra_columns, ("fail", "ignore"))
        known = REQUIRED_FIELDS + OPTIONAL_FIELDS
        unknown = sorted(set(self.columns) - set(known))
        if unknown:
            raise ConfigError(f"input.columns: unknown fields {unknown}; fields: {list(known)}")
        missing = [f for f in REQUIRED_FIELDS if not self.columns.get(f)]
        if missing:
            raise ConfigError(
                f"input.columns: map the fields {missing} onto the source's columns "
                "(or set input.source to a profile of conf/sources/)"
            )
        bad = {n: t for n, t in self.event_types.items() if t not in CANONICAL_EVENT_TYPES}
        if bad:
            raise ConfigError(
                f"input.event_types: {bad} map onto no event type; types: "
                f"{list(CANONICAL_EVENT_TYPES)} (list names to leave out in input.drop_events)"
            )
        if not self.event_types:
            raise ConfigError(
                "input.event_types: map the source's event names onto view, cart, purchase"
            )
        both = sorted(set(self.event_types) & set(self.drop_events))
        if both:
            raise ConfigError(f"input.drop_events: {both} are also mapped in input.event_types")
        if not self.header and self.format in ("csv", "tsv"):
            if not self.names:
                raise ConfigError("input.names: a file without a header needs its column names")
            absent = sorted(set(self.columns.values()) - set(self.names))
            if absent:
                raise ConfigError(
                    f"input.columns: {absent} are not in input.names {list(self.names)}"
                )
        if self.layout == "daily" and "{date" not in self.daily_files:
            raise ConfigError("input.daily_files: the name pattern needs {date} (or {date:%Y%m%d})")

    @property
    def separator(self) -> str:
        """The field separator of a csv/tsv source."""
        return self.delimiter or ("\t" if self.format == "tsv" else ",")

    def column(self, canonical: str) -> str | None:
        """The source's column of a canonical field, or None when the source has none."""
        return self.columns.get(canonical) or None


@dataclass(frozen=True)
class CleanSettings:
    max_rejected_share: float


@dataclass(frozen=True)
class BackfillSettings:
    chunk_days: int = 31  # ranged stages (ingest, clean, aggregate) process this many days a pass


@dataclass(frozen=True)
class PrivacySettings:
    key_env: str  # the variable holding the HMAC key; every run that hashes ids needs it


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
    half_life_days: float = 14.0  # time decay of confidence; 0 = none
    similar_top_n: int = 20  # recs.similar_items per item
    similar_batch_rows: int = 1024  # items scored against all items at once

    def __post_init__(self) -> None:
        _keyed_by("als.event_weights", self.event_weights, CANONICAL_EVENT_TYPES)


@dataclass(frozen=True)
class EaseSettings:
    """The EASE candidate source (:mod:`recsys_lib.models.ease`), fitted by ``candidates``."""

    window_days: int = 30  # the user x item presence matrix of this many days ending on D
    regularization: float = 133.4  # λ on the Gram matrix's diagonal
    max_items: int = 5000  # exact up to this many items; above, the most active ones
    max_memory_mb: int = 2048  # driver memory bound of the fit; above it the stage refuses
    batch_rows: int = 1024  # users scored against every item at once (memory per task)


@dataclass(frozen=True)
class BoughtTogetherSettings:
    window_days: int
    hours: float  # same user, carted or bought within this many hours (or same transaction)
    event_types: tuple[str, ...]
    min_support: int  # users who have the pair
    min_lift: float
    top_n: int
    max_items_per_user: int  # users with more distinct items in the window are skipped

    def __post_init__(self) -> None:
        for event_type in self.event_types:
            _one_of("bought_together.event_types", event_type, CANONICAL_EVENT_TYPES)


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
    # The cheap path (docs/candidates.md, "Thin histories"): users of these history groups
    # (constants.HISTORY_GROUPS) get no ALS candidates and at most thin_max_per_user.
    thin_groups: tuple[str, ...] = ("one_event", "one_day")
    thin_max_per_user: int = 30
    als_block_mb: int = 256  # one ALS scoring block per task: users at once x items x 8 B


@dataclass(frozen=True)
class FeatureSettings:
    event_weights: Mapping[str, float]
    affinity_half_life_days: float
    rate_prior_strength: float
    top_categories: int

    def __post_init__(self) -> None:
        _keyed_by("features.event_weights", self.event_weights, CANONICAL_EVENT_TYPES)


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
    max_classes: int = 50  # more top categories with behaviour: the neighbour vote


@dataclass(frozen=True)
class QualitySettings:
    """Bounds of a day's rows against a typical recent day of the same table: the median of
    its last ``recent_days`` present days (rows > 0, every check passed) within
    ``lookback_days``, applied once ``min_recent_days`` such days exist."""

    min_row_ratio: float
    max_row_ratio: float
    recent_days: int = 7
    min_recent_days: int = 3
    lookback_days: int = 28


@dataclass(frozen=True)
class RecommendSettings:
    top_k: int
    category_cap: int = 5  # at most this many items of one leaf category per list; 0 = no cap
    min_user_coverage: float = 0.9  # share of candidate users who must get a list
    min_row_ratio: float = 0.5  # rows vs the median of recent published days
    max_row_ratio: float = 2.0


@dataclass(frozen=True)
class ServingSettings:
    """The PostgreSQL serving table of recs.user_recommendations (docs/deployment.md)."""

    enabled: bool = False
    url: str = ""  # postgresql://user@host:port/database, no password (PGPASSWORD has it)
    conn_id: str = ""  # or an Airflow connection (AIRFLOW_CONN_<ID>) instead of url
    schema: str = "recsys"
    table: str = "user_recommendations"
    batch_rows: int = 10000  # rows per JDBC batch insert


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go besides the log (docs/operations.md, "Alerts"): a webhook that takes
    a JSON POST and/or e-mail through an SMTP server. Secrets (a webhook URL with a token,
    the SMTP password) come from the environment variables named here."""

    webhook_url: str = ""
    webhook_url_env: str = "RECSYS_ALERT_WEBHOOK_URL"  # used when webhook_url is empty
    email_to: tuple[str, ...] = ()
    email_from: str = "recsys@localhost"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password_env: str = "RECSYS_SMTP_PASSWORD"
    smtp_starttls: bool = False
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class MaintenanceSettings:
    """The ``recsys_maintenance`` DAG (docs/operations.md, "Maintenance")."""

    compact_days: int = 3  # OPTIMIZE the partitions of the run date and the days before it
    vacuum_retention_hours: float = 168.0  # files a table no longer uses are kept this long
    min_retention_hours: float = 24.0  # a retention below this is refused (see the docs)
    staging_keep_days: int = 7  # _staging/ partitions older than this are deleted
    mlflow_keep_days: int = 90  # older runs no registered alias points to are deleted


@dataclass(frozen=True)
class ConcurrencySettings:
    """One run at a time per stage and day (docs/operations.md, "Concurrent runs")."""

    claims: bool = True  # false: no claims (a store other than a local disk or S3)
    heartbeat_seconds: float = 30.0  # a running claim's holder says it is alive this often
    stale_after_seconds: float = 180.0  # a claim without a heartbeat this long has lapsed
    wait_seconds: float = 600.0  # how long registering a ranker waits for another's turn
    # How long a stage waits while an erasure or a maintenance task holds the warehouse
    # alone, and how long such a task waits for the running stages to end.
    turn_wait_seconds: float = 3600.0


@dataclass(frozen=True)
class HistorySettings:
    """Whether a night may read windows with a day its history stages never processed."""

    tolerate_missing_days: bool = False


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

    def __post_init__(self) -> None:
        labels = (NO_EVENT_LABEL, *CANONICAL_EVENT_TYPES)
        _keyed_by("importance.event_values", self.event_values, labels)


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
    importance: bool = False  # the ranker weighs samples by importance (else: all weigh 1)


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
    serving: ServingSettings = field(default_factory=ServingSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    concurrency: ConcurrencySettings = field(default_factory=ConcurrencySettings)
    ease: EaseSettings = field(default_factory=EaseSettings)

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
    def object_store_jars_cache(self) -> str:
        return self.resolve(self.paths.object_store_jars_cache)

    @property
    def uses_object_store(self) -> bool:
        """Whether the warehouse or an input lives on S3-compatible storage (``s3a://``)."""
        paths = (
            self.paths.warehouse,
            self.input.events_path,
            self.input.item_properties_path,
            self.input.category_tree_path,
        )
        return any(p.startswith("s3a://") for p in paths)

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
        if value is None:
            items: list[Any] | tuple[Any, ...] = []  # `key:` in a file
        elif isinstance(value, list | tuple):
            items = value
        else:  # "a, b" from a variable; a blank one is the empty tuple, not ("",)
            items = [v for v in str(value).split(",") if v.strip()]
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


def source_profile_path(name: str, conf_dir: Path, home: Path) -> Path:
    """The file of ``input.source``: a name of ``conf/sources/`` or a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        return path if path.is_absolute() else home / path
    return conf_dir / "sources" / f"{name}.yaml"


def with_source_profile(section: Mapping[str, Any], conf_dir: Path, home: Path) -> dict[str, Any]:
    """The ``input`` section with its source profile's keys as defaults (``input.source``)."""
    name = str(section.get("source") or "")
    if not name:
        return dict(section)
    path = source_profile_path(name, conf_dir, home)
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "sources").glob("*.yaml"))
        raise ConfigError(
            f"input.source: no source file {path} (the profiles of {conf_dir / 'sources'}: "
            f"{', '.join(known) or 'none'})"
        )
    profile = _read_yaml(path)
    unknown = sorted(set(profile) - set(SOURCE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; a source file sets {list(SOURCE_KEYS)}")
    return _deep_merge(profile, section)


def config_dir(home: Path, environ: Mapping[str, str]) -> Path:
    """The configuration folder: ``$RECSYS_CONF_DIR``, else ``<home>/conf``."""
    return Path(environ.get(ENV_CONF_DIR, home / "conf"))


def load_settings(
    env: str | None = None,
    *,
    conf_dir: Path | None = None,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from the configuration files and environment overrides:
    ``base.yaml``, then ``tuned.yaml`` (``recsys tune``'s choices, if present and
    ``RECSYS_TUNED`` is not ``off``), then the
    environment's file (``local.yaml``, ``cluster.yaml``, …), then ``RECSYS__*`` variables."""
    environ = os.environ if environ is None else environ
    home = (home or Path(environ.get(ENV_HOME, "."))).resolve()
    conf_dir = conf_dir or config_dir(home, environ)
    env = env or environ.get(ENV_NAME, DEFAULT_ENV)
    base_file = conf_dir / "base.yaml"
    if not base_file.is_file():
        raise ConfigError(
            f"configuration not found: {base_file} (set {ENV_HOME} or {ENV_CONF_DIR})"
        )
    data = _read_yaml(base_file)
    tuned_file = conf_dir / TUNED_FILE
    if tuned_file.is_file() and environ.get(ENV_TUNED, "").lower() not in ("off", "0", "false"):
        data = _deep_merge(data, _read_yaml(tuned_file))
    env_file = conf_dir / f"{env}.yaml"
    if env_file.is_file():
        data = _deep_merge(data, _read_yaml(env_file))
    elif env != DEFAULT_ENV:
        raise ConfigError(f"environment {env!r} has no configuration file {env_file}")
    data = _deep_merge(data, env_overrides(environ))
    if isinstance(data.get("input"), Mapping):
        data["input"] = with_source_profile(data["input"], conf_dir, home)
    sections = {k: v for k, v in data.items()}
    settings: Settings = _build(Settings, {"home": home, "env": env, **sections}, "settings")
    return dataclasses.replace(settings, home=home)
