"""Stage ``ingest`` records what it read and wrote in ``ops.quality_checks``, and refuses a
day whose rows do not reconcile before writing anything."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.dates import DayRange
from recsys_lib.stages import ingest as ingest_stage
from recsys_lib.warehouse.quality import QualityCheckError
from recsys_lib.warehouse.storage import ensure_tables, read_table, table_version
from recsys_lib.warehouse.tables import QUALITY_CHECKS, RAW_EVENTS
from tests.conftest import make_settings

HEADER = "timestamp,visitorid,event,itemid,transactionid"
MS = 1433203200000  # 2015-06-02T00:00:00Z
DAY = dt.date(2015, 6, 2)
NEXT = DAY + dt.timedelta(days=1)


def _shop(folder: Path) -> Path:
    folder.mkdir()
    (folder / "events_2015-06-02.csv").write_text(
        "\n".join(
            [
                HEADER,
                f"{MS},1,view,10,",
                f"{MS},1,view,10,",  # the same line twice: both written, clean removes one
                f"{MS},2,remove_from_cart,11,",  # clean drops this name
                f"{MS},3,view,10,,extra",  # a field too many
                f"{MS + 5},4,transaction,12,99",
            ]
        )
        + "\n"
    )
    (folder / "events_2015-06-03.csv").write_text(f"{HEADER}\n{MS + 86_400_000},5,view,10,\n")
    return folder


def _checks(spark, settings, day: dt.date) -> dict[str, tuple[float, bool]]:
    rows = read_table(spark, settings, QUALITY_CHECKS).filter(
        (F.col(C.DT) == day) & (F.col(C.TABLE_NAME) == RAW_EVENTS.name)
    )
    return {r[C.CHECK_NAME]: (r[C.VALUE], r[C.PASSED]) for r in rows.collect()}


def test_ingest_records_files_rows_read_and_written_and_what_clean_will_drop(
    spark, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        INPUT__EVENTS_PATH=str(_shop(tmp_path / "events")),
        INPUT__ITEM_PROPERTIES_PATH="",
        INPUT__DROP_EVENTS="remove_from_cart",
    )
    ensure_tables(spark, settings)
    ingest_stage.ingest(spark, settings, DayRange(DAY, NEXT))
    first = _checks(spark, settings, DAY)
    assert {k: v for k, (v, _) in first.items()} == {
        "rows_read": 5,
        "rows_written": 5,
        "unreconciled_rows": 0,
        "files": 1,
        "rows_written.events_2015-06-02.csv": 5,
        "read_errors.bad_encoding": 0,
        "read_errors.too_many_fields": 1,
        "read_errors.too_few_fields": 0,
        "read_errors.malformed_json": 0,
        "dropped_names.remove_from_cart": 1,
    }
    assert all(passed for _, passed in first.values())
    assert _checks(spark, settings, NEXT)["rows_written"] == (1.0, True)


def test_rows_lost_between_reading_and_writing_fail_the_day_before_any_write(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path,
        INPUT__EVENTS_PATH=str(_shop(tmp_path / "events")),
        INPUT__ITEM_PROPERTIES_PATH="",
    )
    ensure_tables(spark, settings)
    real = ingest_stage.load_events

    def miscounted(*args, **kwargs):
        raw = real(*args, **kwargs)
        return dataclasses.replace(raw, rows_per_day={DAY: 7})  # the files held 7 rows

    monkeypatch.setattr(ingest_stage, "load_events", miscounted)
    before = table_version(spark, settings, RAW_EVENTS)
    with pytest.raises(QualityCheckError, match=r"raw\.events\.unreconciled_rows = 2"):
        ingest_stage.ingest(spark, settings, DayRange.of(DAY))
    assert table_version(spark, settings, RAW_EVENTS) == before  # nothing written
    assert _checks(spark, settings, DAY)["unreconciled_rows"] == (2.0, False)  # but recorded
