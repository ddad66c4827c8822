import dataclasses
import datetime as dt

import pytest
from pyspark.sql import functions as F

from recsys_lib.config import ConfigError, TimestampSettings
from recsys_lib.io.timestamps import kind_of, parse_time, plausible, timestamp_hint

MS = TimestampSettings()


@pytest.mark.parametrize(
    ("unit", "text", "expected"),
    [
        ("ms", "1433203200123", dt.datetime(2015, 6, 2, 0, 0, 0, 123000)),
        ("ms", " 1433203200000 ", dt.datetime(2015, 6, 2)),
        ("s", "1433203200", dt.datetime(2015, 6, 2)),
        ("s", "1433203200.5", dt.datetime(2015, 6, 2, 0, 0, 0, 500000)),
        ("us", "1433203200000001", dt.datetime(2015, 6, 2, 0, 0, 0, 1)),
        ("ns", "1433203200000001000", dt.datetime(2015, 6, 2, 0, 0, 0, 1)),
        ("iso", "2015-06-02 00:00:00 UTC", dt.datetime(2015, 6, 2)),
        ("iso", "2015-06-02T02:00:00+02:00", dt.datetime(2015, 6, 2)),
        ("iso", "2015-06-02T00:00:00Z", dt.datetime(2015, 6, 2)),
        ("ms", "not-a-time", None),
        ("ms", "99999999999999999999999", None),
        ("iso", "1433203200000", None),
        ("iso", "2015", None),
        ("s", "", None),
    ],
)
def test_parse_time(spark, unit: str, text: str, expected: dt.datetime | None) -> None:
    settings = dataclasses.replace(MS, unit=unit)
    frame = spark.createDataFrame([(text,)], "t string")
    assert frame.select(parse_time(F.col("t"), settings)).first()[0] == expected


def test_a_pattern_and_a_zone(spark) -> None:
    settings = TimestampSettings(unit="pattern", format="dd/MM/yyyy HH:mm", timezone="Asia/Tokyo")
    frame = spark.createDataFrame([("02/06/2015 09:00",)], "t string")
    assert frame.select(parse_time(F.col("t"), settings)).first()[0] == dt.datetime(2015, 6, 2)


def test_plausible_bounds(spark) -> None:
    frame = spark.createDataFrame(
        [(dt.datetime(1970, 1, 17),), (dt.datetime(2015, 6, 2),), (dt.datetime(2100, 1, 1),)],
        "t timestamp",
    )
    assert [r[0] for r in frame.select(plausible(F.col("t"), MS)).collect()] == [
        False,
        True,
        False,
    ]


def test_what_timestamps_look_like() -> None:
    assert [kind_of(t) for t in ("1511544070", "1433203200000", "2019-10-01 00:00", "x")] == [
        "s",
        "ms",
        "iso",
        "other",
    ]
    hint = timestamp_hint(["1511544070", "1511544071"], MS)
    assert hint == (
        "timestamps look like epoch seconds (e.g. '1511544070'), not epoch milliseconds: "
        "set input.timestamp.unit: s"
    )
    assert timestamp_hint(["1433203200000"], MS) is None
    assert "no known unit" in timestamp_hint(["garbage"], MS)


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ConfigError, match="unit: 'hours' is not one of"):
        TimestampSettings(unit="hours")
    with pytest.raises(ConfigError, match="unit pattern needs a datetime pattern"):
        TimestampSettings(unit="pattern")
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        TimestampSettings(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="earliest must be before latest"):
        TimestampSettings(earliest="2030-01-01", latest="2020-01-01")
