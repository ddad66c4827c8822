"""Whole nights on event logs of other layouts, each described by a source file and no code:
the REES46 layout (one multi-day file, ISO times, category and price on the rows, a removal
from the cart now and then) with the shipped profile, and a headerless log of daily gzip
files with epoch seconds and its own event names, with a source file the test writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.cli import backfill, run_days
from recsys_lib.dates import DayRange
from recsys_lib.devtools.generator import REES46_COLUMNS, TAOBAO_COLUMNS, generate_shop
from recsys_lib.pipeline import HISTORY_STAGES, NIGHTLY
from recsys_lib.warehouse.storage import read_table
from recsys_lib.warehouse.tables import CLEAN_ITEMS
from tests.conftest import make_settings
from tests.integration.helpers import (
    SMALL_MODELS,
    assert_no_raw_user_ids,
    assert_recommendations_sound,
    assert_reconciled,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAYS = 5
MY_SHOP = """\
# A shop of our own: no header, epoch seconds, its own event names, one gzip file a day.
header: false
names: [user_id, item_id, category_id, behavior_type, timestamp]
columns: {user: user_id, item: item_id, category: category_id, event: behavior_type,
          timestamp: timestamp}
event_types: {pv: view, cart: cart, buy: purchase}
drop_events: [fav]
daily_files: "UserBehavior-{date:%Y%m%d}.csv"
timestamp: {unit: s}
"""


def dropped_per_day(frame: pd.DataFrame, time: pd.Series, name: str) -> dict[dt.date, int]:
    """Rows of the dropped event name per UTC day, counted from the files with pandas."""
    days = time[frame.iloc[:, 0].notna() & (frame.event == name)].dt.date
    return {d: int(n) for d, n in days.value_counts().items()}


def run_shop(spark, tmp_path: Path, fmt: str, source: str) -> tuple:
    shop = generate_shop(tmp_path / "shop", "default", scale=0.1, days=DAYS, format=fmt)
    settings = make_settings(
        tmp_path,
        INPUT__SOURCE=source,
        INPUT__EVENTS_PATH=str(shop.out_dir / shop.events_path),
        INPUT__ITEM_PROPERTIES_PATH="",
        INPUT__CATEGORY_TREE_PATH="",
        **{k.removeprefix("RECSYS__"): v for k, v in SMALL_MODELS.items()},
    )
    history = DayRange(shop.first_day, shop.last_day - dt.timedelta(days=1))
    backfill(settings, HISTORY_STAGES, history)
    run_days(settings, NIGHTLY, [shop.last_day])  # one whole night, every stage
    return shop, settings


def assert_the_night(spark, settings, shop, dropped: dict[dt.date, int], name: str) -> None:
    for day in DayRange(shop.first_day, shop.last_day).days:
        checks = assert_reconciled(spark, settings, day)
        assert checks[f"dropped_rows.{name}"] == dropped.get(day, 0), day
        assert checks["rejected_share"] < 0.02
    assert sum(dropped.values()) > 0
    assert_recommendations_sound(spark, settings, shop.last_day, settings.recommend.top_k)
    assert_no_raw_user_ids(spark, settings)
    items = read_table(spark, settings, CLEAN_ITEMS).filter(F.col(C.DT) == shop.last_day)
    described = items.filter(F.col(C.CATEGORY_SOURCE) == C.SOURCE_CATALOGUE)
    # Categories come from the event rows; without a tree each is a top-level one.
    assert described.count() > 0.8 * items.count()
    assert described.filter(F.col(C.TOP_CATEGORY_ID) != F.col(C.CATEGORY_ID)).count() == 0
    assert items.filter(F.col(C.CATEGORY_SOURCE) == C.SOURCE_PREDICTED).count() > 0


def test_a_rees46_log_runs_a_night_with_its_profile(spark, tmp_path: Path) -> None:
    shop, settings = run_shop(spark, tmp_path, "rees46", "rees46")
    frame = pd.read_csv(shop.out_dir / "events.csv", dtype=str, keep_default_na=False)
    assert tuple(frame.columns) == REES46_COLUMNS
    time = pd.to_datetime(frame.event_time, format="%Y-%m-%d %H:%M:%S UTC", errors="coerce")
    events = frame.rename(columns={"event_type": "event"})
    assert_the_night(
        spark, settings, shop, dropped_per_day(events, time, "remove_from_cart"), "remove_from_cart"
    )
    items = read_table(spark, settings, CLEAN_ITEMS).filter(F.col(C.DT) == shop.last_day)
    assert items.filter(F.col(C.PRICE).isNotNull()).count() > 0.8 * items.count()
    assert items.agg(F.min(C.CATEGORY_ID)).first()[0] > 2 * 10**18  # 19-digit ids


def test_a_headerless_log_in_seconds_runs_a_night_with_a_source_file(spark, tmp_path: Path) -> None:
    source = tmp_path / "myshop.yaml"
    source.write_text(MY_SHOP)
    shop, settings = run_shop(spark, tmp_path, "taobao", str(source))
    files = sorted((shop.out_dir / "events").glob("UserBehavior-*.csv.gz"))
    frame = pd.concat(
        [pd.read_csv(f, header=None, names=TAOBAO_COLUMNS, dtype=str) for f in files]
    ).rename(columns={"behavior_type": "event"})
    seconds = pd.to_numeric(frame.timestamp, errors="coerce")
    time = pd.to_datetime(seconds, unit="s", errors="coerce")
    assert_the_night(spark, settings, shop, dropped_per_day(frame, time, "fav"), "fav")
