import datetime as dt
import gzip
from pathlib import Path

import pytest

from recsys_lib import constants as C
from recsys_lib.io.retailrocket import InputError, read_retailrocket_events
from tests.conftest import RR_SAMPLE

HEADER = ",".join(C.RR_EVENT_COLUMNS)
MS = 1433203200000  # 2015-06-02T00:00:00Z


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def test_multi_day_file_is_sliced_to_the_utc_day(spark, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        [
            f"{MS - 1},1,view,10,",
            f"{MS},2,view,11,",
            f"{MS + 86_399_999},3,view,12,",
            f"{MS + 86_400_000},4,view,13,",
            "garbage,5,view,14,",
        ],
    )
    rows = read_retailrocket_events(spark, str(f), dt.date(2015, 6, 2)).collect()
    assert sorted(r[C.RR_VISITOR_ID] for r in rows) == ["2", "3"]
    assert all(r[C.SOURCE_FILE].endswith("events.csv") for r in rows)


def test_daily_directory_takes_the_whole_file(spark, tmp_path: Path) -> None:
    write(tmp_path / "events_2015-06-02.csv", [f"{MS},1,view,10,", f"{MS - 5},2,view,10,"])
    write(tmp_path / "events_2015-06-03.csv", [f"{MS + 86_400_000},3,view,10,"])
    rows = read_retailrocket_events(spark, str(tmp_path), dt.date(2015, 6, 2)).collect()
    assert sorted(r[C.RR_VISITOR_ID] for r in rows) == ["1", "2"]  # late row kept for clean


def test_gzip_daily_file(spark, tmp_path: Path) -> None:
    with gzip.open(tmp_path / "events_2015-06-02.csv.gz", "wt") as fh:
        fh.write(f"{HEADER}\n{MS},1,view,10,\n")
    assert read_retailrocket_events(spark, str(tmp_path), dt.date(2015, 6, 2)).count() == 1


def test_missing_input_names_path_and_date(spark, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"2015-06-02.*events_2015-06-02\.csv"):
        read_retailrocket_events(spark, str(tmp_path), dt.date(2015, 6, 2))
    with pytest.raises(InputError, match=r"2015-06-02.*nowhere\.csv does not exist"):
        read_retailrocket_events(spark, str(tmp_path / "nowhere.csv"), dt.date(2015, 6, 2))


def test_empty_day_and_changed_header_fail(spark, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", [f"{MS},1,view,10,"])
    with pytest.raises(InputError, match="no events for 2015-06-05"):
        read_retailrocket_events(spark, str(f), dt.date(2015, 6, 5))
    (tmp_path / "changed.csv").write_text("ts,user,event,item\n1,2,view,3\n")
    with pytest.raises(InputError, match="unexpected header"):
        read_retailrocket_events(spark, str(tmp_path / "changed.csv"), dt.date(2015, 6, 2))


def test_real_sample_day_matches_a_plain_count(spark) -> None:
    day = dt.date(2015, 5, 5)
    expected = 0
    with gzip.open(RR_SAMPLE, "rt") as fh:
        next(fh)
        for line in fh:
            ts = int(line.split(",")[0])
            expected += dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date() == day
    assert read_retailrocket_events(spark, str(RR_SAMPLE), day).count() == expected == 67
