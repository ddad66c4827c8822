"""Column names, event types and defaults shared by every stage.

Tables and their schemas live in ``warehouse/tables.py``; this module only names things,
the stages and the evaluated models among them (the DAG's task ids).
"""

from __future__ import annotations

DEFAULT_SEED = 42

# The nightly stages in the order the DAG runs them, and those that every day of history
# needs before a nightly run (the daily tables its windows read).
INGEST, CLEAN, AGGREGATE = "ingest", "clean", "aggregate"
ITEMS_STAGE, FEATURES = "items", "features"
TRAIN_ALS, CANDIDATES, SAMPLES = "train_als", "candidates", "samples"
TRAIN_RANKER, RECOMMEND = "train_ranker", "recommend"
NIGHTLY_STAGES = (
    INGEST,
    CLEAN,
    AGGREGATE,
    ITEMS_STAGE,
    FEATURES,
    TRAIN_ALS,
    CANDIDATES,
    SAMPLES,
    TRAIN_RANKER,
    RECOMMEND,
)
# What ops.model_evaluation.model calls each evaluated model.
MODEL_RANKER, MODEL_CANDIDATES, MODEL_CATEGORIES = "ranker", "candidates", "category_completion"
HISTORY_STAGES = (INGEST, CLEAN, AGGREGATE)
# The rest of a night: each reads a window ending on its own day.
WINDOWED_STAGES = tuple(s for s in NIGHTLY_STAGES if s not in HISTORY_STAGES)
# The first night after a history has no yesterday's candidates for its samples to label:
# it runs up to its candidates, which the next night reads (its samples would be empty,
# its ranker untrained, its lists only the next night's row-count baseline).
FIRST_NIGHT_STAGES = WINDOWED_STAGES[: WINDOWED_STAGES.index(CANDIDATES) + 1]

# A model's factor vector of a user or an item (ALS), as an array column.
FACTORS = "factors"

# Input columns of the RetailRocket event log (events.csv), as received.
RR_TIMESTAMP = "timestamp"
RR_VISITOR_ID = "visitorid"
RR_EVENT = "event"
RR_ITEM_ID = "itemid"
RR_TRANSACTION_ID = "transactionid"
RR_EVENT_COLUMNS = (RR_TIMESTAMP, RR_VISITOR_ID, RR_EVENT, RR_ITEM_ID, RR_TRANSACTION_ID)

# RetailRocket event names as they appear in the input.
RR_VIEW = "view"
RR_ADDTOCART = "addtocart"
RR_TRANSACTION = "transaction"

# RetailRocket catalogue files.
RR_PROPERTY = "property"
RR_VALUE = "value"
RR_CATEGORY_ID = "categoryid"
RR_PARENT_ID = "parentid"
RR_PROP_CATEGORY = "categoryid"
RR_PROP_AVAILABLE = "available"
RR_PROP_PRICE = "790"

# Columns of raw.events: the canonical fields of a source (input.columns) as received, all
# as text. The first five keep the names of RetailRocket's log, the project's first source.
RAW_TIMESTAMP = RR_TIMESTAMP
RAW_USER = RR_VISITOR_ID
RAW_EVENT = RR_EVENT
RAW_ITEM = RR_ITEM_ID
RAW_TRANSACTION = RR_TRANSACTION_ID
RAW_SESSION = "session_id"
RAW_CATEGORY = "category"
RAW_PRICE = "price"
RAW_QUANTITY = "quantity"
READ_ERROR = "read_error"  # why the row could not be read as the source says (or null)
# Canonical field of input.columns -> its raw.events column.
RAW_COLUMN_OF_FIELD = {
    "timestamp": RAW_TIMESTAMP,
    "user": RAW_USER,
    "item": RAW_ITEM,
    "event": RAW_EVENT,
    "transaction": RAW_TRANSACTION,
    "session": RAW_SESSION,
    "category": RAW_CATEGORY,
    "price": RAW_PRICE,
    "quantity": RAW_QUANTITY,
}
RAW_EVENT_COLUMNS = tuple(RAW_COLUMN_OF_FIELD.values())

