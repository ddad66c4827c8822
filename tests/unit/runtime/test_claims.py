"""Claims: a second run of a stage and day fails at once and names the first; a killed
holder's claim lapses; the registry's claim is waited for; the same on S3 (moto)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recsys_lib.runtime.claims import (
    WAREHOUSE_ALONE,
    WAREHOUSE_SHARES,
    Claim,
    ClaimError,
    Holder,
    alone,
    claimed,
    sharing,
    stage_keys,
    store_of,
    table_lock,
    waiting,
)
from tests.conftest import claims_left, make_settings

DAYS = [dt.date(2026, 10, 13), dt.date(2026, 10, 14)]


def _settings(tmp_path: Path, **overrides: str):
    return make_settings(tmp_path, **overrides)


def _plant(settings, key: str, *, pid: int, host: str | None = None, age: float = 0.0) -> None:
    """A claim of another run: ``pid`` on ``host``, last heartbeat ``age`` seconds ago."""
    now = time.time() - age
    holder = Holder("other", host or socket.gethostname(), pid, "stage clean", now, now)
    assert store_of(settings).create(key, holder.encode())


def _refused(settings, keys: list[str], what: str = "a second run") -> str:
    """The error of a run whose claims ``keys`` are held."""
    with pytest.raises(ClaimError) as refused, claimed(settings, keys, what):
        pytest.fail(f"{what} entered a held claim")
    return str(refused.value)


def test_a_second_run_of_a_stage_and_day_fails_at_once_naming_the_first(tmp_path) -> None:
    settings = _settings(tmp_path)
    keys = stage_keys("clean", DAYS)
    with claimed(settings, keys, "stage clean for the range"):
        started = time.monotonic()
        message = _refused(settings, keys[1:])
        assert time.monotonic() - started < 1.0  # immediate, no waiting
        assert "clean/2026-10-14 is being run by stage clean for the range" in message
        assert f"{socket.gethostname()}, process " in message
        assert str(tmp_path / "warehouse" / "_claims" / "clean" / "2026-10-14") in message
        with claimed(settings, stage_keys("clean", [DAYS[0] - dt.timedelta(1)]), "other day"):
            pass  # another day of the same stage proceeds
        with claimed(settings, stage_keys("aggregate", DAYS), "other stage"):
            pass  # another stage of the same days proceeds
    with claimed(settings, keys, "after the first run ended"):
        pass
    assert claims_left(settings) == []  # all given back


def test_claims_are_all_or_nothing(tmp_path) -> None:
    settings = _settings(tmp_path)
    _plant(settings, "clean/2026-10-14", pid=1, host="elsewhere")
    _refused(settings, stage_keys("clean", DAYS))
    # The first day was taken, then given back when the second was refused.
    assert store_of(settings).read("clean/2026-10-13") is None


def test_a_killed_holder_s_claim_lapses(tmp_path) -> None:
    settings = _settings(tmp_path, CONCURRENCY__STALE_AFTER_SECONDS="60")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    _plant(settings, "clean/2026-10-13", pid=int(gone.stdout))  # this host, process gone
    _plant(settings, "clean/2026-10-14", pid=1, host="elsewhere", age=61)  # no heartbeat
    with claimed(settings, stage_keys("clean", DAYS), "the rerun"):
        pass
    _plant(settings, "clean/2026-10-14", pid=1, host="elsewhere", age=30)  # alive elsewhere
    assert "last heartbeat 30s ago" in _refused(settings, stage_keys("clean", DAYS))


def test_the_holder_keeps_its_claim_alive(tmp_path) -> None:
    settings = _settings(tmp_path, CONCURRENCY__HEARTBEAT_SECONDS="0.05")
    store = store_of(settings)
    with claimed(settings, ["train_als/2026-10-14"], "a long stage"):
        first = Holder.decode(store.read("train_als/2026-10-14") or b"")
        time.sleep(0.3)
        later = Holder.decode(store.read("train_als/2026-10-14") or b"")
        assert first is not None and later is not None
        assert later.token == first.token and later.heartbeat_at > first.heartbeat_at


def test_registering_waits_for_the_other_run(tmp_path) -> None:
    settings = _settings(tmp_path)
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with waiting(settings, "registry/recsys-ranker", "night 1"):
            holding.set()
            time.sleep(0.5)
            order.append("night 1")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait()
    with waiting(settings, "registry/recsys-ranker", "night 2"):
        order.append("night 2")
    thread.join()
    assert order == ["night 1", "night 2"]
    short = _settings(tmp_path, CONCURRENCY__WAIT_SECONDS="0")
    _plant(short, "registry/recsys-ranker", pid=1, host="elsewhere")
    with (
        pytest.raises(
            ClaimError, match="waited 0s for its turn; .*registry/recsys-ranker is held by"
        ),
        waiting(short, "registry/recsys-ranker", "night 3"),
    ):
        pass


def test_claims_can_be_turned_off(tmp_path) -> None:
    settings = _settings(tmp_path, CONCURRENCY__CLAIMS="false")
    with claimed(settings, ["clean/2026-10-14"], "a"), claimed(settings, ["clean/2026-10-14"], "b"):
        pass
    with pytest.raises(ClaimError, match="concurrency.claims: false"):
        Claim(_settings(tmp_path, PATHS__WAREHOUSE="hdfs://nn/warehouse"), ["k"], "c")


def test_claims_on_s3_are_conditional_puts(tmp_path, local_s3) -> None:
    local_s3.create_bucket(Bucket="lake")
    settings = _settings(tmp_path, PATHS__WAREHOUSE="s3a://lake/recsys/warehouse")
    with claimed(settings, stage_keys("clean", DAYS), "on s3"):
        where = "s3://lake/recsys/warehouse/_claims/clean/2026-10-13"
        assert where in _refused(settings, stage_keys("clean", DAYS[:1]))
    store = store_of(settings)
    assert store.read("clean/2026-10-13") is None  # given back
    assert store.create("k", b"1") and not store.create("k", b"2")
    assert store.read("k") == b"1"


def test_a_half_written_claim_counts_as_lapsed(tmp_path) -> None:
    settings = _settings(tmp_path)
    assert store_of(settings).create("clean/2026-10-14", b'{"token": "x", "ho')  # killed
    with claimed(settings, ["clean/2026-10-14"], "after a kill"):
        pass


def test_commits_to_one_table_from_two_processes_follow_each_other(tmp_path) -> None:
    settings = _settings(tmp_path)
    holder = (
        "import sys, time\n"
        "from recsys_lib.runtime.claims import table_lock\n"
        "from tests.conftest import make_settings\n"
        "from pathlib import Path\n"
        "with table_lock(make_settings(Path(sys.argv[1])), 'clean.events'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(1.0)\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert other.stdout is not None and other.stdout.readline().strip() == "locked"
    started = time.monotonic()
    with table_lock(settings, "clean.events.other"):
        assert time.monotonic() - started < 0.5  # another table: no wait
    with table_lock(settings, "clean.events"):
        waited = time.monotonic() - started
    other.wait()
    assert waited > 0.5  # until the other process's commit was done


def test_a_run_that_lost_its_claim_fails_when_it_ends(tmp_path) -> None:
    settings = _settings(tmp_path, CONCURRENCY__HEARTBEAT_SECONDS="0.05")
    with pytest.raises(ClaimError, match="lost clean/2026-10-14 to another run"):  # noqa: SIM117
        with claimed(settings, ["clean/2026-10-14"], "a stalled run"):
            other = Holder("other", "elsewhere", 1, "the run that took it over", 0, time.time())
            store_of(settings).write("clean/2026-10-14", other.encode())
            time.sleep(0.3)
    assert Holder.decode(store_of(settings).read("clean/2026-10-14") or b"") == other


@pytest.mark.parametrize("store", ["local", "s3"])
def test_an_erasure_waits_for_running_stages_and_later_stages_wait_for_it(
    tmp_path, store, request
) -> None:
    overrides = {}
    if store == "s3":
        request.getfixturevalue("local_s3").create_bucket(Bucket="lake")
        overrides["PATHS__WAREHOUSE"] = "s3a://lake/warehouse"
    settings = _settings(tmp_path, **overrides)
    order: list[str] = []
    stage_running, erasure_waiting = threading.Event(), threading.Event()

    def stage() -> None:
        with sharing(settings, "stage clean for D"):
            stage_running.set()
            erasure_waiting.wait(5)
            time.sleep(0.3)
            order.append("clean ends")

    def erasure() -> None:
        stage_running.wait(5)
        erasure_waiting.set()
        with alone(settings, "erase_user for D"):
            order.append("erasure")
            time.sleep(0.5)
            order.append("erasure ends")

    threads = [threading.Thread(target=stage), threading.Thread(target=erasure)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while store_of(settings).read(WAREHOUSE_ALONE) is None:  # the erasure took its claim
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with sharing(settings, "stage aggregate for D"):  # started while the erasure waits
        order.append("aggregate")
    for thread in threads:
        thread.join()
    assert order == ["clean ends", "erasure", "erasure ends", "aggregate"]
    assert store_of(settings).keys(WAREHOUSE_SHARES) == []  # every share given back
    assert store_of(settings).read(WAREHOUSE_ALONE) is None


def test_a_killed_stage_s_share_does_not_hold_up_an_erasure(tmp_path) -> None:
    settings = _settings(tmp_path, CONCURRENCY__TURN_WAIT_SECONDS="0")
    _plant(settings, f"{WAREHOUSE_SHARES}/killed", pid=2**22 + 7)  # no such process here
    with alone(settings, "erase_user"):
        pass
    assert store_of(settings).keys(WAREHOUSE_SHARES) == []


def test_waiting_for_the_warehouse_has_a_limit_that_names_the_holder(tmp_path) -> None:
    settings = _settings(tmp_path, CONCURRENCY__TURN_WAIT_SECONDS="0")
    _plant(settings, f"{WAREHOUSE_SHARES}/live", pid=1, host="worker-2")
    with pytest.raises(ClaimError, match="stage clean on worker-2, process 1.*still writes"):  # noqa: SIM117
        with alone(settings, "erase_user"):
            pass
    assert store_of(settings).read(WAREHOUSE_ALONE) is None  # given back
    store_of(settings).delete(f"{WAREHOUSE_SHARES}/live")
    _plant(settings, WAREHOUSE_ALONE, pid=1, host="worker-2")
    with pytest.raises(ClaimError, match="held alone by stage clean on worker-2"):  # noqa: SIM117
        with sharing(settings, "stage aggregate"):
            pass
    assert store_of(settings).keys(WAREHOUSE_SHARES) == []


def test_commits_to_one_table_on_s3_follow_each_other(tmp_path, local_s3) -> None:
    local_s3.create_bucket(Bucket="lake")
    settings = _settings(tmp_path, PATHS__WAREHOUSE="s3a://lake/warehouse")
    holding = threading.Event()
    order: list[str] = []

    def first() -> None:
        with table_lock(settings, "clean.events"):
            holding.set()
            assert store_of(settings).read("tables/clean.events") is not None
            time.sleep(0.5)
            order.append("first commit")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    with table_lock(settings, "clean.events.other"):
        order.append("another table")  # no wait
    with table_lock(settings, "clean.events"):
        order.append("second commit")
    thread.join()
    assert order == ["another table", "first commit", "second commit"]
    assert store_of(settings).read("tables/clean.events") is None
