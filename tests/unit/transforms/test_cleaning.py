import dataclasses
import datetime as dt

import pytest

from recsys_lib import constants as C
from recsys_lib.config import load_settings
from recsys_lib.transforms.cleaning import clean_events
from recsys_lib.transforms.privacy import hmac_sha256_hex, pseudonym_column
from tests.conftest import REPO, TEST_KEY

DAY = dt.date(2015, 6, 2)
KEY = TEST_KEY.encode()  # in the Spark session's environment (tests/conftest.py)


def PSEUDONYM(column):  # noqa: N802 - the stage's pseudonym column, as clean passes it
    return pseudonym_column(column, "RECSYS_PSEUDONYM_KEY")


MS = 1433203200000  # 2015-06-02T00:00:00Z
COLUMNS = [*C.RAW_EVENT_COLUMNS, C.READ_ERROR, C.SOURCE_FILE]
RR = load_settings("local", conf_dir=REPO / "conf", home=REPO, environ={}).input
REES46 = load_settings(
    "local", conf_dir=REPO / "conf", home=REPO, environ={"RECSYS__INPUT__SOURCE": "rees46"}
).input


def row(
    ts=str(MS + 1000),
    visitor="7",
    event="view",
    item="42",
    txn=None,
    category=None,
    price=None,
    error=None,
):
    values = {
        C.RAW_TIMESTAMP: ts,
        C.RAW_USER: visitor,
        C.RAW_EVENT: event,
        C.RAW_ITEM: item,
        C.RAW_TRANSACTION: txn,
        C.RAW_CATEGORY: category,
        C.RAW_PRICE: price,
        C.READ_ERROR: error,
        C.SOURCE_FILE: "f.csv",
    }
    return tuple(values.get(c) for c in COLUMNS)


RAW = [
    row(),  # valid
    row(),  # exact duplicate of the first
    row(ts=str(MS + 2000), event="addtocart"),
    row(ts=str(MS + 3000), event="transaction", txn="99"),
    row(error=C.BAD_ENCODING, visitor="caf\ufffd"),  # bad_encoding
    row(error=C.TOO_MANY_FIELDS),  # too_many_fields
    row(error=C.TOO_FEW_FIELDS),  # too_few_fields
    row(error=C.MALFORMED_JSON),  # malformed_json
    row(ts="not-a-time"),  # bad_timestamp
    row(ts=None),  # bad_timestamp
    row(ts="1433203200"),  # implausible_timestamp: seconds read as ms (1970)
    row(ts=str(MS - 1)),  # timestamp_outside_day (last ms of the day before)
    row(ts=str(MS + 86_400_000)),  # timestamp_outside_day (first ms of the next day)
    row(event="click"),  # unknown_event
    row(visitor=" "),  # null_user_id
    row(item=None),  # null_item_id
    row(item="12a"),  # bad_item_id
    row(event="transaction", txn=None),  # missing_transaction_id
    row(ts=str(MS + 86_399_999), visitor="8"),  # valid: last ms of the day
]


@pytest.fixture()
def raw(spark):
    return spark.createDataFrame(RAW, ", ".join(f"{c} string" for c in COLUMNS))


@pytest.fixture()
def result(raw):
    return clean_events(raw, PSEUDONYM, RR, DAY)


def test_every_reject_reason_in_its_order(result) -> None:
    reasons = sorted(r[C.REJECT_REASON] for r in result.rejected.collect())
    expected = list(C.REJECT_REASONS)
    expected += ["bad_timestamp", "timestamp_outside_day"]  # two rows of each
    assert reasons == sorted(expected)


def test_counts_reconcile(result) -> None:
    counts = result.counts[DAY]
    assert (counts.input_rows, counts.clean_rows, counts.duplicate_rows, counts.rejected_rows) == (
        19,
        4,
        1,
        14,
    )
    assert counts.dropped_rows == 0 and counts.unreconciled_rows == 0
    assert counts.rejected_by_reason == {
        **dict.fromkeys(C.REJECT_REASONS, 1),
        "bad_timestamp": 2,
        "timestamp_outside_day": 2,
    }