# What the reader says of a row it could not read as the source describes (read_error).
BAD_ENCODING = "bad_encoding"
TOO_MANY_FIELDS = "too_many_fields"
TOO_FEW_FIELDS = "too_few_fields"
MALFORMED_JSON = "malformed_json"
READ_ERRORS = (BAD_ENCODING, TOO_MANY_FIELDS, TOO_FEW_FIELDS, MALFORMED_JSON)

# Reasons for rejecting an input row, in the order the clean stage tests them.
REJECT_REASONS = (
    *READ_ERRORS,
    "bad_timestamp",
    "implausible_timestamp",
    "timestamp_outside_day",
    "unknown_event",
    "null_user_id",
    "null_item_id",
    "bad_item_id",
    "missing_transaction_id",
)

# Canonical event types used from clean.events on.
VIEW = "view"
CART = "cart"
PURCHASE = "purchase"
EVENT_TYPES = (VIEW, CART, PURCHASE)
RR_EVENT_TO_TYPE = {RR_VIEW: VIEW, RR_ADDTOCART: CART, RR_TRANSACTION: PURCHASE}

# Columns of the project's own tables.
DT = "dt"
USER_ID = "user_id"
# ops.erasures
ERASURE_ID = "erasure_id"
ROWS_DELETED = "rows_deleted"
STAGED_DELETED = "staged_partitions_deleted"
ARTIFACTS_REWRITTEN = "artifacts_rewritten"
SERVING_ROWS_DELETED = "serving_rows_deleted"
FILES_GONE_AFTER = "files_gone_after"
ITEM_ID = "item_id"
EVENT_TYPE = "event_type"
EVENT_TS = "event_ts"
TRANSACTION_ID = "transaction_id"
SOURCE_FILE = "source_file"
INGESTED_AT = "ingested_at"
REJECT_REASON = "reject_reason"
RANK = "rank"
SCORE = "score"
SOURCE = "source"
MODEL_VERSION = "model_version"
TABLE_NAME = "table_name"
CHECK_NAME = "check_name"
VALUE = "value"
THRESHOLD = "threshold"
PASSED = "passed"
STAGE = "stage"
SECONDS = "seconds"
FINISHED_AT = "finished_at"
FIGURES = "figures"

# Columns of a generated shop's items.csv (its ground truth; itemid and categoryid as above).
GEN_PRICE = "price"
GEN_FIRST_SEEN = "first_seen"
GEN_BUNDLE_PARTNER = "bundle_partner"  # the planted bundle partner's itemid, empty if none

# Catalogue input (RetailRocket item_properties*.csv; the value column is RR_VALUE).
RR_ITEM_PROPERTY_COLUMNS = (RR_TIMESTAMP, RR_ITEM_ID, RR_PROPERTY, RR_VALUE)
RR_CATEGORY_TREE_COLUMNS = (RR_CATEGORY_ID, RR_PARENT_ID)

# clean.items
CATEGORY_ID = "category_id"
CATEGORY_PATH = "category_path"
TOP_CATEGORY_ID = "top_category_id"
CATEGORY_DEPTH = "category_depth"
CATEGORY_SOURCE = "category_source"
CATEGORY_CONFIDENCE = "category_confidence"
PRICE = "price"
AVAILABLE = "available"
FIRST_SEEN = "first_seen"
PROPERTIES_UPDATED_AT = "properties_updated_at"
SOURCE_CATALOGUE = "catalogue"
SOURCE_PREDICTED = "predicted"

# Daily aggregates (features.*_daily).
VIEWS = "views"
CARTS = "carts"
PURCHASES = "purchases"
EVENT_COUNT_COLUMNS = {VIEW: VIEWS, CART: CARTS, PURCHASE: PURCHASES}
USERS = "users"
ITEMS = "items"
ACTIVE_HOURS = "active_hours"
FIRST_EVENT_TS = "first_event_ts"
LAST_EVENT_TS = "last_event_ts"

