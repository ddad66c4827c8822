"""Table contracts: the one place that names a table, its schema, partitioning and columns.

docs/tables.md is generated from this module (``recsys docs-tables``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C


@dataclass(frozen=True)
class Column:
    name: str
    dtype: T.DataType
    doc: str
    nullable: bool = True
    # Inclusive bounds every value must respect (numbers) or the accepted values (text);
    # the quality checks of the stage that writes the table enforce them.
    value_range: tuple[float, float] | None = None
    accepted: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableContract:
    """Name, grain, schema and partitioning of one Delta table."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = (C.DT,)
    key: tuple[str, ...] = ()
    # An empty partition is a valid result (e.g. no pair bought together often enough).
    may_be_empty: bool = False

    @property
    def schema_name(self) -> str:
        return self.name.split(".")[0]

    @property
    def user_columns(self) -> tuple[str, ...]:
        """Columns that identify a person: a raw user id or its pseudonym."""
        return tuple(c for c in (C.RAW_USER, C.USER_ID) if c in self.column_names)

    @property
    def stats_columns(self) -> tuple[str, ...] | None:
        """The columns Delta keeps min/max statistics of in its log: all but
        :attr:`user_columns` (an id in the log would outlive its rows' erasure); None for a
        table without them (Delta's default)."""
        if not self.user_columns:
            return None
        skip = {*self.user_columns, *self.partition_by}
        return tuple(
            c.name for c in self.columns if c.name not in skip and isinstance(c.dtype, _STATS_TYPES)
        )

    @property
    def table_name(self) -> str:
        return self.name.split(".")[1]

    @property
    def relative_path(self) -> str:
        return f"{self.schema_name}/{self.table_name}"

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, c.dtype, c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


# The types Delta keeps min/max statistics of (no arrays, maps, structs or binaries).
_STATS_TYPES = (
    T.StringType,
    T.IntegerType,
    T.LongType,
    T.ShortType,
    T.ByteType,
    T.FloatType,
    T.DoubleType,
    T.DecimalType,
    T.DateType,
    T.TimestampType,
)

_DT = Column(C.DT, T.DateType(), "run date the row belongs to (UTC calendar day)", False)

RAW_EVENTS = TableContract(
    name="raw.events",
    grain="one input row of the event log, as received (all fields as text)",
    columns=(
        _DT,
        Column(
            C.RAW_TIMESTAMP, T.StringType(), "event time as received (input.timestamp says how)"
        ),
        Column(C.RAW_USER, T.StringType(), "raw user id (personal data: raw layer only)"),
        Column(C.RAW_EVENT, T.StringType(), "event name as received (input.event_types maps it)"),
        Column(C.RAW_ITEM, T.StringType(), "item id as received"),
        Column(C.RAW_TRANSACTION, T.StringType(), "transaction (order) id as received, if any"),
        Column(C.RAW_SESSION, T.StringType(), "session id as received, if the source has one"),
        Column(C.RAW_CATEGORY, T.StringType(), "the item's category id on the row, if any"),
        Column(C.RAW_PRICE, T.StringType(), "the item's price on the row, if any"),
        Column(C.RAW_QUANTITY, T.StringType(), "quantity as received, if the source has one"),
        Column(
            C.READ_ERROR,
            T.StringType(),
            "why the row could not be read as the source says (null: it could)",
            accepted=C.READ_ERRORS,
        ),
        Column(C.SOURCE_FILE, T.StringType(), "input file the row came from", False),
        Column(C.INGESTED_AT, T.TimestampType(), "when the ingest stage read the row (UTC)", False),
    ),
)

RAW_ITEMS = TableContract(
    name="raw.items",
    grain="one catalogue property row stamped on the run date, as received (all as text)",
    columns=(
        _DT,
        Column(C.RR_TIMESTAMP, T.StringType(), "snapshot time, epoch milliseconds UTC"),
        Column(C.RR_ITEM_ID, T.StringType(), "item id as received"),
        Column(C.RR_PROPERTY, T.StringType(), "property name (categoryid, available, 790, ...)"),
        Column(C.RR_VALUE, T.StringType(), "property value as received"),
        Column(C.SOURCE_FILE, T.StringType(), "input file the row came from", False),
        Column(C.INGESTED_AT, T.TimestampType(), "when the ingest stage read the row (UTC)", False),
    ),
)

