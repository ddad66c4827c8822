import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from recsys_lib import constants as C
from recsys_lib.dates import DayRange
from recsys_lib.io.events import load_events
from recsys_lib.io.files import InputError
from tests.conftest import RR_SAMPLE, make_settings

HEADER = "timestamp,visitorid,event,itemid,transactionid"
MS = 1433203200000  # 2015-06-02T00:00:00Z
DAY = dt.date(2015, 6, 2)
S = MS // 1000


def write(path: Path, lines: list[str], header: str | None = HEADER) -> Path:
    text = "\n".join(([header] if header is not None else []) + lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def load(spark, tmp_path: Path, events: Path, days=DAY, **overrides: str):
    settings = make_settings(tmp_path, INPUT__EVENTS_PATH=str(events), **overrides)
    return load_events(spark, settings, days)


def rows_of(raw) -> list[dict]:
    return [r.asDict() for r in raw.rows.orderBy(C.RAW_USER).collect()]


def test_multi_day_file_is_sliced_to_the_utc_day(spark, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        [
            f"{MS - 1},1,view,10,",
            f"{MS},2,view,11,",
            f"{MS + 86_399_999},3,view,12,",
            f"{MS + 86_400_000},4,view,13,",
        ],
    )
    raw = load(spark, tmp_path, f)
    assert [r[C.RAW_USER] for r in rows_of(raw)] == ["2", "3"]
    assert raw.rows_per_day == {DAY: 2}
    assert all(r[C.SOURCE_FILE].endswith("events.csv") for r in rows_of(raw))


def test_rows_without_a_usable_time_count_on_the_files_first_day(spark, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        [
            f"{MS - 86_400_000},1,view,10,",  # the file's first day: 2015-06-01
            f"{MS},2,view,11,",
            "garbage,3,view,12,",
            "1433203200,4,view,13,",  # seconds: January 1970, implausible
        ],
    )
    first = load(spark, tmp_path, f, days=DAY - dt.timedelta(days=1))
    assert sorted(r[C.RAW_USER] for r in rows_of(first)) == ["1", "3", "4"]
    assert first.rows_per_day == {DAY - dt.timedelta(days=1): 3}
    assert "2 rows have no ms time" in first.warnings[0]
    second = load(spark, tmp_path, f)
    assert [r[C.RAW_USER] for r in rows_of(second)] == ["2"]  # counted once, on the first day


def test_daily_files_take_the_whole_file_and_a_range_reads_once(spark, tmp_path: Path) -> None:
    write(tmp_path / "events_2015-06-02.csv", [f"{MS},1,view,10,", f"{MS - 5},2,view,10,"])
    write(tmp_path / "events_2015-06-03.csv.gz", [f"{MS + 86_400_000},3,view,10,"])
    raw = load(spark, tmp_path, tmp_path, days=DayRange(DAY, DAY + dt.timedelta(days=1)))
    assert [(r[C.RAW_USER], r[C.DT]) for r in rows_of(raw)] == [
        ("1", DAY),
        ("2", DAY),  # late row kept for clean to reject
        ("3", DAY + dt.timedelta(days=1)),
    ]
    assert raw.rows_per_day == {DAY: 2, DAY + dt.timedelta(days=1): 1}


def test_missing_input_names_path_and_date(spark, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no input for 2015-06-02: expected events_2015-06-02"):
        load(spark, tmp_path, tmp_path)
    with pytest.raises(InputError, match=r"2015-06-02: the path does not exist .*nowhere\.csv"):
        load(spark, tmp_path, tmp_path / "nowhere.csv")


def test_empty_day_and_changed_header_fail(spark, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", [f"{MS},1,view,10,"])
    with pytest.raises(InputError, match="no events for 2015-06-05"):
        load(spark, tmp_path, f, days=dt.date(2015, 6, 5))
    (tmp_path / "changed.csv").write_text("ts,user,event,item\n1,2,view,3\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['timestamp', 'visitorid'"):
        load(spark, tmp_path, tmp_path / "changed.csv")


def test_columns_map_by_name_whatever_their_order(spark, tmp_path: Path) -> None:
    write(
        tmp_path / "events_2015-06-02.csv",
        [f"10,view,1,{MS},"],
        "itemid,event,visitorid,timestamp,transactionid",
    )
    write(tmp_path / "events_2015-06-03.csv", [f"{MS + 86_400_000},2,view,11,"])
    raw = load(spark, tmp_path, tmp_path, days=DayRange(DAY, DAY + dt.timedelta(days=1)))
    got = [(r[C.RAW_USER], r[C.RAW_ITEM], r[C.RAW_EVENT]) for r in rows_of(raw)]
    assert got == [("1", "10", "view"), ("2", "11", "view")]


def test_field_counts_encoding_and_quotes(spark, tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_bytes(
        b"\xef\xbb\xbf"
        + HEADER.encode()
        + b"\n"  # a byte-order mark before the header
        + f"{MS},1,view,10,\n".encode()
        + f'{MS},2,view,"1,0",\n'.encode()  # a quoted separator is one field
        + f"{MS},3,view,10,,extra\n".encode()
        + f"{MS},4,view\n".encode()
        + f"{MS},5".encode()
        + b"\xff\xfe,view,10,\n"  # not UTF-8
        + b"\n"  # blank lines are not rows
    )
    errors = {r[C.RAW_USER][:1]: r[C.READ_ERROR] for r in rows_of(load(spark, tmp_path, f))}
    assert errors == {
        "1": None,
        "2": None,
        "3": C.TOO_MANY_FIELDS,
        "4": C.TOO_FEW_FIELDS,
        "5": C.BAD_ENCODING,
    }


def test_headerless_tsv_in_seconds_with_its_own_names(spark, tmp_path: Path) -> None:
    f = tmp_path / "log.tsv"
    f.write_text(f"u1\t10\tpv\t{S + 60}\nu2\t11\tbuy\t{S + 120}\n")
    raw = load(
        spark,
        tmp_path,
        f,
        INPUT__SOURCE="",
        INPUT__FORMAT="tsv",
        INPUT__HEADER="false",
        INPUT__NAMES="[uid, sku, act, ts]",
        INPUT__COLUMNS="{user: uid, item: sku, event: act, timestamp: ts}",
        INPUT__EVENT_TYPES="{pv: view, buy: purchase}",
        INPUT__TIMESTAMP__UNIT="s",
    )
    assert [(r[C.RAW_USER], r[C.RAW_TIMESTAMP], r[C.READ_ERROR]) for r in rows_of(raw)] == [
        ("u1", str(S + 60), None),
        ("u2", str(S + 120), None),
    ]


def test_daily_files_by_a_date_pattern_compressed(spark, tmp_path: Path) -> None:
    write(tmp_path / "UserBehavior-20150602.csv.gz", [f"1,10,7,pv,{S}"], header=None)
    raw = load(spark, tmp_path, tmp_path, INPUT__SOURCE="taobao")
    [row] = rows_of(raw)
    assert (row[C.RAW_USER], row[C.RAW_ITEM], row[C.RAW_CATEGORY], row[C.RAW_EVENT]) == (
        "1",
        "10",
        "7",
        "pv",
    )


def test_json_lines_keep_numbers_as_text_and_flag_bad_lines(spark, tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text(
        json.dumps({"t": MS, "u": "a", "e": "view", "i": 10, "extra": 1})
        + "\n{not json\n"
        + json.dumps({"t": MS, "u": "c", "e": "view"})
        + "\n"
    )
    raw = load(
        spark,
        tmp_path,
        f,
        INPUT__SOURCE="",
        INPUT__FORMAT="jsonl",
        INPUT__COLUMNS="{timestamp: t, user: u, event: e, item: i}",
        INPUT__EVENT_TYPES="{view: view}",
        INPUT__EXTRA_COLUMNS="ignore",
    )
    got = sorted((r[C.RAW_USER] or "", r[C.RAW_ITEM], r[C.READ_ERROR]) for r in rows_of(raw))
    assert got == [("", None, C.MALFORMED_JSON), ("a", "10", None), ("c", None, None)]
    assert "ignoring the column(s) ['extra']" in raw.warnings[0]


def test_parquet_parts_with_a_timestamp_type(spark, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2015-06-02 10:00:00", "2015-06-03 10:00:00"], utc=True),
            "who": ["a", "b"],
            "what": ["view", "view"],
            "item": [10, 11],
        }
    )
    for i in range(2):  # Spark reads timestamps in microseconds, not nanoseconds
        frame.iloc[i : i + 1].to_parquet(parts / f"part-{i}.parquet", coerce_timestamps="us")
    raw = load(
        spark,
        tmp_path,
        parts,
        INPUT__SOURCE="",
        INPUT__FORMAT="parquet",
        INPUT__LAYOUT="parts",
        INPUT__COLUMNS="{timestamp: when, user: who, event: what, item: item}",
        INPUT__EVENT_TYPES="{view: view}",
        INPUT__TIMESTAMP__UNIT="iso",
    )
    [row] = rows_of(raw)
    assert (row[C.RAW_USER], row[C.RAW_ITEM], row[C.DT]) == ("a", "10", DAY)
    assert row[C.RAW_TIMESTAMP].startswith("2015-06-02T10:00:00")


def test_real_sample_day_matches_a_plain_count(spark, tmp_path: Path) -> None:
    day = dt.date(2015, 5, 5)
    expected = 0
    with gzip.open(RR_SAMPLE, "rt") as fh:
        next(fh)
        for line in fh:
            ts = int(line.split(",")[0])
            expected += dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date() == day
    raw = load(spark, tmp_path, RR_SAMPLE, days=day)
    assert raw.rows.count() == raw.rows_per_day[day] == expected == 67