# features.user_portrait and features.item_features (windowed columns: f"{name}_{n}d").
ACTIVE_DAYS_90D = "active_days_90d"
DISTINCT_ITEMS_90D = "distinct_items_90d"
DISTINCT_CATEGORIES_90D = "distinct_categories_90d"
FIRST_ACTIVE_DATE = "first_active_date"
DAYS_SINCE_LAST_EVENT = "days_since_last_event"
DAYS_SINCE_LAST_CART = "days_since_last_cart"
DAYS_SINCE_LAST_PURCHASE = "days_since_last_purchase"
SPEND_90D = "spend_90d"
RECENCY_SCORE = "recency_score"
FREQUENCY_SCORE = "frequency_score"
MONETARY_SCORE = "monetary_score"
RFM_SEGMENT = "rfm_segment"
LIFECYCLE_STAGE = "lifecycle_stage"
TOP_CATEGORIES = "top_categories"
AFFINITY = "affinity"
PRICE_BAND_PCT = "price_band_pct"
PRICE_BAND = "price_band"
PREFERRED_PUSH_HOUR = "preferred_push_hour"
CART_RATE = "cart_rate"
PURCHASE_RATE = "purchase_rate"
USERS_30D = "users_30d"
TREND_7D = "trend_7d"
AGE_DAYS = "age_days"
PRICE_PCT_IN_CATEGORY = "price_pct_in_category"

RFM_SEGMENTS = ("champions", "loyal", "new", "promising", "at_risk", "hibernating")
LIFECYCLE_STAGES = ("new", "active", "dormant", "churned")
PRICE_BANDS = ("low", "mid", "high")

# ops.model_evaluation
MODEL = "model"
VARIANT = "variant"
METRIC = "metric"
K = "k"

# Candidate sources (recs.similar_items, recs.bought_together, recs.popular_items).
SIMILAR_ITEM_ID = "similar_item_id"
OTHER_ITEM_ID = "other_item_id"
SUPPORT = "support"
CONFIDENCE = "confidence"
LIFT = "lift"
LIST = "list"
SCOPE = "scope"
LIST_POPULAR = "popular"
LIST_NEW_ARRIVALS = "new_arrivals"
POPULAR_LISTS = (LIST_POPULAR, LIST_NEW_ARRIVALS)
SCOPE_GLOBAL = "global"
SCOPE_TOP_CATEGORY = "top_category"
SCOPE_CATEGORY = "category"
POPULAR_SCOPES = (SCOPE_GLOBAL, SCOPE_TOP_CATEGORY, SCOPE_CATEGORY)
GLOBAL_CATEGORY_ID = -1  # category_id of the global lists

# features.candidates: the sources, in the order that breaks ties in the union's order;
# each has a score and a rank column (f"{source}_score", f"{source}_rank").
SOURCE_ALS = "als"
SOURCE_SIMILAR = "similar"
SOURCE_BOUGHT_TOGETHER = "bought_together"
SOURCE_POPULAR = "popular"
SOURCE_NEW_ARRIVALS = "new_arrivals"
SOURCE_RECENT_VIEWS = "recent_views"
SOURCE_EASE = "ease"
CANDIDATE_SOURCES = (
    SOURCE_ALS,
    SOURCE_SIMILAR,
    SOURCE_BOUGHT_TOGETHER,
    SOURCE_POPULAR,
    SOURCE_NEW_ARRIVALS,
    SOURCE_RECENT_VIEWS,
    SOURCE_EASE,
)
SOURCES = "sources"
N_SOURCES = "n_sources"
UNION_RANK = "union_rank"
SOURCE_UNION = "union"

# A user's history in the active window (recsys_lib.sources.history), thinnest first.
HISTORY_GROUP = "history_group"  # column: the group of a user
HISTORY_ONE_EVENT = "one_event"  # a single event
HISTORY_ONE_DAY = "one_day"  # several events, all on one day, no cart or purchase
HISTORY_DAYS = "several_days"  # events on two or more days, no cart or purchase
HISTORY_CARTED = "carted"  # a cart or purchase in the window
HISTORY_GROUPS = (HISTORY_ONE_EVENT, HISTORY_ONE_DAY, HISTORY_DAYS, HISTORY_CARTED)


def source_score(source: str) -> str:
    """Column of a candidate source's score in features.candidates."""
    return f"{source}_score"