_SHARE = (0.0, 1.0)
_COUNT = (0.0, math.inf)

CLEAN_ITEMS = TableContract(
    name="clean.items",
    grain="item as of the run date: catalogue values stamped up to that day, completed category",
    columns=(
        _DT,
        Column(C.ITEM_ID, T.LongType(), "item id", False),
        Column(
            C.CATEGORY_ID,
            T.LongType(),
            "category: the catalogue's, else a predicted one (leaf or top level); null if neither",
        ),
        Column(
            C.CATEGORY_PATH,
            T.ArrayType(T.LongType()),
            "category ids from the top level down to category_id (known ancestors only)",
        ),
        Column(
            C.TOP_CATEGORY_ID,
            T.LongType(),
            "root of the path; null if the category or one of its ancestors is not in the tree",
        ),
        Column(
            C.CATEGORY_DEPTH, T.IntegerType(), "0 for a top-level category", value_range=(0, 64)
        ),
        Column(
            C.CATEGORY_SOURCE,
            T.StringType(),
            "catalogue, predicted (category completion), or null (no category)",
            accepted=(C.SOURCE_CATALOGUE, C.SOURCE_PREDICTED),
        ),
        Column(
            C.CATEGORY_CONFIDENCE,
            T.DoubleType(),
            "1 for the catalogue; the model's probability for a prediction",
            value_range=_SHARE,
        ),
        Column(
            C.PRICE,
            T.DoubleType(),
            "latest price (property 790) stamped up to the run date",
            value_range=(0.0, 1e12),
        ),
        Column(C.AVAILABLE, T.BooleanType(), "latest availability stamped up to the run date"),
        Column(C.FIRST_SEEN, T.DateType(), "first day in the catalogue or in the event log", False),
        Column(C.PROPERTIES_UPDATED_AT, T.TimestampType(), "latest catalogue row used"),
    ),
    key=(C.DT, C.ITEM_ID),
)

_EVENT_COUNTS = tuple(
    Column(name, T.LongType(), f"{event} events", False, value_range=_COUNT)
    for event, name in C.EVENT_COUNT_COLUMNS.items()
)

USER_DAILY = TableContract(
    name="features.user_daily",
    grain="user x day: the day's activity of a user with at least one clean event",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        *_EVENT_COUNTS,
        Column(C.ITEMS, T.LongType(), "distinct items with an event", False, value_range=_COUNT),
        Column(
            C.ACTIVE_HOURS,
            T.ArrayType(T.LongType()),
            "events per UTC hour of the day, 24 counts (index = hour)",
            False,
        ),
        Column(C.FIRST_EVENT_TS, T.TimestampType(), "first event of the day", False),
        Column(C.LAST_EVENT_TS, T.TimestampType(), "last event of the day", False),
    ),
    key=(C.DT, C.USER_ID),
)

USER_ITEM_DAILY = TableContract(
    name="features.user_item_daily",
    grain="user x item x day: a user's events on one item that day",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        Column(C.ITEM_ID, T.LongType(), "item id", False),
        *_EVENT_COUNTS,
        Column(C.LAST_EVENT_TS, T.TimestampType(), "last event of the user on the item", False),
    ),
    key=(C.DT, C.USER_ID, C.ITEM_ID),
)

ITEM_DAILY = TableContract(
    name="features.item_daily",
    grain="item x day: the day's activity on an item with at least one clean event",
    columns=(
        _DT,
        Column(C.ITEM_ID, T.LongType(), "item id", False),
        *_EVENT_COUNTS,
        Column(C.USERS, T.LongType(), "distinct users with an event", False, value_range=_COUNT),
        Column(
            C.CATEGORY_ID,
            T.LongType(),
            "category on the day's last event row that carried one (sources with categories)",
        ),
        Column(
            C.PRICE,
            T.DoubleType(),
            "price on the day's last event row that carried one (sources with prices)",
            value_range=(0.0, 1e12),
        ),
    ),
    key=(C.DT, C.ITEM_ID),
)


def _windowed(name: str, days: tuple[int, ...], what: str) -> tuple[Column, ...]:
    return tuple(
        Column(
            f"{name}_{n}d",
            T.LongType(),
            f"{what} on dt" if n == 1 else f"{what} in the {n} days ending on dt",
            False,
            value_range=_COUNT,
        )
        for n in days
    )


