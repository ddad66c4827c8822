"""A corpus of bad inputs: one day of the real RetailRocket sample, damaged one way per case,
run through ``ingest`` and ``clean`` in one shared warehouse (each case on a day of its own).

Each case states its exact outcome: the error (which stage, which message, and that the
stage wrote nothing for the day), or the rows rejected per reason and dropped per name, with
the day's counts reconciled. docs/inputs.md has the same table.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.cli import main
from recsys_lib.dates import DayRange
from recsys_lib.pipeline import StageError, run_stage_range
from recsys_lib.warehouse.storage import read_table
from recsys_lib.warehouse.tables import CLEAN_EVENTS, CLEAN_EVENTS_REJECTED, RAW_EVENTS
from tests.conftest import REPO, RR_SAMPLE, TEST_KEY, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLE_DAY = dt.date(2015, 5, 5)  # 67 rows of the real sample
FIRST_CASE_DAY = dt.date(2016, 1, 1)
HEADER = ",".join(["timestamp", "visitorid", "event", "itemid", "transactionid"])
DAY_MS = 86_400_000
K = 5  # rows damaged in a row-level case

Lines = list[str]


@dataclass(frozen=True)
class Case:
    """One kind of bad input and its exact outcome."""

    kind: str
    write: Callable[[Path, dt.date, Lines], None]  # writes the day's input into a directory
    error: str | None = None  # regex of the one-line failure
    stage: str = "ingest"  # the stage that fails
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    file: str = ""  # events_path below the case directory (default: the directory)


def name_of(day: dt.date) -> str:
    return f"events_{day.isoformat()}.csv"


def daily(text: Callable[[dt.date, Lines], str], suffix: str = "") -> Callable:
    def write(directory: Path, day: dt.date, lines: Lines) -> None:
        (directory / (name_of(day) + suffix)).write_text(text(day, lines))

    return write


def daily_bytes(data: Callable[[dt.date, Lines], bytes], suffix: str = "") -> Callable:
    def write(directory: Path, day: dt.date, lines: Lines) -> None:
        (directory / (name_of(day) + suffix)).write_bytes(data(day, lines))

    return write


def csv(lines: Lines, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def fields(line: str) -> list[str]:
    return line.split(",")


def damage(lines: Lines, change: Callable[[list[str]], list[str]], k: int = K) -> Lines:
    """The first ``k`` rows changed by ``change`` (applied to their fields)."""
    return [",".join(change(fields(x))) if i < k else x for i, x in enumerate(lines)]


def with_field(index: int, value: str) -> Callable[[list[str]], list[str]]:
    def change(f: list[str]) -> list[str]:
        return [*f[:index], value, *f[index + 1 :]]

    return change


def shifted_ms(f: list[str], days: int) -> list[str]:
    return [str(int(f[0]) + days * DAY_MS), *f[1:]]


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def bad_crc(data: bytes) -> bytes:
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


def reorder(lines: Lines) -> str:
    order = [3, 2, 1, 0, 4]
    head = fields(HEADER)
    return "\n".join(
        [",".join(head[i] for i in order)] + [",".join(fields(x)[i] for i in order) for x in lines]
    )


def multi_day(directory: Path, day: dt.date, lines: Lines) -> None:
    """One file of two days: the case day (with K unparseable times) and the day after."""
    today = damage(lines, with_field(0, "n/a"))
    tomorrow = [",".join(shifted_ms(fields(x), 1)) for x in lines]
    (directory / "events.csv").write_text(csv(today + tomorrow))


def encoded(day: dt.date, lines: Lines) -> bytes:
    rows = [x.encode() for x in lines]
    for i in range(K):  # ids that differ only in bytes that are not UTF-8
        f = fields(lines[i])
        rows[i] = (
            ",".join([f[0], "x"]).encode()
            + bytes([0xFF, 0xF0 + i])
            + ("," + ",".join(f[2:])).encode()
        )
    return (HEADER + "\n").encode() + b"\n".join(rows) + b"\n"


def jsonl(day: dt.date, lines: Lines) -> str:
    out = []
    for i, x in enumerate(lines):
        f = fields(x)
        record = dict(zip(fields(HEADER), f, strict=True))
        out.append("{broken" if i < K else json.dumps(record))
    return "\n".join(out) + "\n"


CASES = [
    Case("a clean day", daily(lambda d, x: csv(x))),
    Case("a missing file", lambda *_: None, r"no input for {day}: expected events_{day}\.csv"),
    Case("an empty file", daily(lambda d, x: ""), r"the file is empty \(no header line\)"),
    Case("a header and no rows", daily(lambda d, x: csv([])), r"no events for {day}: refusing"),
    Case(
        "a truncated .csv.gz",
        daily_bytes(lambda d, x: gz(csv(x))[:-30], ".gz"),
        r"truncated gzip file: it ends before its last block",
    ),
    Case(
        "a corrupt .csv.gz (bad checksum)",
        daily_bytes(lambda d, x: bad_crc(gz(csv(x))), ".gz"),
        r"corrupt gzip file: CRC check failed",
    ),
    Case(
        "a corrupt .csv.bz2",
        daily_bytes(lambda d, x: bz2.compress(csv(x).encode())[:30] + b"\0" * 40, ".bz2"),
        r"(corrupt|truncated) bzip2 file",
    ),
    Case(
        "gzip data named .csv",
        daily_bytes(lambda d, x: gz(csv(x))),
        r"gzip-compressed, but its name does not end in \.gz",
    ),
    Case(
        "a binary file",
        daily_bytes(lambda d, x: bytes(range(256)) * 16),
        r"a binary file, not csv text",
    ),
    Case(
        "UTF-16 text",
        daily_bytes(lambda d, x: csv(x).encode("utf-16")),
        r"UTF-16 text; input.encoding reads utf-8 or iso-8859-1",
    ),
    Case(
        "a directory where the file should be",
        lambda directory, day, x: (directory / name_of(day)).mkdir(),
        r"not a regular file",
    ),
    Case(
        "a missing column",
        daily(lambda d, x: csv([x_.rsplit(",", 1)[0] for x_ in x], HEADER.rsplit(",", 1)[0])),
        r"missing column\(s\) \['transactionid'\]",
    ),
    Case(
        "a renamed column",
        daily(lambda d, x: csv(x, HEADER.replace("visitorid", "visitor_id"))),
        r"missing column\(s\) \['visitorid'\] .* the source does not know: \['visitor_id'\] "
        r"\(renamed\?\)",
    ),
    Case(
        "an extra column (fail)",
        daily(lambda d, x: csv([y + ",web" for y in x], HEADER + ",channel")),
        r"unexpected column\(s\) \['channel'\]",
    ),
    Case(
        "an extra column (ignored)",
        daily(lambda d, x: csv([y + ",web" for y in x], HEADER + ",channel")),
        overrides={"INPUT__EXTRA_COLUMNS": "ignore"},
    ),
    Case(
        "a column named twice",
        daily(lambda d, x: csv([y + ",1" for y in x], HEADER + ",event")),
        r"a column name appears twice",
    ),
    Case("columns in another order", daily(lambda d, x: reorder(x) + "\n")),
    Case(
        "no header where one is expected",
        daily(lambda d, x: "\n".join(x) + "\n"),
        r"missing column\(s\) .*the first line looks like data: set input.header: false",
    ),
    Case(
        "rows with too many fields",
        daily(lambda d, x: csv(damage(x, lambda f: [*f, "surplus"]))),
        rejected={"too_many_fields": K},
    ),
    Case(
        "rows with too few fields",
        daily(lambda d, x: csv(damage(x, lambda f: f[:3]))),
        rejected={"too_few_fields": K},
    ),
    Case("bytes that are not UTF-8", daily_bytes(encoded), rejected={"bad_encoding": K}),
    Case(
        "times in seconds, not milliseconds",
        daily(lambda d, x: csv([",".join([f[0][:-3], *f[1:]]) for f in map(fields, x)])),
        r"no row has a usable timestamp: timestamps look like epoch seconds \(e\.g\. '\d{{10}}'\), "
        r"not epoch milliseconds: set input\.timestamp\.unit: s",
    ),
    Case(
        "ISO times, not milliseconds",
        daily(lambda d, x: csv(damage(x, with_field(0, f"{d}T12:00:00Z"), len(x)))),
        r"timestamps look like ISO-8601 text .* set input\.timestamp\.unit: iso",
    ),
    Case(
        "a file of garbage lines",
        daily(lambda d, x: csv([f"lorem ipsum dolor {i}" for i in range(40)])),
        r"no row can be read: 40 of 40 rows hold fewer fields than the source's columns",
    ),
    Case(
        "unparseable times",
        daily(lambda d, x: csv(damage(x, with_field(0, "yesterday")))),
        rejected={"bad_timestamp": K},
    ),
    Case(
        "implausible times",
        daily(lambda d, x: csv(damage(x, with_field(0, "32503680000000")))),  # year 3000
        rejected={"implausible_timestamp": K},
    ),
    Case(
        "rows of another day in a daily file",
        daily(lambda d, x: csv(damage(x, lambda f: shifted_ms(f, 1)))),
        rejected={"timestamp_outside_day": K},
    ),
    Case(
        "unknown event names",
        daily(lambda d, x: csv(damage(x, with_field(2, "click")))),
        rejected={"unknown_event": K},
    ),
    Case(
        "event names to drop",
        daily(lambda d, x: csv(damage(x, with_field(2, "remove_from_cart")))),
        dropped={"remove_from_cart": K},
        overrides={"INPUT__DROP_EVENTS": "[remove_from_cart]"},
    ),
    Case(
        "blank user ids",
        daily(lambda d, x: csv(damage(x, with_field(1, " ")))),
        rejected={"null_user_id": K},
    ),
    Case(
        "blank item ids",
        daily(lambda d, x: csv(damage(x, with_field(3, "")))),
        rejected={"null_item_id": K},
    ),
    Case(
        "item ids that are not integers",
        daily(lambda d, x: csv(damage(x, with_field(3, "SKU-1")))),
        rejected={"bad_item_id": K},
    ),
    Case(
        "purchases without a transaction id",
        daily(lambda d, x: csv(damage(x, lambda f: [f[0], f[1], "transaction", f[3], ""]))),
        rejected={"missing_transaction_id": K},
    ),
    Case(
        "a multi-day file with unparseable times",
        multi_day,
        rejected={"bad_timestamp": K},
        file="events.csv",
    ),
    Case(
        "malformed JSON lines",
        daily(jsonl),
        rejected={"malformed_json": K},
        overrides={"INPUT__FORMAT": "jsonl"},
    ),
    Case(
        "too many rejected rows",
        daily(lambda d, x: csv(damage(x, with_field(3, "?"), 34))),
        r"clean.events.rejected_share = 0.507463 \(threshold 0.2\): bad_item_id 34 in "
        r"file:.*events_{day}\.csv",
        stage="clean",
    ),
]


@pytest.fixture(scope="module")
def sample_lines() -> Lines:
    start = (SAMPLE_DAY - dt.date(1970, 1, 1)).days * DAY_MS
    with gzip.open(RR_SAMPLE, "rt") as fh:
        next(fh)
        lines = [x.rstrip("\n") for x in fh if start <= int(x.split(",")[0]) < start + DAY_MS]
    assert len(lines) == 67
    return lines


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad_inputs")


def run_case(spark, home: Path, lines: Lines, index: int, case: Case):
    day = FIRST_CASE_DAY + dt.timedelta(days=2 * index)
    offset = (day - SAMPLE_DAY).days
    moved = [",".join(shifted_ms(fields(x), offset)) for x in lines]
    directory = home / "input" / f"case{index:02d}"
    directory.mkdir(parents=True)
    case.write(directory, day, moved)
    settings = make_settings(
        home,
        INPUT__EVENTS_PATH=str(directory / case.file),
        INPUT__ITEM_PROPERTIES_PATH="",
        INPUT__CATEGORY_TREE_PATH="",
        **case.overrides,
    )
    figures, failure = {}, None
    for stage in ("ingest", "clean"):
        try:
            figures[stage] = run_stage_range(spark, settings, stage, DayRange.of(day))[day]
        except StageError as exc:
            failure = exc
            break
    return settings, day, figures, failure


def rows_of(spark, settings, table, day: dt.date) -> int:
    return read_table(spark, settings, table).filter(F.col(C.DT) == day).count()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.kind for c in CASES])
def test_bad_input(spark, home: Path, sample_lines: Lines, index: int) -> None:
    case = CASES[index]
    settings, day, figures, failure = run_case(spark, home, sample_lines, index, case)
    if case.error is not None:
        assert failure is not None, f"{case.kind}: no error; figures {figures}"
        message = str(failure)
        assert message.startswith(f"{case.stage} {day}: "), message
        assert "\n" not in message
        pattern = case.error.format(day=day)
        assert __import__("re").search(pattern, message), f"{message!r} !~ {pattern!r}"
        # Nothing of the failing stage is written for the day.
        failed_tables = [RAW_EVENTS] if case.stage == "ingest" else [CLEAN_EVENTS]
        failed_tables += [CLEAN_EVENTS_REJECTED] if case.stage == "clean" else []
        for table in failed_tables:
            assert rows_of(spark, settings, table, day) == 0, table.name
        return
    assert failure is None, f"{case.kind}: {failure}"
    clean = figures["clean"]
    rejected = {
        k.split(".", 1)[1]: int(v) for k, v in clean.items() if k.startswith("rejected_rows.")
    }
    dropped = {
        k.split(".", 1)[1]: int(v) for k, v in clean.items() if k.startswith("dropped_rows.")
    }
    assert rejected == case.rejected
    assert dropped == case.dropped
    assert clean["unreconciled_rows"] == 0
    assert (
        clean["input_rows"]
        == figures["ingest"]["raw_rows"]
        == rows_of(spark, settings, RAW_EVENTS, day)
    )
    assert rows_of(spark, settings, CLEAN_EVENTS_REJECTED, day) == sum(case.rejected.values())
    if case.kind == "bytes that are not UTF-8":
        users = read_table(spark, settings, CLEAN_EVENTS_REJECTED).filter(F.col(C.DT) == day)
        assert users.filter(F.col(C.USER_ID).isNotNull()).count() == 0  # never hashed


def test_the_multi_day_file_counts_its_bad_rows_once(spark, home: Path, sample_lines) -> None:
    first = dt.date(2016, 5, 1)
    directory = home / "multi_day"
    directory.mkdir()
    offset = (first - SAMPLE_DAY).days
    multi_day(directory, first, [",".join(shifted_ms(fields(x), offset)) for x in sample_lines])
    settings = make_settings(
        home,
        INPUT__EVENTS_PATH=str(directory / "events.csv"),
        INPUT__ITEM_PROPERTIES_PATH="",
        INPUT__CATEGORY_TREE_PATH="",
    )
    both = DayRange(first, first + dt.timedelta(days=1))
    run_stage_range(spark, settings, "ingest", both)
    figures = run_stage_range(spark, settings, "clean", both)
    assert figures[both.first]["rejected_rows.bad_timestamp"] == K
    assert figures[both.first]["input_rows"] == 67
    assert figures[both.last]["rejected_rows"] == 0 and figures[both.last]["input_rows"] == 67


def test_a_failure_is_one_line_and_the_traceback_only_with_verbose(
    home: Path, monkeypatch, capsys, caplog
) -> None:
    monkeypatch.setenv("RECSYS_HOME", str(home))
    monkeypatch.setenv("RECSYS_CONF_DIR", str(REPO / "conf"))
    monkeypatch.setenv("RECSYS_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("RECSYS__PATHS__JARS_CACHE", str(REPO / ".cache" / "ivy"))
    monkeypatch.setenv("RECSYS__INPUT__EVENTS_PATH", str(home / "input" / "nowhere"))
    assert main(["run", "ingest", "--date", "2016-03-01"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "recsys: ingest 2016-03-01: no input for 2016-03-01: the path does not exist "
        f"({home / 'input' / 'nowhere'})"
    )
    assert "Traceback" not in err and "Traceback" not in caplog.text
    assert main(["check-input", "--date", "2016-03-01", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("recsys: check-input 2016-03-01: no input for 2016-03-01")
    )
    assert "Traceback" in err + caplog.text


def test_check_input_reports_without_writing(
    home: Path, sample_lines: Lines, monkeypatch, capsys
) -> None:
    case = next(c for c in CASES if c.kind == "unknown event names")
    day = dt.date(2016, 6, 1)
    offset = (day - SAMPLE_DAY).days
    directory = home / "check" / "input"
    directory.mkdir(parents=True)
    case.write(directory, day, [",".join(shifted_ms(fields(x), offset)) for x in sample_lines])
    monkeypatch.setenv("RECSYS_HOME", str(home / "check"))
    monkeypatch.setenv("RECSYS_CONF_DIR", str(REPO / "conf"))
    monkeypatch.setenv("RECSYS__PATHS__JARS_CACHE", str(REPO / ".cache" / "ivy"))
    monkeypatch.setenv("RECSYS__INPUT__EVENTS_PATH", str(directory))
    assert main(["check-input", "--date", day.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "rows of the run dates: 67" in out
    assert "rejected          5 (7.5%): unknown_event 5" in out
    assert "unknown event names: 'click' (5)" in out
    assert "passes" in out
    assert not (home / "check" / "warehouse").exists()