def source_rank(source: str) -> str:
    """Column of a candidate source's rank (1 = its best) in features.candidates."""
    return f"{source}_rank"


# features.training_samples and the ranker.
LABEL = "label"  # graded relevance of a candidate on the label day
LABEL_NONE = 0
LABEL_OF_EVENT = {VIEW: 1, CART: 2, PURCHASE: 3}  # a day's best event decides the label
MAX_LABEL = 3
IMPORTANCE = "importance"  # in (0, 1]: product of the components below (docs/importance.md)
EVENT_VALUE_WEIGHT = "event_value_weight"
RECENCY_WEIGHT = "recency_weight"
PROPENSITY_WEIGHT = "propensity_weight"
LEARNED_WEIGHT = "learned_weight"
IMPORTANCE_COMPONENTS = (EVENT_VALUE_WEIGHT, RECENCY_WEIGHT, PROPENSITY_WEIGHT, LEARNED_WEIGHT)
SAMPLE_WEIGHT = "sample_weight"  # LightGBM weight of a kept sample (importance / keep prob.)
KEEP_PROBABILITY = "keep_probability"
GROUP = "group"  # a ranking group: user x label day

# Ranking features (all doubles; null = missing, which LightGBM handles).
USER_FEATURE_SOURCES = (
    "views_7d",
    "views_30d",
    "carts_30d",
    "purchases_30d",
    "active_days_90d",
    "distinct_items_90d",
    DAYS_SINCE_LAST_EVENT,
    CART_RATE,
    PURCHASE_RATE,
    PRICE_BAND_PCT,
    RECENCY_SCORE,
    FREQUENCY_SCORE,
    MONETARY_SCORE,
)
ITEM_FEATURE_SOURCES = (
    "views_1d",
    "views_7d",
    "views_30d",
    "carts_7d",
    "carts_30d",
    "purchases_30d",
    "users_30d",
    "trend_7d",
    CART_RATE,
    PURCHASE_RATE,
    AGE_DAYS,
    PRICE,
    PRICE_PCT_IN_CATEGORY,
    AVAILABLE,
)
USER_FEATURES = tuple(f"user_{c}" for c in USER_FEATURE_SOURCES)
ITEM_FEATURES = tuple(f"item_{c}" for c in ITEM_FEATURE_SOURCES)
CATEGORY_AFFINITY = "category_affinity"  # the user's affinity to the item's leaf category
TOP_CATEGORY_AFFINITY = "top_category_affinity"  # ... summed over its top-level category
PRICE_BAND_GAP = "price_band_gap"  # item price percentile - user's price band percentile
DAYS_SINCE_ITEM_EVENT = "days_since_item_event"  # user's last event on the item (30 days)
DAYS_SINCE_CATEGORY_EVENT = "days_since_category_event"  # ... on the item's category
USER_ITEM_VIEWS_30D = "user_item_views_30d"
USER_ITEM_CARTS_30D = "user_item_carts_30d"
PAIR_FEATURES = (
    CATEGORY_AFFINITY,
    TOP_CATEGORY_AFFINITY,
    PRICE_BAND_GAP,
    DAYS_SINCE_ITEM_EVENT,
    DAYS_SINCE_CATEGORY_EVENT,
    USER_ITEM_VIEWS_30D,
    USER_ITEM_CARTS_30D,
)
CANDIDATE_FEATURES = (
    N_SOURCES,
    UNION_RANK,
    *[c for s in CANDIDATE_SOURCES for c in (source_score(s), source_rank(s))],
)
RANKING_FEATURES = (*CANDIDATE_FEATURES, *PAIR_FEATURES, *USER_FEATURES, *ITEM_FEATURES)

# Variants of the nightly ranker evaluation (ops.model_evaluation, model "ranker").
RANKER = "ranker"
RANKER_NO_IMPORTANCE = "ranker_no_importance"
RANKER_IMPORTANCE = "ranker_importance"  # the ablation when ranker.importance is off
RANKER_SAMPLED = "ranker_sampled"
VARIANT_POPULARITY = "popularity"
