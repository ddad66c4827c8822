"""The DAG's input sensor: a day's input is there, missing, or still being copied; local and
on S3 (moto's in-process S3)."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from recsys_lib.io.arrival import input_ready, missing_input
from tests.conftest import make_settings

DAY = dt.date(2026, 10, 14)
LINES = b"timestamp,visitorid,event,itemid,transactionid\n" + b"1791936000000,1,view,2,\n" * 200


def test_a_local_day_arrives_when_its_file_is_whole(tmp_path: Path, monkeypatch) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    settings = make_settings(tmp_path, input__events_path=str(landing))
    assert missing_input(settings, DAY) == (
        f"no input for {DAY}: expected events_{DAY}.csv[.gz|.bz2] ({landing})"
    )
    # Half of a gzip file: still being copied, so not there yet.
    whole = gzip.compress(LINES)
    target = landing / f"events_{DAY}.csv.gz"
    target.write_bytes(whole[: len(whole) // 2])
    assert "truncated" in (missing_input(settings, DAY) or "")
    target.write_bytes(whole)
    assert missing_input(settings, DAY) is None

    monkeypatch.setattr("recsys_lib.io.arrival.load_settings", lambda: settings)
    assert input_ready(str(DAY)) is True
    assert input_ready(str(DAY + dt.timedelta(days=1))) is False


def test_an_s3_day_is_listed_without_spark(tmp_path: Path, local_s3) -> None:
    s3 = local_s3
    s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="shop/events/events_2026-10-13.csv", Body=LINES)
    settings = make_settings(tmp_path, input__events_path="s3a://landing/shop/events")
    assert missing_input(settings, DAY) == (
        f"no input for {DAY}: expected events_{DAY}.csv[.gz|.bz2] (s3a://landing/shop/events)"
    )
    assert missing_input(settings, DAY - dt.timedelta(days=1)) is None
    s3.put_object(Bucket="landing", Key=f"shop/events/events_{DAY}.csv.gz", Body=b"")
    assert missing_input(settings, DAY) == (
        f"the file is empty (s3a://landing/shop/events/events_{DAY}.csv.gz)"
    )
    s3.put_object(Bucket="landing", Key=f"shop/events/events_{DAY}.csv.gz", Body=LINES)
    assert missing_input(settings, DAY) is None