_AFFINITY = T.StructType(
    [
        # Delta refuses NOT NULL inside arrays.
        T.StructField(C.CATEGORY_ID, T.LongType()),
        T.StructField(C.AFFINITY, T.DoubleType()),
    ]
)

USER_PORTRAIT = TableContract(
    name="features.user_portrait",
    grain="user x run date: a user with an event in the 90 days ending on dt (rules: "
    "docs/features.md)",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        *_windowed(C.VIEWS, (1, 7, 30, 90), "views"),
        *_windowed(C.CARTS, (1, 7, 30, 90), "add-to-carts"),
        *_windowed(C.PURCHASES, (1, 7, 30, 90), "purchases"),
        Column(C.ACTIVE_DAYS_90D, T.LongType(), "days with an event", False, value_range=(1, 90)),
        Column(C.DISTINCT_ITEMS_90D, T.LongType(), "distinct items", False, value_range=_COUNT),
        Column(
            C.DISTINCT_CATEGORIES_90D,
            T.LongType(),
            "distinct categories (as of dt)",
            False,
            value_range=_COUNT,
        ),
        Column(C.FIRST_ACTIVE_DATE, T.DateType(), "first day with an event in the 90 days", False),
        Column(
            C.DAYS_SINCE_LAST_EVENT, T.IntegerType(), "0 = active on dt", False, value_range=(0, 89)
        ),
        Column(
            C.DAYS_SINCE_LAST_CART, T.IntegerType(), "null: no cart in 90 days", value_range=(0, 89)
        ),
        Column(
            C.DAYS_SINCE_LAST_PURCHASE,
            T.IntegerType(),
            "null: no purchase in 90 days",
            value_range=(0, 89),
        ),
        Column(
            C.SPEND_90D,
            T.DoubleType(),
            "sum of purchases x item price (price as of dt)",
            False,
            value_range=(0.0, 1e15),
        ),
        Column(
            C.RECENCY_SCORE,
            T.IntegerType(),
            "R, 1-5 by quintile of recency (5 = most recent)",
            False,
            value_range=(1, 5),
        ),
        Column(
            C.FREQUENCY_SCORE,
            T.IntegerType(),
            "F, 1-5 by quintile of active days",
            False,
            value_range=(1, 5),
        ),
        Column(
            C.MONETARY_SCORE,
            T.IntegerType(),
            "M, 1-5 by quintile of spend",
            False,
            value_range=(1, 5),
        ),
        Column(C.RFM_SEGMENT, T.StringType(), "named RFM segment", False, accepted=C.RFM_SEGMENTS),
        Column(
            C.LIFECYCLE_STAGE, T.StringType(), "lifecycle stage", False, accepted=C.LIFECYCLE_STAGES
        ),
        Column(
            C.TOP_CATEGORIES,
            T.ArrayType(_AFFINITY),
            "up to 3 categories with the highest affinity (event-weighted, time-decayed share)",
            False,
        ),
        Column(
            C.PRICE_BAND_PCT,
            T.DoubleType(),
            "weighted mean price percentile (within category) of the user's items",
            value_range=_SHARE,
        ),
        Column(C.PRICE_BAND, T.StringType(), "low, mid or high", accepted=C.PRICE_BANDS),
        Column(
            C.ACTIVE_HOURS, T.ArrayType(T.LongType()), "events per UTC hour over 90 days", False
        ),
        Column(
            C.PREFERRED_PUSH_HOUR,
            T.IntegerType(),
            "UTC hour a message is most likely seen",
            False,
            value_range=(0, 23),
        ),
        Column(
            C.CART_RATE,
            T.DoubleType(),
            "carts / views over 90 days, smoothed",
            False,
            value_range=_SHARE,
        ),
        Column(
            C.PURCHASE_RATE,
            T.DoubleType(),
            "purchases / views over 90 days, smoothed",
            False,
            value_range=_SHARE,
        ),
    ),
    key=(C.DT, C.USER_ID),
)

