"""The pseudonym key never leaves memory in readable form (rule 7 of ../shared/DESIGN.md).

A process of its own runs ingest, clean, aggregate and train_als (MLflow: its parameters and
the model) on a small generated shop under a fresh random key, and erases a user (the
driver hashes ids there and rewrites the model's artifacts), with Spark's event log on and
its UI up; it fetches the UI's SQL pages, every query's plan from the UI's REST API and its
environment page. Then everything the run wrote (event log,
its output and logs, the MLflow store, the warehouse, the session's ``.cache/`` and the
pages) is scanned for the key and for the key XOR-ed with HMAC's inner and outer pads, as
raw bytes, hex (either case) and base64: no file may hold any of them."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_lib.devtools.generator import generate_shop
from tests.conftest import recsys_environ
from tests.integration.helpers import shop_inputs

pytestmark = [pytest.mark.slow, pytest.mark.integration]

RUN = """
import datetime as dt, json, sys, urllib.error, urllib.request
from pathlib import Path
from recsys_lib.cli import backfill, run_days
from recsys_lib.config import load_settings
from recsys_lib.dates import DayRange
from recsys_lib.runtime.spark import get_spark
from recsys_lib.stages.erase_user import erase_users

first, last = dt.date.fromisoformat(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])
pages = Path(sys.argv[3])
import time
settings = load_settings()
t = [time.perf_counter()]
spark = get_spark(settings)
t.append(time.perf_counter())
backfill(settings, ["ingest", "clean", "aggregate"], DayRange(first, last))
t.append(time.perf_counter())
run_days(settings, ["train_als"], [last])
t.append(time.perf_counter())
from recsys_lib.constants import RAW_USER
raw_user = spark.read.format("delta").load(f"{settings.warehouse}/raw/events").first()[RAW_USER]
erase_users(spark, settings, [raw_user], last)
t.append(time.perf_counter())

ui = spark.sparkContext.uiWebUrl
app = spark.sparkContext.applicationId
def fetch(path, name):
    with urllib.request.urlopen(ui + path) as answer:
        (pages / name).write_bytes(answer.read())
pages.mkdir(parents=True, exist_ok=True)
fetch("/SQL/", "sql.html")
fetch("/environment/", "environment.html")
fetch(f"/api/v1/applications/{app}/sql?details=true&planDescription=true&length=100000", "sql.json")
queries = json.loads((pages / "sql.json").read_text())
pages_read = 0
for query in queries:
    try:  # Spark's UI answers 500 for a few executions (Delta's own commands)
        fetch(f"/SQL/execution/?id={query['id']}", f"execution_{query['id']}.html")
        pages_read += 1
    except urllib.error.HTTPError:
        pass
plans = sum(bool(q.get("planDescription")) for q in queries)
t.append(time.perf_counter())
steps = [round(b - a, 1) for a, b in zip(t, t[1:])]
print(json.dumps({"queries": len(queries), "plans": plans, "pages": pages_read, "seconds": steps}))
spark.stop()
"""


def needles(key: bytes) -> dict[str, bytes]:
    """The key and what HMAC derives from it (the key padded to a block, XOR-ed with the
    inner and outer pads), as raw bytes, hex in either case and base64."""
    block = key.ljust(64, b"\0")
    forms = {
        "key": key,
        "key xor ipad": bytes(b ^ 0x36 for b in block),
        "key xor opad": bytes(b ^ 0x5C for b in block),
    }
    found = {}
    for name, value in forms.items():
        found[f"{name} raw"] = value
        found[f"{name} hex"] = value.hex().encode()
        found[f"{name} HEX"] = value.hex().upper().encode()
        found[f"{name} base64"] = base64.b64encode(value)
    return found


def test_the_key_is_in_no_plan_page_log_store_or_table(tmp_path: Path) -> None:
    shop = generate_shop(tmp_path / "shop", "default", scale=0.05, days=2)
    key = secrets.token_hex(32)  # as `openssl rand -hex 32` makes one
    events = tmp_path / "home" / "events"
    events.mkdir(parents=True)
    spark_conf = {
        "spark.ui.enabled": "true",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
        # The session's scratch space (spills, broadcasts, Python's files) in the scanned tree.
        "spark.local.dir": str(tmp_path / "home" / ".cache" / "spark-local"),
    }
    environ = {
        **recsys_environ(tmp_path / "home", **shop_inputs(shop)),
        **{f"RECSYS__SPARK__CONF__{name}": value for name, value in spark_conf.items()},
        "RECSYS_PSEUDONYM_KEY": key,
    }
    pages = tmp_path / "home" / "pages"
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(shop.first_day), str(shop.last_day), str(pages)],
        env=environ,
        cwd=tmp_path / "home",
        capture_output=True,
    )
    (tmp_path / "home" / "stdout.log").write_bytes(result.stdout)
    (tmp_path / "home" / "stderr.log").write_bytes(result.stderr)
    assert result.returncode == 0, result.stderr[-3000:].decode(errors="replace")
    figures = json.loads(result.stdout.decode().strip().splitlines()[-1])
    # The plans were there to read: in the REST API, and most as the UI's pages.
    assert figures["queries"] > 10, figures
    assert min(figures["plans"], figures["pages"]) >= 0.9 * figures["queries"], figures
    print("session, history, train_als, erasure, pages (s):", figures["seconds"])

    written = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    kinds = {p.relative_to(tmp_path / "home").parts[0] for p in written}
    assert {"events", "pages", "warehouse", "mlflow"} <= kinds, kinds
    # The event log holds the plans, with the hash as a call of the function by its name.
    logged = [p.read_text(errors="replace") for p in events.rglob("*") if p.is_file()]
    assert any("pseudonym(" in text for text in logged)
    hits = [
        f"{name} in {path.relative_to(tmp_path)}"
        for path in written
        for name, needle in needles(key.encode()).items()
        if needle in path.read_bytes()
    ]
    assert not hits, hits
    assert os.environ["RECSYS_PSEUDONYM_KEY"] != key  # the test's own key is another
