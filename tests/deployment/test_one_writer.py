"""One writer per table on object storage, across commands: an erasure started while a night
writes the same tables of a warehouse on S3 (a local S3 server) waits its turn; both end,
no commit is lost, every table holds the rows of the same runs one after the other, and
the erased user is nowhere.

The night (`recsys run ingest,clean,aggregate`) and the erasure (`recsys erase-user`) are
processes of their own, each with its own JVM, as two Airflow tasks of two DAGs are. The
erasure starts once the night's `clean` holds its claim. Its per-table counts in
`ops.erasures` tell which of the night's stages ran before it (a table whose stage ran
later never held the user); the same stages and the erasure, one after the other in that
order, then run in this process on a local warehouse, and the two warehouses are compared
table by table, and commit by commit."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys_lib import constants as C
from recsys_lib.cli import run_days
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.stages.erase_user import erase_users, pseudonyms
from recsys_lib.warehouse.storage import read_table, table_version
from recsys_lib.warehouse.tables import CLEAN_EVENTS, ERASURES, RAW_EVENTS, USER_DAILY
from tests.conftest import REPO, make_settings
from tests.deployment.conftest import BUCKET, driver_environ, s3_client, s3_settings
from tests.integration.helpers import OUTPUT_TABLES, shop_inputs, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

NIGHT = ["ingest", "clean", "aggregate"]
PREFIX = "one-writer"

# The erasure's process: the command, then (once the night is over) the warehouse's rows,
# each table's Delta version and the erasure's counts, for the test to compare.
ERASURE = """
import datetime as dt, pickle, sys, time
from pathlib import Path
from recsys_lib.cli import main
from recsys_lib.config import load_settings
from recsys_lib.runtime.spark import get_spark
from recsys_lib.warehouse.storage import read_table, table_version
from recsys_lib.warehouse.tables import ALL_TABLES, ERASURES
from tests.integration.helpers import snapshot
user, day, night_over, out = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
started = time.time()
code = main(["erase-user", "--user-id", user, "--date", day])
ended = time.time()
while not night_over.exists():
    time.sleep(0.2)
settings = load_settings()
spark = get_spark(settings)
counts = read_table(spark, settings, ERASURES).first()["rows_deleted"]
result = {
    "code": code, "started": started, "ended": ended, "counts": dict(counts),
    "rows": snapshot(spark, settings, file_names=True),
    "versions": {t.name: table_version(spark, settings, t) for t in ALL_TABLES},
}
out.write_bytes(pickle.dumps(result))
"""


def _claim_exists(client, key: str) -> bool:
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/_claims/{key}")
    return bool(found.get("Contents"))


def test_an_erasure_during_a_night_on_s3_waits_its_turn_and_loses_nothing(
    spark, tmp_path: Path, s3_endpoint: str
) -> None:
    shop = generate_shop(tmp_path / "shop", "default", scale=0.05, days=1)
    day = shop.last_day
    local = make_settings(tmp_path / "local", **shop_inputs(shop))
    user = busiest_visitor(shop.out_dir / "events" / f"events_{day.isoformat()}.csv")
    environ = driver_environ(
        tmp_path / "remote", **shop_inputs(shop), **s3_settings(s3_endpoint, PREFIX)
    )
    client = s3_client(s3_endpoint)
    recsys = str(Path(sys.executable).parent / "recsys")
    started = time.time()
    night = subprocess.Popen(
        [recsys, "run", ",".join(NIGHT), "--date", day.isoformat()],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not _claim_exists(client, f"clean/{day.isoformat()}"):  # the night's clean runs
        assert night.poll() is None, night.stdout.read() if night.stdout else ""
        assert time.monotonic() < deadline, "the night's clean never started"
        time.sleep(0.1)
    night_over, result_file = tmp_path / "night_over", tmp_path / "erasure.pickle"
    erasure = subprocess.Popen(
        [sys.executable, "-c", ERASURE, user, day.isoformat(), str(night_over), str(result_file)],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    night_log = night.communicate(timeout=600)[0]
    night_ended = time.time()
    night_over.touch()
    erasure_log = erasure.communicate(timeout=600)[0]
    assert night.returncode == 0, night_log[-3000:]
    assert erasure.returncode == 0, erasure_log[-3000:]
    remote = pickle.loads(result_file.read_bytes())
    assert remote["code"] == 0, erasure_log[-3000:]
    print(f"night and erasure at once on S3: {night_ended - started:.0f}s")
    # The two overlapped in time, and one waited for the other.
    assert remote["started"] < night_ended
    assert "waits" in night_log + erasure_log, (night_log[-2000:], erasure_log[-2000:])

    # Which stages ran before the erasure: those whose tables held the user's rows.
    counts = remote["counts"]
    held = [counts.get(t.name, 0) > 0 for t in (RAW_EVENTS, CLEAN_EVENTS, USER_DAILY)]
    assert held[0] and held == sorted(held, reverse=True), counts  # a prefix of the night
    before = NIGHT[: sum(held)]
    run_days(local, before, [day])
    erase_users(spark, local, [user], day)
    if len(before) < len(NIGHT):
        run_days(local, NIGHT[len(before) :], [day])
    print("stages before the erasure:", before, counts)

    expected = snapshot(spark, local, file_names=True)
    different = [name for name, rows in expected.items() if remote["rows"][name] != rows]
    assert not different, f"tables whose rows differ from the runs one after the other: {different}"
    # No commit lost: every table took as many commits as it did one run after another.
    versions = {t.name: table_version(spark, local, t) for t in (*OUTPUT_TABLES, RAW_EVENTS)}
    assert {n: remote["versions"][n] for n in versions} == versions
    # The erased user is nowhere: not by the raw id, not by the pseudonym.
    (hashed,) = pseudonyms(local, [user])
    for table in (*OUTPUT_TABLES, RAW_EVENTS):
        if table.user_columns:
            columns = [c for c in table.column_names if c != C.INGESTED_AT]
            at = columns.index(table.user_columns[0])
            found = [r for r in remote["rows"][table.name] if r[at] in (user, hashed)]
            assert not found, table.name
    assert read_table(spark, local, ERASURES).count() == 1
    assert not [o for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/_claims/")
                .get("Contents", []) if "/_claims/." not in o["Key"]]  # fmt: skip


def busiest_visitor(events: Path) -> str:
    """The visitor with the most well-formed rows in a day's file."""
    header, *lines = events.read_text().splitlines()
    position = header.split(",").index(C.RR_VISITOR_ID)
    visitors = [f[position] for f in (line.split(",") for line in lines) if len(f) == 5]
    return max(sorted(set(visitors)), key=visitors.count)
