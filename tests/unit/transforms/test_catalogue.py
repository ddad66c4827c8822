"""Tests of the catalogue: readers (recsys_lib.io.catalogue), category paths and the item
snapshot (recsys_lib.transforms.catalogue), and the ingest of raw.items."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.dates import DayRange
from recsys_lib.io.catalogue import (
    TREE_CATEGORY_ID,
    TREE_PARENT_ID,
    read_category_tree,
    read_item_properties,
)
from recsys_lib.io.files import InputError
from recsys_lib.stages.ingest import ingest
from recsys_lib.transforms.catalogue import (
    DEPTH,
    IS_LEAF,
    PATH,
    categories_frame,
    category_paths,
    item_snapshot,
    parse_available,
    parse_price,
    unusable_property_rows,
)
from recsys_lib.warehouse import storage
from recsys_lib.warehouse.tables import CLEAN_ITEMS, RAW_EVENTS, RAW_ITEMS
from tests.conftest import SHARED_DATA, make_settings

REAL_TREE = SHARED_DATA / "retailrocket" / "category_tree.csv.gz"
HEADER = ",".join(C.RR_ITEM_PROPERTY_COLUMNS)
DAY = dt.date(2015, 6, 2)
MS = 1433203200000  # 2015-06-02T00:00:00Z
DAY_MS = 86_400_000


def tree(*pairs: tuple[int, int | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            TREE_CATEGORY_ID: pd.Series([c for c, _ in pairs], dtype="int64"),
            TREE_PARENT_ID: pd.array([p for _, p in pairs], dtype="Int64"),
        }
    )


# 1 > 2 > 3 and 6 are complete; 4 has a parent (99) that is not in the tree; 5 is under 4.
# Children come before their parents, so the walk has to go up before it can reuse a path.
TREE = tree((5, 4), (3, 2), (4, 99), (2, 1), (1, None), (6, None))


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    text = "\n".join([header, *lines]) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


# --- category tree ---------------------------------------------------------------------------


def test_category_paths_roots_chains_and_missing_parents() -> None:
    paths = category_paths(TREE).set_index(C.CATEGORY_ID)
    assert list(paths.index) == [5, 3, 4, 2, 1, 6]
    assert paths[PATH].to_dict() == {5: [4, 5], 3: [1, 2, 3], 4: [4], 2: [1, 2], 1: [1], 6: [6]}
    tops = paths[C.TOP_CATEGORY_ID]
    assert str(tops.dtype) == "Int64"
    assert tops.isna().to_dict() == {5: True, 3: False, 4: True, 2: False, 1: False, 6: False}
    assert tops.dropna().astype(int).to_dict() == {3: 1, 2: 1, 1: 1, 6: 6}
    assert paths[DEPTH].to_dict() == {5: 1, 3: 2, 4: 0, 2: 1, 1: 0, 6: 0}
    assert paths[IS_LEAF].to_dict() == {5: True, 3: True, 4: False, 2: False, 1: False, 6: True}


def test_a_cycle_names_the_category() -> None:
    with pytest.raises(InputError, match=r"category 7 form a cycle \(7 -> 8 -> 7\)"):
        category_paths(tree((1, None), (7, 8), (8, 7)))
    with pytest.raises(InputError, match=r"category 2 form a cycle \(3 -> 3\)"):
        category_paths(tree((2, 3), (3, 3)))


def test_categories_frame_is_the_spark_version(spark) -> None:
    frame = categories_frame(spark, TREE)
    assert frame.columns == [
        C.CATEGORY_ID,
        C.CATEGORY_PATH,
        C.TOP_CATEGORY_ID,
        C.CATEGORY_DEPTH,
        IS_LEAF,
    ]
    rows = {r[0]: tuple(r)[1:] for r in frame.collect()}
    assert rows == {
        5: ([4, 5], None, 1, True),
        3: ([1, 2, 3], 1, 2, True),
        4: ([4], None, 0, False),
        2: ([1, 2], 1, 1, False),
        1: ([1], 1, 0, False),
        6: ([6], 6, 0, True),
    }
    assert categories_frame(spark, tree()).count() == 0


def test_read_category_tree(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", ["1,", "2,1", " 3 , 2 "], "categoryid,parentid")
    t = read_category_tree(str(f))
    assert list(t.columns) == [TREE_CATEGORY_ID, TREE_PARENT_ID]
    assert (str(t[TREE_CATEGORY_ID].dtype), str(t[TREE_PARENT_ID].dtype)) == ("int64", "Int64")
    assert t[TREE_CATEGORY_ID].tolist() == [1, 2, 3]
    assert t[TREE_PARENT_ID].isna().tolist() == [True, False, False]
    assert t[TREE_PARENT_ID].dropna().tolist() == [1, 2]


def test_read_category_tree_refuses_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist \(.*nowhere\.csv\)"):
        read_category_tree(str(tmp_path / "nowhere.csv"))
    bad = write(tmp_path / "h.csv", ["1,"], "id,parent")
    with pytest.raises(InputError, match=r"unexpected header \['id', 'parent'\].*h\.csv"):
        read_category_tree(str(bad))
    twice = write(tmp_path / "d.csv", ["1,", "2,1", "2,"], "categoryid,parentid")
    with pytest.raises(InputError, match=r"1 duplicate category ids, e\.g\. \[2\] \(.*d\.csv\)"):
        read_category_tree(str(twice))
    text = write(tmp_path / "x.csv", ["1,", "a,1"], "categoryid,parentid")
    with pytest.raises(InputError, match=r"1 rows .* line 3.*x\.csv"):
        read_category_tree(str(text))
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_category_tree(str(tmp_path / "e.csv"))


@pytest.mark.skipif(not REAL_TREE.is_file(), reason=f"real category tree not at {REAL_TREE}")
def test_the_real_retailrocket_tree() -> None:
    t = read_category_tree(str(REAL_TREE))
    assert len(t) == 1_669 and t[TREE_PARENT_ID].isna().sum() == 25
    paths = category_paths(t)
    assert paths[C.TOP_CATEGORY_ID].notna().all()  # no missing parent in the real tree
    assert paths[DEPTH].value_counts().sort_index().to_dict() == {
        0: 25,
        1: 174,
        2: 702,
        3: 665,
        4: 90,
        5: 13,
    }
    assert paths[IS_LEAF].sum() == 1_307
    assert (paths[PATH].map(len) == paths[DEPTH] + 1).all()
    assert (paths[PATH].map(lambda p: p[0]) == paths[C.TOP_CATEGORY_ID]).all()


# --- item properties reader ------------------------------------------------------------------


def test_a_file_is_sliced_to_the_utc_day(spark, tmp_path: Path, caplog) -> None:
    f = write(
        tmp_path / "item_properties.csv",
        [
            f"{MS - 1},1,790,n1.000",
            f"{MS},2,categoryid,3",
            f"{MS + DAY_MS - 1},3,available,1",
            f"{MS + DAY_MS},4,790,n2.000",
            "garbage,5,790,n3.000",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="recsys_lib.io.catalogue"):
        frame = read_item_properties(spark, str(f), DAY)
    assert frame.columns == [*C.RR_ITEM_PROPERTY_COLUMNS, C.SOURCE_FILE, C.DT]
    rows = frame.collect()
    assert sorted(r[C.RR_ITEM_ID] for r in rows) == ["2", "3"]
    assert all(r[C.SOURCE_FILE].endswith("item_properties.csv") for r in rows)
    assert "1 item property rows have no parseable timestamp" in caplog.text


def test_a_day_without_rows_is_normal(spark, tmp_path: Path) -> None:
    f = write(tmp_path / "item_properties.csv", [f"{MS},1,790,n1.000"])
    assert read_item_properties(spark, str(f), DAY + dt.timedelta(days=3)).count() == 0


def test_a_directory_of_part_files(spark, tmp_path: Path) -> None:
    write(tmp_path / "item_properties_part1.csv", [f"{MS},1,790,n1.000", f"{MS - 1},9,790,n1"])
    write(tmp_path / "item_properties_part2.csv.gz", [f"{MS + 5},2,available,0"])
    (tmp_path / "notes.csv").write_text("not,a,catalogue\n")
    rows = read_item_properties(spark, str(tmp_path), DAY).collect()
    assert sorted((r[C.RR_ITEM_ID], Path(r[C.SOURCE_FILE]).name) for r in rows) == [
        ("1", "item_properties_part1.csv"),
        ("2", "item_properties_part2.csv.gz"),
    ]


def test_bad_header_and_missing_input_fail(spark, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist \(.*nowhere\.csv\)"):
        read_item_properties(spark, str(tmp_path / "nowhere.csv"), DAY)
    with pytest.raises(InputError, match=r"no item_properties\*\.csv"):
        read_item_properties(spark, str(tmp_path), DAY)
    write(tmp_path / "item_properties_part1.csv", [f"{MS},1,790,n1.000"])
    write(tmp_path / "item_properties_part2.csv", [f"{MS},1,790"], "ts,item,property")
    with pytest.raises(InputError, match=r"unexpected header.*item_properties_part2\.csv"):
        read_item_properties(spark, str(tmp_path), DAY)


# --- parsing and the item snapshot -----------------------------------------------------------


def test_parse_price_and_availability(spark) -> None:
    texts = ["n5280.000", " n0.500 ", "5280", "n12", "n-1.000", "n1e5", "abc", "", None]
    texts += ["n999999999999.999", "n1000000000000.000"]
    frame = spark.createDataFrame([(t,) for t in texts], "v string")
    prices = [r[0] for r in frame.select(parse_price(F.col("v"))).collect()]
    assert prices[:9] == [5280.0, 0.5, 5280.0, 12.0, None, None, None, None, None]
    assert prices[9:] == [999999999999.999, None]
    flags = spark.createDataFrame([(t,) for t in ["1", " 0", "yes", "", None]], "v string")
    assert [r[0] for r in flags.select(parse_available(F.col("v"))).collect()] == [
        True,
        False,
        None,
        None,
        None,
    ]


def d(days: int) -> dt.date:
    return DAY + dt.timedelta(days=days)


def at(days: int, ms: int = 0) -> str:
    return str(MS + days * DAY_MS + ms)


# (dt, timestamp, itemid, property, value): raw.items rows of several partitions.
PROPERTIES = [
    (d(-7), at(-7), "10", "categoryid", "3"),
    (d(-7), at(-7), "10", "790", "n100.000"),
    (d(-7), at(-7), "10", "available", "1"),
    (d(0), at(0, 1000), "10", "790", "n120.000"),
    (d(0), at(0, DAY_MS - 1), "10", "available", "0"),  # last millisecond of the day
    (d(0), at(1), "10", "790", "n999.000"),  # stamped tomorrow, in today's partition
    (d(1), at(1, 5), "10", "categoryid", "6"),  # tomorrow's partition
    (d(-1), at(-1), "11", "categoryid", "5"),
    (d(-1), at(-1), "11", "790", "n50.000"),
    (d(0), at(0, 7), "11", "790", "garbage"),  # the latest price does not parse
    (d(0), at(0, 7), "11", "available", "yes"),
    (d(0), at(0, 9), "12", "categoryid", "777"),  # not in the tree
    (d(-2), at(-2), "13", "888", "123 456"),  # listed, but no category, price or stock
    (d(1), at(1), "15", "categoryid", "3"),  # only known tomorrow
    (d(0), at(0), "x1", "categoryid", "3"),  # item id does not parse
    (d(0), "not-a-time", "16", "categoryid", "3"),
    (d(0), at(0, 3), "17", "categoryid", "3"),  # same time, two values: the greater wins
    (d(0), at(0, 3), "17", "categoryid", "6"),
]
FIRST_EVENT_DAYS = [(11, d(-3)), (13, d(-1)), (14, d(0)), (15, d(1))]


@pytest.fixture()
def snapshot_inputs(spark):
    properties = spark.createDataFrame(
        [(*p, "f.csv") for p in PROPERTIES],
        f"dt date, timestamp string, itemid string, property string, value string, "
        f"{C.SOURCE_FILE} string",
    )
    events = spark.createDataFrame(FIRST_EVENT_DAYS, f"{C.ITEM_ID} long, {C.FIRST_SEEN} date")
    return properties, events, categories_frame(spark, TREE)


def snapshot(inputs, run_date: dt.date) -> dict[int, dict]:
    return {r[C.ITEM_ID]: r.asDict() for r in item_snapshot(*inputs, run_date).collect()}


def ts(ms: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).replace(tzinfo=None)


def test_item_snapshot_values_as_of_the_run_date(snapshot_inputs) -> None:
    frame = item_snapshot(*snapshot_inputs, DAY)
    assert frame.columns == CLEAN_ITEMS.column_names
    assert [f.dataType for f in frame.schema] == [c.dtype for c in CLEAN_ITEMS.columns]
    items = {r[C.ITEM_ID]: r.asDict() for r in frame.collect()}
    assert sorted(items) == [10, 11, 12, 13, 14, 17]
    assert {r[C.DT] for r in items.values()} == {DAY}
    assert items[10] == {
        C.DT: DAY,
        C.ITEM_ID: 10,
        C.CATEGORY_ID: 3,
        C.CATEGORY_PATH: [1, 2, 3],
        C.TOP_CATEGORY_ID: 1,
        C.CATEGORY_DEPTH: 2,
        C.CATEGORY_SOURCE: C.SOURCE_CATALOGUE,
        C.CATEGORY_CONFIDENCE: 1.0,
        C.PRICE: 120.0,
        C.AVAILABLE: False,
        C.FIRST_SEEN: d(-7),
        C.PROPERTIES_UPDATED_AT: ts(at(0, DAY_MS - 1)),
    }
    eleven = items[11]
    assert (eleven[C.CATEGORY_PATH], eleven[C.TOP_CATEGORY_ID], eleven[C.CATEGORY_DEPTH]) == (
        [4, 5],
        None,
        1,
    )
    assert (eleven[C.PRICE], eleven[C.AVAILABLE]) == (None, None)
    assert eleven[C.FIRST_SEEN] == d(-3)  # the event came before the catalogue row
    assert eleven[C.PROPERTIES_UPDATED_AT] == ts(at(0, 7))
    twelve = items[12]
    assert (twelve[C.CATEGORY_ID], twelve[C.CATEGORY_PATH], twelve[C.CATEGORY_SOURCE]) == (
        777,
        [777],
        C.SOURCE_CATALOGUE,
    )
    assert (twelve[C.TOP_CATEGORY_ID], twelve[C.CATEGORY_DEPTH]) == (None, None)
    assert items[17][C.CATEGORY_ID] == 6


def test_items_without_a_category_are_left_for_completion(snapshot_inputs) -> None:
    items = snapshot(snapshot_inputs, DAY)
    empty = {
        C.CATEGORY_ID: None,
        C.CATEGORY_PATH: None,
        C.TOP_CATEGORY_ID: None,
        C.CATEGORY_DEPTH: None,
        C.CATEGORY_SOURCE: None,
        C.CATEGORY_CONFIDENCE: None,
        C.PRICE: None,
        C.AVAILABLE: None,
        C.PROPERTIES_UPDATED_AT: None,
    }
    only_events = items[14]
    assert {k: only_events[k] for k in empty} == empty
    assert only_events[C.FIRST_SEEN] == d(0)
    listed = items[13]
    assert {k: listed[k] for k in empty} == empty
    assert listed[C.FIRST_SEEN] == d(-2)  # the catalogue row came before the event


def test_an_earlier_run_date_sees_nothing_later(snapshot_inputs) -> None:
    items = snapshot(snapshot_inputs, d(-1))
    assert sorted(items) == [10, 11, 13]  # 12, 14, 15 and 17 appear later
    ten = items[10]
    assert (ten[C.PRICE], ten[C.AVAILABLE], ten[C.CATEGORY_ID]) == (100.0, True, 3)
    assert ten[C.PROPERTIES_UPDATED_AT] == ts(at(-7))
    assert (items[11][C.PRICE], items[11][C.FIRST_SEEN]) == (50.0, d(-3))
    assert items[13][C.FIRST_SEEN] == d(-2)


def test_a_later_run_date_sees_the_change(snapshot_inputs) -> None:
    items = snapshot(snapshot_inputs, d(1))
    assert (items[10][C.CATEGORY_ID], items[10][C.CATEGORY_PATH]) == (6, [6])
    assert items[10][C.PRICE] == 999.0
    assert items[15][C.FIRST_SEEN] == d(1)


def test_unusable_rows_are_returned_for_counting(snapshot_inputs) -> None:
    properties = snapshot_inputs[0]
    rows = unusable_property_rows(properties, DAY).collect()
    assert sorted((r[C.RR_ITEM_ID], r[C.RR_TIMESTAMP]) for r in rows) == [
        ("16", "not-a-time"),
        ("x1", at(0)),
    ]


# --- ingest ----------------------------------------------------------------------------------


def test_ingest_writes_raw_items_idempotently(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events"
    events.mkdir()
    for day in (d(0), d(1)):
        write(
            events / f"events_{day}.csv",
            [f"{at((day - DAY).days, 10)},1,view,10,"],
            ",".join(C.RR_EVENT_COLUMNS),
        )
    catalogue = write(
        tmp_path / "item_properties.csv",
        [f"{at(0, 1)},10,790,n5.000", f"{at(0, 2)},11,available,1", f"{at(2)},10,790,n6.000"],
    )
    settings = make_settings(
        tmp_path, input__events_path=str(events), input__item_properties_path=str(catalogue)
    )
    monkeypatch.setattr(storage, "ALL_TABLES", (RAW_EVENTS, RAW_ITEMS))  # the stage's tables
    storage.create_missing_tables(spark, settings)

    def raw_items(day: dt.date) -> list[tuple[str, str]]:
        rows = storage.read_partition(spark, settings, RAW_ITEMS, day).collect()
        assert all(r[C.INGESTED_AT] is not None and r[C.SOURCE_FILE] for r in rows)
        return sorted((r[C.RR_ITEM_ID], r[C.RR_VALUE]) for r in rows)

    def ingest_events(settings, day: dt.date) -> dict[str, float]:
        return ingest(spark, settings, DayRange.of(day))[day]

    assert ingest_events(settings, DAY) == {"raw_rows": 1.0, "raw_item_rows": 2.0}
    assert raw_items(DAY) == [("10", "n5.000"), ("11", "1")]
    assert ingest_events(settings, d(1))["raw_item_rows"] == 0.0
    assert raw_items(d(1)) == []

    write(catalogue, [f"{at(0, 1)},10,790,n5.000"])  # the day's input shrank: rerun it
    assert ingest_events(settings, DAY)["raw_item_rows"] == 1.0
    assert raw_items(DAY) == [("10", "n5.000")]

    without = make_settings(
        tmp_path, input__events_path=str(events), input__item_properties_path=""
    )
    assert ingest_events(without, DAY) == {"raw_rows": 1.0}
    assert raw_items(DAY) == [("10", "n5.000")]  # untouched
