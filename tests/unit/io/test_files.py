import bz2
import dataclasses
import datetime as dt
import gzip
from pathlib import Path

import pytest

from recsys_lib.config import load_settings
from recsys_lib.dates import DayRange
from recsys_lib.io.files import (
    InputError,
    check_file,
    daily_file,
    daily_name,
    input_files,
    split_line,
)
from tests.conftest import REPO

RR = load_settings("local", conf_dir=REPO / "conf", home=REPO, environ={}).input
LINES = b"timestamp,visitorid,event,itemid,transactionid\n" + b"1433203200000,1,view,2,\n" * 500


def test_a_good_file_of_each_compression_passes(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(LINES)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(LINES))
    (tmp_path / "a.csv.bz2").write_bytes(bz2.compress(LINES))
    for name in ("a.csv", "a.csv.gz", "a.csv.bz2"):
        check_file(tmp_path / name, RR)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("t.csv.gz", gzip.compress(LINES)[:-40], r"truncated gzip file"),
        ("c.csv.bz2", bz2.compress(LINES)[:20] + b"x" * 50, r"corrupt bzip2 file|truncated bzip2"),
        ("g.csv", gzip.compress(LINES), r"gzip-compressed, but its name does not end in \.gz"),
        ("n.csv.gz", LINES, r"named as gzip but it is not gzip-compressed"),
        ("b.csv", bytes(range(256)) * 8, r"a binary file, not csv text"),
        ("u.csv", "timestamp,visitorid\n".encode("utf-16"), r"UTF-16 text"),
    ],
)
def test_a_bad_file_is_named_with_its_problem(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=problem) as error:
        check_file(tmp_path / name, RR)
    assert error.value.path == str(tmp_path / name)
    assert str(error.value).endswith(f"({tmp_path / name})")


def test_missing_and_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        check_file(tmp_path / "x.csv", RR)
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        check_file(tmp_path / "d.csv", RR)
    parquet = dataclasses.replace(RR, format="parquet")
    (tmp_path / "p.parquet").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a Parquet file"):
        check_file(tmp_path / "p.parquet", parquet)


def test_daily_names_and_their_compressed_variants(tmp_path: Path) -> None:
    day = dt.date(2026, 10, 1)
    assert daily_name("events_{date}.csv", day) == "events_2026-10-01.csv"
    assert daily_name("UserBehavior-{date:%Y%m%d}.csv", day) == "UserBehavior-20261001.csv"
    (tmp_path / "events_2026-10-01.csv.gz").write_bytes(gzip.compress(LINES))
    assert daily_file(tmp_path, RR, day).name == "events_2026-10-01.csv.gz"
    with pytest.raises(InputError, match=r"no input for 2026-10-02: expected "):
        daily_file(tmp_path, RR, day + dt.timedelta(days=1))
    plain = dataclasses.replace(RR, compression="none")
    with pytest.raises(InputError, match=r"expected events_2026-10-01\.csv \("):
        daily_file(tmp_path, plain, day)


def test_layouts(tmp_path: Path) -> None:
    (tmp_path / "part-1.csv").write_bytes(LINES)
    (tmp_path / "part-0.csv").write_bytes(LINES)
    (tmp_path / "_SUCCESS").write_bytes(b"")
    parts = dataclasses.replace(RR, layout="parts", parts="*")
    found = input_files(parts, str(tmp_path), DayRange.of(dt.date(2015, 6, 2)))
    assert [Path(p).name for p in found.paths] == ["part-0.csv", "part-1.csv"]
    one = input_files(RR, str(tmp_path / "part-0.csv"), DayRange.of(dt.date(2015, 6, 2)))
    assert one.layout == "file"
    with pytest.raises(InputError, match="a remote input is listed through Spark"):
        input_files(RR, "s3a://bucket/events.csv", DayRange.of(dt.date(2015, 6, 2)))


def test_split_line_like_a_csv_reader() -> None:
    assert split_line('a,"b,c", d', RR) == ["a", "b,c", "d"]
    tsv = dataclasses.replace(RR, format="tsv", quote="")
    assert split_line('a\t"b\tc', tsv) == ["a", '"b', "c"]


def test_a_spark_read_failure_names_its_file() -> None:
    from recsys_lib.io.files import file_key, read_error

    text = (
        "An error occurred while calling o49.count.\n: org.apache.spark.SparkException: "
        "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file "
        "s3a://bucket/events/events_2026-10-01.csv.gz.  SQLSTATE: KD001\n\tat org.apache...\n"
        "Caused by: java.io.EOFException: Unexpected end of input stream\n\tat org.apache..."
    )
    error = read_error(RuntimeError(text))
    assert error is not None and error.path == "s3a://bucket/events/events_2026-10-01.csv.gz"
    assert str(error).startswith("Spark could not read the file (EOFException: Unexpected end")
    assert read_error(RuntimeError("something else")) is None
    assert file_key("file:/tmp/a%20b.csv") == "/tmp/a b.csv"
    assert file_key("s3a://bucket/k%2Bey.csv") == "s3a://bucket/k+ey.csv"