def test_clean_rows_are_typed_and_pseudonymised(result) -> None:
    rows = sorted(result.events.collect(), key=lambda r: r[C.EVENT_TS])
    assert [r[C.EVENT_TYPE] for r in rows] == ["view", "cart", "purchase", "view"]
    assert {r[C.USER_ID] for r in rows} == {hmac_sha256_hex(KEY, "7"), hmac_sha256_hex(KEY, "8")}
    assert rows[0][C.ITEM_ID] == 42 and rows[2][C.TRANSACTION_ID] == "99"
    assert rows[0][C.EVENT_TS] == dt.datetime(2015, 6, 2, 0, 0, 1)
    assert all(r[C.DT] == DAY for r in rows)
    rejected = {r[C.REJECT_REASON]: r[C.USER_ID] for r in result.rejected.collect()}
    assert hmac_sha256_hex(KEY, "7") in rejected.values() and "7" not in rejected.values()


def test_a_badly_encoded_row_is_never_hashed(result) -> None:
    rejected = {r[C.REJECT_REASON]: r for r in result.rejected.collect()}
    assert rejected[C.BAD_ENCODING][C.USER_ID] is None
    assert rejected[C.TOO_MANY_FIELDS][C.USER_ID] == hmac_sha256_hex(KEY, "7")


def test_event_names_are_mapped_dropped_or_unknown(spark) -> None:
    iso = "2015-06-02 10:00:00 UTC"
    rows = [
        row(ts=iso, event="view", category="2053013555631882655", price="35.79"),
        row(ts=iso, event="cart", item="43", category="x1", price="-3"),
        row(ts=iso, event="purchase", item="44"),  # no transaction id: none in REES46
        row(ts=iso, event="remove_from_cart", item="43"),  # dropped, counted
        row(ts=iso, event="remove_from_cart", item="45"),
        row(ts=iso, event="addtocart"),  # RetailRocket's name: unknown here
        row(ts="1433239200000"),  # milliseconds are not ISO text
    ]
    raw = spark.createDataFrame(rows, ", ".join(f"{c} string" for c in COLUMNS))
    result = clean_events(raw, PSEUDONYM, REES46, DAY)
    counts = result.counts[DAY]
    assert (counts.clean_rows, counts.dropped_rows, counts.rejected_rows) == (3, 2, 2)
    assert counts.dropped_by_event == {"remove_from_cart": 2}
    assert counts.rejected_by_reason == {"unknown_event": 1, "bad_timestamp": 1}
    assert (counts.unparsed_categories, counts.unparsed_prices) == (1, 1)
    assert counts.unreconciled_rows == 0
    events = {r[C.ITEM_ID]: r for r in result.events.collect()}
    assert events[42][C.CATEGORY_ID] == 2053013555631882655 and events[42][C.PRICE] == 35.79
    assert events[43][C.CATEGORY_ID] is None and events[43][C.PRICE] is None
    assert events[44][C.EVENT_TYPE] == "purchase" and events[44][C.TRANSACTION_ID] is None
    assert events[42][C.EVENT_TS] == dt.datetime(2015, 6, 2, 10, 0)


def test_times_are_read_in_the_configured_zone(spark) -> None:
    berlin = dataclasses.replace(
        REES46, timestamp=dataclasses.replace(REES46.timestamp, timezone="Europe/Berlin")
    )
    rows = [
        row(ts="2015-06-02 10:00:00", item="1"),  # naive: Berlin summer time, UTC+2
        row(ts="2015-06-02 10:00:00 UTC", item="2"),  # a zone of its own wins
        row(ts="2015-06-02T10:00:00+01:00", item="3"),
        row(ts="2015-06-02 01:00:00", item="4"),  # 23:00 UTC the day before
    ]
    raw = spark.createDataFrame(rows, ", ".join(f"{c} string" for c in COLUMNS))
    result = clean_events(raw, PSEUDONYM, berlin, DAY)
    times = {r[C.ITEM_ID]: r[C.EVENT_TS] for r in result.events.collect()}
    assert times == {
        1: dt.datetime(2015, 6, 2, 8, 0),
        2: dt.datetime(2015, 6, 2, 10, 0),
        3: dt.datetime(2015, 6, 2, 9, 0),
    }
    assert [r[C.REJECT_REASON] for r in result.rejected.collect()] == ["timestamp_outside_day"]
