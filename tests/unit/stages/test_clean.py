import datetime as dt

import pytest

from recsys_lib import constants as C
from recsys_lib.stages.clean import REJECT_REASONS, clean_events, reconciliation_checks
from recsys_lib.transforms.privacy import hmac_sha256_hex
from recsys_lib.warehouse.quality import QualityCheckError, raise_on_failure

DAY = dt.date(2015, 6, 2)
KEY = b"k"
MS = 1433203200000  # 2015-06-02T00:00:00Z
COLUMNS = [*C.RR_EVENT_COLUMNS, C.SOURCE_FILE]


def row(ts=str(MS + 1000), visitor="7", event="view", item="42", txn=None):
    return (ts, visitor, event, item, txn, "f.csv")


RAW = [
    row(),  # valid
    row(),  # exact duplicate of the first
    row(ts=str(MS + 2000), event="addtocart"),
    row(ts=str(MS + 3000), event="transaction", txn="99"),
    row(ts="not-a-time"),  # bad_timestamp
    row(ts=None),  # bad_timestamp
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
def result(spark):
    raw = spark.createDataFrame(RAW, ", ".join(f"{c} string" for c in COLUMNS))
    return clean_events(raw, KEY, DAY)


def test_every_reject_reason(result) -> None:
    reasons = sorted(r[C.REJECT_REASON] for r in result.rejected.collect())
    assert reasons == sorted(
        ["bad_timestamp"] * 2 + ["timestamp_outside_day"] * 2 + list(REJECT_REASONS[2:])
    )


def test_counts_reconcile(result) -> None:
    counts = result.counts[DAY]
    assert (counts.input_rows, counts.clean_rows, counts.duplicate_rows, counts.rejected_rows) == (
        14,
        4,
        1,
        9,
    )
    assert counts.unreconciled_rows == 0
    raise_on_failure(reconciliation_checks(counts, max_rejected_share=1.0))


def test_clean_rows_are_typed_and_pseudonymised(result) -> None:
    rows = sorted(result.events.collect(), key=lambda r: r[C.EVENT_TS])
    assert [r[C.EVENT_TYPE] for r in rows] == ["view", "cart", "purchase", "view"]
    assert {r[C.USER_ID] for r in rows} == {hmac_sha256_hex(KEY, "7"), hmac_sha256_hex(KEY, "8")}
    assert rows[0][C.ITEM_ID] == 42 and rows[2][C.TRANSACTION_ID] == "99"
    assert rows[0][C.EVENT_TS] == dt.datetime(2015, 6, 2, 0, 0, 1)
    assert all(r[C.DT] == DAY for r in rows)
    rejected_users = {r[C.USER_ID] for r in result.rejected.collect()}
    assert "7" not in rejected_users and hmac_sha256_hex(KEY, "7") in rejected_users


def test_too_many_rejects_fail_the_day(result) -> None:
    checks = reconciliation_checks(result.counts[DAY], max_rejected_share=0.2)
    with pytest.raises(QualityCheckError, match="rejected_share = 0.642857"):
        raise_on_failure(checks)
