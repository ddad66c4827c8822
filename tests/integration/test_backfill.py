"""A range backfill equals the same days run one by one, row for row, in every table its
stages write; two backfills of disjoint ranges at once, in two processes, give the same
rows; a range that fails part-way leaves no half-written day, and killed (SIGKILL) in its
second chunk mid-write and between two commits leaves every table readable; each time it
resumes, and ends with the same rows."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
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
from recsys_lib.warehouse.tables import (
    ALL_TABLES,
    QUALITY_CHECKS,
    RAW_EVENTS,
    STAGE_RUNS,
    TableContract,
)
from tests.conftest import make_settings, recsys_environ
from tests.integration.helpers import killed_at, readable, shop_inputs
from tests.unit.runtime.test_claims import claims_left

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAYS = 5
CHUNK = 3  # two chunks: 3 days, then 2
# Load timestamps and run times: the only columns a rerun is allowed to change.
UNSTABLE = (C.INGESTED_AT, C.SECONDS, C.FINISHED_AT)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    return generate_shop(tmp_path_factory.mktemp("shop"), "default", scale=0.1, days=DAYS)


def shop_settings(home: Path, shop, **overrides: str) -> Settings:
    return make_settings(home, **shop_inputs(shop), **overrides)


def recsys(home: Path, shop, *args: str, **overrides: str) -> subprocess.Popen:
    """A ``recsys`` subprocess on ``shop_settings(home, shop, **overrides)``."""
    environ = recsys_environ(home, **shop_inputs(shop), **overrides)
    command = [str(Path(sys.executable).with_name("recsys")), *args]
    return subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def range_args(span: DayRange) -> tuple[str, ...]:
    return ("backfill", "--start", str(span.first), "--end", str(span.last),
            "--stages", ",".join(HISTORY_STAGES), "--chunk-days", str(CHUNK))  # fmt: skip


# The checks of a day against the median of the days before it: the one thing a range's
# first days read from the days before the range (see the concurrent test).
RECENT_CHECKS = ("recent_median_rows", "rows_vs_recent_min", "rows_vs_recent_max")


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


def assert_same_tables(
    spark: SparkSession, expected: Settings, actual: Settings, *, without_checks=()
) -> None:
    """Every table either run wrote holds the same rows in both (as multisets); quality
    checks named in ``without_checks`` are left out of the expected rows."""
    compared = 0
    for table in ALL_TABLES:
        written = [table_version(spark, s, table) >= 0 for s in (expected, actual)]
        assert written[0] == written[1], f"{table.name}: written by one run only"
        if not written[0]:
            continue
        want, got = stable_rows(spark, expected, table), stable_rows(spark, actual, table)
        if table == QUALITY_CHECKS and without_checks:
            want = want.filter(~F.col(C.CHECK_NAME).isin(*without_checks))
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


def test_two_backfills_of_disjoint_ranges_at_once_equal_the_days_one_by_one(
    spark, shop, one_by_one, tmp_path
) -> None:
    """Two processes, each a range of the history stages, on one new warehouse at once. A
    range's first days are checked against the days before it (the median of recent days),
    which the other process may not have written yet: that check is off here (and left out
    of the reference); every other row of every table must be the same."""
    alone = {"QUALITY__MIN_RECENT_DAYS": str(DAYS + 1)}
    middle = shop.first_day + dt.timedelta(CHUNK - 1)
    spans = [DayRange(shop.first_day, middle), DayRange(middle + dt.timedelta(1), shop.last_day)]
    started = time.perf_counter()
    processes = [recsys(tmp_path, shop, *range_args(span), **alone) for span in spans]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    print(f"two backfills at once: {time.perf_counter() - started:.0f}s")
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    settings = shop_settings(tmp_path, shop, **alone)
    assert_same_tables(spark, one_by_one, settings, without_checks=RECENT_CHECKS)
    assert claims_left(settings) == []  # every claim given back


def test_a_failed_or_killed_range_leaves_readable_whole_days_and_resumes(
    spark, shop, one_by_one, tmp_path
) -> None:
    settings = shop_settings(tmp_path, shop)
    span = DayRange(shop.first_day, shop.last_day)
    first_chunk = set(DayRange(shop.first_day, shop.first_day + dt.timedelta(CHUNK - 1)).days)
    # A failure: the last day's input has not arrived. The first chunk is whole; nothing of
    # the second is written.
    late = shop.out_dir / "events" / f"events_{shop.last_day.isoformat()}.csv"
    assert late.is_file(), sorted(p.name for p in late.parent.iterdir())
    hidden = late.with_suffix(".late")
    late.rename(hidden)
    try:
        with pytest.raises(StageError, match=shop.last_day.isoformat()) as failed:
            backfill(settings, HISTORY_STAGES, span, chunk_days=CHUNK)
    finally:
        hidden.rename(late)
    assert isinstance(failed.value.cause, InputError)
    for table in ALL_TABLES:
        if table_version(spark, settings, table) >= 0 and C.DT in table.column_names:
            assert days_in(spark, settings, table) <= first_chunk, f"{table.name}: a later day"
    assert days_in(spark, settings, STAGE_RUNS) == first_chunk

    # Kills (SIGKILL) of the resumed range in its second chunk, each run resuming the last.
    events = Path(settings.warehouse) / RAW_EVENTS.relative_path
    later = sorted(set(span.days) - first_chunk)
    kills = (  # (point, what the warehouse holds after the kill)
        (f"mid_write:{RAW_EVENTS.name}", "the chunk's raw events: files written, no commit"),
        ("committed:clean.events", "ingest done; clean's first table committed, not the rest"),
        ("committed:features.user_item_daily", "ingest, clean done; aggregate half-committed"),
    )
    environ = recsys_environ(tmp_path, **shop_inputs(shop))
    for point, state in kills:
        killed_at(point, environ, *range_args(span), "--resume")
        rows = readable(spark, settings)  # every table reads, whatever the kill left
        print(f"killed at {point}: {state}; {rows[RAW_EVENTS.name]} raw events")
        assert days_in(spark, settings, STAGE_RUNS) == first_chunk  # the chunk not on record
        if point.startswith("mid_write"):
            assert days_in(spark, settings, RAW_EVENTS) == first_chunk
            assert any((events / f"{C.DT}={d}").glob("*.parquet") for d in later)  # orphans
        # The dead run's claims stay behind; they lapse at once on its host, so the next
        # run takes them over.
    seconds = backfill(settings, HISTORY_STAGES, span, chunk_days=CHUNK, resume=True)
    assert {d for d, _ in seconds} == set(later)  # done days are skipped
    assert_same_tables(spark, one_by_one, settings)