ITEM_FEATURES = TableContract(
    name="features.item_features",
    grain="item x run date: every item of clean.items on dt",
    columns=(
        _DT,
        Column(C.ITEM_ID, T.LongType(), "item id", False),
        *_windowed(C.VIEWS, (1, 7, 30), "views"),
        *_windowed(C.CARTS, (1, 7, 30), "add-to-carts"),
        *_windowed(C.PURCHASES, (1, 7, 30), "purchases"),
        Column(
            C.USERS_30D,
            T.LongType(),
            "sum over days of distinct users with an event",
            False,
            value_range=_COUNT,
        ),
        Column(
            C.TREND_7D,
            T.DoubleType(),
            "(weighted events of the last 7 days + 1) / (those of the 7 before + 1)",
            False,
            value_range=(0.0, 1e12),
        ),
        Column(
            C.CART_RATE,
            T.DoubleType(),
            "carts / views over 30 days, smoothed",
            False,
            value_range=_SHARE,
        ),
        Column(
            C.PURCHASE_RATE,
            T.DoubleType(),
            "purchases / views over 30 days, smoothed",
            False,
            value_range=_SHARE,
        ),
        Column(C.FIRST_SEEN, T.DateType(), "first day in the catalogue or the log", False),
        Column(C.AGE_DAYS, T.IntegerType(), "days since first seen", False, value_range=(0, 1e6)),
        Column(C.PRICE, T.DoubleType(), "price as of dt", value_range=(0.0, 1e12)),
        Column(
            C.PRICE_PCT_IN_CATEGORY,
            T.DoubleType(),
            "percentile of the price among priced items of the same category",
            value_range=_SHARE,
        ),
        Column(C.AVAILABLE, T.BooleanType(), "availability as of dt"),
        Column(C.CATEGORY_ID, T.LongType(), "category (catalogue or predicted)"),
        Column(C.TOP_CATEGORY_ID, T.LongType(), "top-level category"),
        Column(C.CATEGORY_PATH, T.ArrayType(T.LongType()), "category ids, top level first"),
    ),
    key=(C.DT, C.ITEM_ID),
)

CLEAN_EVENTS = TableContract(
    name="clean.events",
    grain="one typed, deduplicated, pseudonymised event",
    columns=(
        _DT,
        Column(C.EVENT_TS, T.TimestampType(), "event time (UTC)", False),
        Column(C.USER_ID, T.StringType(), "HMAC-SHA256 of the visitor id (hex)", False),
        Column(C.ITEM_ID, T.LongType(), "item id", False),
        Column(C.EVENT_TYPE, T.StringType(), "view, cart or purchase", False),
        Column(C.TRANSACTION_ID, T.StringType(), "transaction id (purchases only)"),
        Column(C.SOURCE_FILE, T.StringType(), "input file the event came from", False),
        Column(C.CATEGORY_ID, T.LongType(), "the item's category on the event row, if any"),
        Column(
            C.PRICE,
            T.DoubleType(),
            "the item's price on the event row, if any",
            value_range=(0.0, 1e12),
        ),
    ),
)

CLEAN_EVENTS_REJECTED = TableContract(
    name="clean.events_rejected",
    grain="one input row that failed a cleaning rule, with the first rule it failed",
    columns=(
        _DT,
        Column(C.RAW_TIMESTAMP, T.StringType(), "event time as received"),
        Column(
            C.USER_ID,
            T.StringType(),
            "HMAC-SHA256 of the user id, if there was one (never of a badly encoded row)",
        ),
        Column(C.RAW_EVENT, T.StringType(), "event name as received"),
        Column(C.RAW_ITEM, T.StringType(), "item id as received"),
        Column(C.RAW_TRANSACTION, T.StringType(), "transaction id as received"),
        Column(C.SOURCE_FILE, T.StringType(), "input file the row came from", False),
        Column(
            C.REJECT_REASON,
            T.StringType(),
            "the first cleaning rule the row failed",
            False,
            accepted=C.REJECT_REASONS,
        ),
    ),
)

_SCORE = (-1e12, 1e12)


SIMILAR_ITEMS = TableContract(
    name="recs.similar_items",
    grain="item x rank: the items nearest to an item by cosine of ALS item factors",
    columns=(
        _DT,
        Column(C.ITEM_ID, T.LongType(), "item of the ALS model", False),
        Column(C.RANK, T.IntegerType(), "1 = most similar", False, value_range=(1, 1000)),
        Column(C.SIMILAR_ITEM_ID, T.LongType(), "a neighbour (never the item itself)", False),
        Column(
            C.SCORE,
            T.DoubleType(),
            "cosine similarity of the two items' factors",
            False,
            value_range=(-1.000001, 1.000001),
        ),
        Column(C.MODEL_VERSION, T.StringType(), "content hash of the ALS model", False),
    ),
    key=(C.DT, C.ITEM_ID, C.RANK),
)

