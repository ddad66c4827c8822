"""Column names, event types and defaults shared by every stage.

Tables and their schemas live in ``tables.py``; this module only names things.
"""

from __future__ import annotations

DEFAULT_SEED = 42

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

# Reasons for rejecting an input row, in the order the clean stage tests them.
REJECT_REASONS = (
    "bad_timestamp",
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
