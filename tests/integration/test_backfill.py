"""A range backfill equals the same days run one by one, row for row, in every table its
stages write; a range that fails part-way leaves no half-written day and resumes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.cli import backfill, run_days
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.io.files import InputError
from recsys_lib.pipeline import HISTORY_STAGES, StageError
from recsys_lib.warehouse.storage import read_table, table_version
from recsys_lib.warehouse.tables import ALL_TABLES, STAGE_RUNS, TableContract
from tests.conftest import make_settings
from tests.integration.helpers import shop_inputs

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAYS = 5
CHUNK = 3  # two chunks: 3 days, then 2
# Load timestamps and run times: the only columns a rerun is allowed to change.
UNSTABLE = (C.INGESTED_AT, C.SECONDS, C.FINISHED_AT)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    return generate_shop(tmp_path_factory.mktemp("shop"), "default", scale=0.1, days=DAYS)


def shop_settings(home: Path, shop) -> Settings:
    return make_settings(home, **shop_inputs(shop))


@pytest.fixture(scope="module")
def one_by_one(shop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The reference: every day's history stages, one day after another."""
    settings = shop_settings(tmp_path_factory.mktemp("one_by_one"), shop)
    run_days(settings, HISTORY_STAGES, DayRange(shop.first_day, shop.last_day).days)
    return settings


def stable_rows(spark: SparkSession, settings: Settings, table: TableContract) -> DataFrame:
    """The table's rows without load timestamps and run times; maps (``figures``) as sorted
    entries, since set operations cannot compare maps."""
    frame = read_table(spark, settings, table)
    frame = frame.drop(*[c for c in UNSTABLE if c in frame.columns])
    for field in frame.schema.fields:
        if isinstance(field.dataType, T.MapType):
            entries = F.filter(F.map_entries(field.name), lambda e: ~e["key"].endswith("seconds"))
            frame = frame.withColumn(field.name, F.array_sort(entries))
    return frame


def assert_same_tables(spark: SparkSession, expected: Settings, actual: Settings) -> None:
    """Every table either run wrote holds the same rows in both (as multisets)."""
    compared = 0
    for table in ALL_TABLES:
        written = [table_version(spark, s, table) >= 0 for s in (expected, actual)]
        assert written[0] == written[1], f"{table.name}: written by one run only"
        if not written[0]:
            continue
        want, got = stable_rows(spark, expected, table), stable_rows(spark, actual, table)
        rows = want.count()
        assert got.count() == rows, f"{table.name}: {got.count()} rows, expected {rows}"
        assert want.exceptAll(got).isEmpty(), f"{table.name}: rows differ"
        compared += rows > 0
    assert compared >= 6  # raw, clean and daily tables, quality checks, stage runs


def days_in(spark: SparkSession, settings: Settings, table: TableContract) -> set[dt.date]:
    return {r[0] for r in read_table(spark, settings, table).select(C.DT).distinct().collect()}


def test_a_range_backfill_equals_the_days_one_by_one(spark, shop, one_by_one, tmp_path) -> None:
    settings = shop_settings(tmp_path, shop)
    span = DayRange(shop.first_day, shop.last_day)
    seconds = backfill(settings, HISTORY_STAGES, span, chunk_days=CHUNK)
    assert set(seconds) == {(d, s) for d in span.days for s in HISTORY_STAGES}
    assert_same_tables(spark, one_by_one, settings)


def test_a_failed_range_leaves_whole_days_and_resumes(spark, shop, one_by_one, tmp_path) -> None:
    settings = shop_settings(tmp_path, shop)
    span = DayRange(shop.first_day, shop.last_day)
    late = shop.out_dir / "events" / f"events_{shop.last_day.isoformat()}.csv"
    assert late.is_file(), sorted(p.name for p in late.parent.iterdir())
    hidden = late.with_suffix(".late")
    late.rename(hidden)  # the last day's input has not arrived
    try:
        with pytest.raises(StageError, match=shop.last_day.isoformat()) as failed:
            backfill(settings, HISTORY_STAGES, span, chunk_days=CHUNK)
    finally:
        hidden.rename(late)
    assert isinstance(failed.value.cause, InputError)
    first_chunk = set(DayRange(shop.first_day, shop.first_day + dt.timedelta(CHUNK - 1)).days)
    for table in ALL_TABLES:
        if table_version(spark, settings, table) >= 0 and C.DT in table.column_names:
            assert days_in(spark, settings, table) <= first_chunk, f"{table.name}: a later day"
    assert days_in(spark, settings, STAGE_RUNS) == first_chunk

    seconds = backfill(settings, HISTORY_STAGES, span, chunk_days=CHUNK, resume=True)
    assert {d for d, _ in seconds} == set(span.days) - first_chunk  # done days are skipped
    assert_same_tables(spark, one_by_one, settings)
