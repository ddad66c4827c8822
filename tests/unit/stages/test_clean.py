import pytest

from recsys_lib.stages.clean import describe_rejects, reconciliation_checks
from recsys_lib.transforms.cleaning import CleanCounts
from recsys_lib.warehouse.quality import QualityCheckError, raise_on_failure

COUNTS = CleanCounts(
    input_rows=100,
    clean_rows=60,
    duplicate_rows=2,
    rejected_rows=35,
    dropped_rows=3,
    rejected_by_reason={"bad_timestamp": 30, "unknown_event": 5},
    dropped_by_event={"remove_from_cart": 3},
)


def test_the_reconciliation_is_recorded_per_reason_and_dropped_name() -> None:
    checks = {c.name: c.value for c in reconciliation_checks(COUNTS, 0.5)}
    assert checks["unreconciled_rows"] == 0 and checks["dropped_rows"] == 3
    assert checks["rejected_rows.bad_timestamp"] == 30
    assert checks["dropped_rows.remove_from_cart"] == 3
    assert checks["rejected_share"] == 0.35
    raise_on_failure(reconciliation_checks(COUNTS, 0.5))


def test_too_many_rejects_fail_the_day_with_reasons_and_files() -> None:
    checks = reconciliation_checks(COUNTS, 0.2, ["file:/in/events_2015-06-02.csv"])
    with pytest.raises(
        QualityCheckError,
        match=r"rejected_share = 0.35 \(threshold 0.2\): bad_timestamp 30, unknown_event 5 "
        r"in file:/in/events_2015-06-02.csv",
    ):
        raise_on_failure(checks)


def test_rows_that_go_nowhere_fail_the_day() -> None:
    lost = CleanCounts(input_rows=10, clean_rows=8, duplicate_rows=0, rejected_rows=1)
    with pytest.raises(QualityCheckError, match="unreconciled_rows = 1"):
        raise_on_failure(reconciliation_checks(lost, 1.0))
    assert describe_rejects(lost) == ""