BOUGHT_TOGETHER = TableContract(
    name="recs.bought_together",
    grain="item x rank: items carted or bought with it by the same users (window ending dt)",
    columns=(
        _DT,
        Column(C.ITEM_ID, T.LongType(), "antecedent item a", False),
        Column(C.RANK, T.IntegerType(), "1 = highest confidence", False, value_range=(1, 1000)),
        Column(C.OTHER_ITEM_ID, T.LongType(), "consequent item b", False),
        Column(
            C.SUPPORT,
            T.LongType(),
            "users who carted or bought both within the configured hours",
            False,
            value_range=(1, math.inf),
        ),
        Column(
            C.CONFIDENCE,
            T.DoubleType(),
            "support(a, b) / users(a): share of a's users who also took b",
            False,
            value_range=_SHARE,
        ),
        Column(
            C.LIFT,
            T.DoubleType(),
            "confidence / (users(b) / users): how much more often than by chance",
            False,
            value_range=(0.0, math.inf),
        ),
    ),
    key=(C.DT, C.ITEM_ID, C.RANK),
    may_be_empty=True,
)

POPULAR_ITEMS = TableContract(
    name="recs.popular_items",
    grain="list x scope x category x rank: most popular items and new arrivals",
    columns=(
        _DT,
        Column(C.LIST, T.StringType(), "popular or new_arrivals", False, accepted=C.POPULAR_LISTS),
        Column(
            C.SCOPE,
            T.StringType(),
            "global, top_category or category (leaf)",
            False,
            accepted=C.POPULAR_SCOPES,
        ),
        Column(C.CATEGORY_ID, T.LongType(), "the category; -1 for the global lists", False),
        Column(C.RANK, T.IntegerType(), "1 = most popular", False, value_range=(1, 100000)),
        Column(C.ITEM_ID, T.LongType(), "item", False),
        Column(
            C.SCORE,
            T.DoubleType(),
            "popular: decayed weighted events; new_arrivals: weighted events per day of age",
            False,
            value_range=(0.0, math.inf),
        ),
    ),
    key=(C.DT, C.LIST, C.SCOPE, C.CATEGORY_ID, C.RANK),
)


def _source_columns() -> tuple[Column, ...]:
    columns: list[Column] = []
    for source in C.CANDIDATE_SOURCES:
        columns.append(
            Column(
                C.source_score(source),
                T.DoubleType(),
                f"score of the {source} source (null: it did not find the item)",
                value_range=_SCORE,
            )
        )
        columns.append(
            Column(
                C.source_rank(source),
                T.IntegerType(),
                f"rank within the {source} source (1 = its best)",
                value_range=(1, 100000),
            )
        )
    return tuple(columns)


CANDIDATES = TableContract(
    name="features.candidates",
    grain="user x item: a candidate for a user active in the window ending dt (the ranker's "
    "input), with the sources that found it",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        Column(C.ITEM_ID, T.LongType(), "candidate item", False),
        Column(
            C.SOURCES,
            T.ArrayType(T.StringType()),
            "sources that found the item, in source order",
            False,
        ),
        Column(C.N_SOURCES, T.IntegerType(), "number of sources", False, value_range=(1, 100)),
        Column(
            C.UNION_RANK,
            T.IntegerType(),
            "position in the user's union: best source rank, then more sources, then item id",
            False,
            value_range=(1, 1000000),
        ),
        *_source_columns(),
    ),
    key=(C.DT, C.USER_ID, C.ITEM_ID),
)


_PAIR_FEATURE_DOCS = {
    C.CATEGORY_AFFINITY: "the user's affinity to the item's leaf category (0: not a top category)",
    C.TOP_CATEGORY_AFFINITY: "the user's affinity summed over the item's top-level category",
    C.PRICE_BAND_GAP: "item price percentile in its category - the user's price band percentile",
    C.DAYS_SINCE_ITEM_EVENT: "days since the user's last event on the item (null: none in 30 days)",
    C.DAYS_SINCE_CATEGORY_EVENT: "days since the user's last event in the item's category "
    "(null: none in 30 days)",
    C.USER_ITEM_VIEWS_30D: "the user's views of the item in 30 days",
    C.USER_ITEM_CARTS_30D: "the user's add-to-carts of the item in 30 days",
}


def _feature_doc(name: str) -> str:
    if name in _PAIR_FEATURE_DOCS:
        return _PAIR_FEATURE_DOCS[name]
    if name in C.USER_FEATURES:
        return f"features.user_portrait.{name.removeprefix('user_')} of the features date"
    if name in C.ITEM_FEATURES:
        return f"features.item_features.{name.removeprefix('item_')} of the features date"
    return f"features.candidates.{name} of the features date"


TRAINING_SAMPLES = TableContract(
    name="features.training_samples",
    grain="user x item x label day dt: a candidate of dt - 1 (features as of dt - 1) with its "
    "label from dt's events (rules: docs/ranker.md)",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        Column(C.ITEM_ID, T.LongType(), "candidate item", False),
        Column(
            C.LABEL,
            T.IntegerType(),
            "the user's best event on the item on dt: 3 purchase, 2 cart, 1 view, 0 none",
            False,
            value_range=(0, C.MAX_LABEL),
        ),
        Column(
            C.IMPORTANCE,
            T.DoubleType(),
            "sample importance: product of the four weights below, at least importance.floor",
            False,
            value_range=(1e-12, 1.0),
        ),
        Column(
            C.EVENT_VALUE_WEIGHT,
            T.DoubleType(),
            "importance.event_values of the label",
            False,
            value_range=(1e-12, 1.0),
        ),
        Column(
            C.RECENCY_WEIGHT,
            T.DoubleType(),
            "0.5 ** (days since the user's last event / importance.recency_half_life_days)",
            False,
            value_range=(1e-300, 1.0),
        ),
        Column(
            C.PROPENSITY_WEIGHT,
            T.DoubleType(),
            "inverse popularity: (1 + item views in 30 days / median) ** -propensity_power",
            False,
            value_range=(1e-300, 1.0),
        ),
        Column(
            C.LEARNED_WEIGHT,
            T.DoubleType(),
            "predicted out-of-fold loss of a pilot ranker, scaled to (0, 1] (1: no predictor yet)",
            False,
            value_range=(1e-12, 1.0),
        ),
        *(Column(f, T.DoubleType(), _feature_doc(f)) for f in C.RANKING_FEATURES),
    ),
    key=(C.DT, C.USER_ID, C.ITEM_ID),
)


USER_RECOMMENDATIONS = TableContract(
    name="recs.user_recommendations",
    grain="user x rank: the nightly top-k list of a user with candidates on dt (ranked by the "
    "champion ranker, audited before it is published)",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        Column(C.RANK, T.IntegerType(), "1 = best", False),
        Column(C.ITEM_ID, T.LongType(), "recommended item", False),
        Column(
            C.SCORE,
            T.DoubleType(),
            "ranker score (higher is better; the union order's 1 / union_rank before a ranker "
            "exists)",
            False,
            value_range=(-1e6, 1e6),
        ),
        Column(
            C.SOURCE,
            T.StringType(),
            "the candidate source that ranked the item best",
            False,
            accepted=C.CANDIDATE_SOURCES,
        ),
        Column(
            C.MODEL_VERSION,
            T.StringType(),
            "recsys-ranker/<registry version> of the champion used; without one, the best "
            "measured order: 'source:<name>' or 'union'",
            False,
        ),
    ),
    key=(C.DT, C.USER_ID, C.RANK),
)

QUALITY_CHECKS = TableContract(
    name="ops.quality_checks",
    grain="table x check x run date: the measured value, its threshold and the verdict",
    columns=(
        _DT,
        Column(
            C.TABLE_NAME,
            T.StringType(),
            "table the check is about (train_ranker's checks: the registered ranker's name)",
            False,
        ),
        Column(C.CHECK_NAME, T.StringType(), "name of the check", False),
        Column(C.VALUE, T.DoubleType(), "measured value", False),
        Column(C.THRESHOLD, T.DoubleType(), "limit the value is compared with, if any"),
        Column(C.PASSED, T.BooleanType(), "whether the check passed", False),
    ),
    # Partitioned by the slice each stage replaces, so a rerun drops its old rows by metadata
    # instead of rewriting the day's files of every other table.
    partition_by=(C.DT, C.TABLE_NAME),
    key=(C.DT, C.TABLE_NAME, C.CHECK_NAME),
)

STAGE_RUNS = TableContract(
    name="ops.stage_runs",
    grain="stage x run date: the last successful run of a stage for a day",
    columns=(
        _DT,
        Column(C.STAGE, T.StringType(), "stage name", False),
        Column(C.SECONDS, T.DoubleType(), "wall time of the stage", False),
        Column(C.FINISHED_AT, T.TimestampType(), "when it finished (UTC)", False),
        Column(C.FIGURES, T.MapType(T.StringType(), T.DoubleType()), "counts the stage reported"),
    ),
    partition_by=(C.DT, C.STAGE),
    key=(C.DT, C.STAGE),
)

MODEL_EVALUATION = TableContract(
    name="ops.model_evaluation",
    grain="model x variant x metric x k x run date: one offline evaluation figure",
    columns=(
        _DT,
        Column(C.MODEL, T.StringType(), "what was evaluated (e.g. category_completion)", False),
        Column(
            C.VARIANT, T.StringType(), "model or baseline (e.g. lightgbm, most_frequent)", False
        ),
        Column(C.METRIC, T.StringType(), "metric name (e.g. accuracy)", False),
        Column(C.K, T.IntegerType(), "cut-off (top-k) the metric is measured at", False),
        Column(C.VALUE, T.DoubleType(), "measured value", False),
    ),
    partition_by=(C.DT, C.MODEL),
    key=(C.DT, C.MODEL, C.VARIANT, C.METRIC, C.K),
)

ERASURES = TableContract(
    name="ops.erasures",
    grain="one erasure of users (recsys erase-user), without their ids",
    columns=(
        Column(C.DT, T.DateType(), "day the erasure ran (UTC)", False),
        Column(C.ERASURE_ID, T.StringType(), "id of the erasure (a random UUID)", False),
        Column(C.USERS, T.LongType(), "number of user ids the request named", False),
        Column(
            C.ROWS_DELETED,
            T.MapType(T.StringType(), T.LongType()),
            "rows deleted per table",
            False,
        ),
        Column(C.STAGED_DELETED, T.LongType(), "_staging/ partitions deleted", False),
        Column(
            C.ARTIFACTS_REWRITTEN, T.LongType(), "model artifacts rewritten without them", False
        ),
        Column(C.SERVING_ROWS_DELETED, T.LongType(), "rows deleted from the serving table", False),
        Column(
            C.FILES_GONE_AFTER,
            T.TimestampType(),
            "when the maintenance VACUUM may delete the files that still hold the rows (UTC)",
            False,
        ),
        Column(C.FINISHED_AT, T.TimestampType(), "when the erasure finished (UTC)", False),
    ),
    key=(C.DT, C.ERASURE_ID),
)

ALL_TABLES: tuple[TableContract, ...] = (
    RAW_EVENTS,
    RAW_ITEMS,
    CLEAN_EVENTS,
    CLEAN_EVENTS_REJECTED,
    CLEAN_ITEMS,
    USER_DAILY,
    USER_ITEM_DAILY,
    ITEM_DAILY,
    USER_PORTRAIT,
    ITEM_FEATURES,
    SIMILAR_ITEMS,
    BOUGHT_TOGETHER,
    POPULAR_ITEMS,
    CANDIDATES,
    TRAINING_SAMPLES,
    USER_RECOMMENDATIONS,
    QUALITY_CHECKS,
    MODEL_EVALUATION,
    STAGE_RUNS,
    ERASURES,
)


def by_name(name: str) -> TableContract:
    """The contract registered under ``schema.table``."""
    for table in ALL_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"unknown table {name!r}; known: {[t.name for t in ALL_TABLES]}")


def conform(df: DataFrame, table: TableContract) -> DataFrame:
    """Columns of the contract, in its order and types; fails on a missing column."""
    missing = [c for c in table.column_names if c not in df.columns]
    if missing:
        raise ValueError(f"{table.name}: missing columns {missing}")
    return df.select([F.col(c.name).cast(c.dtype).alias(c.name) for c in table.columns])
