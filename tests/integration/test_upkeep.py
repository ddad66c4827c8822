"""The upkeep and the erasure of a warehouse, on a generated shop after a whole night:

- maintenance: compaction lowers the file count and keeps every row; VACUUM keeps time
  travel within its retention and deletes the rest; old _staging/ partitions go; a
  retention below the floor is refused;
- kills: the night's recommend killed (SIGKILL) after staging its lists and with the
  serving store's new table loaded leaves every table readable and the served lists as they
  were; a rerun gives the night's rows;
- erasure: `erase-user`, then every Parquet, JSON and checkpoint file under the warehouse
  and every model artifact is scanned, and neither the raw id nor the pseudonym is
  anywhere; the other users' rows are unchanged; the erasure is on record without ids.

The tests use one warehouse (history and a night cost most of the time); each takes its
own snapshots, and none changes the rows another compares.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.cli import backfill, run_days
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.models.als import load_model
from recsys_lib.pipeline import HISTORY_STAGES, NIGHTLY
from recsys_lib.stages import maintenance as tasks
from recsys_lib.stages.erase_user import erase_users, pseudonyms
from recsys_lib.warehouse import maintenance
from recsys_lib.warehouse.publish import staging_path, write_staged
from recsys_lib.warehouse.serving import connection
from recsys_lib.warehouse.storage import read_table, table_path, table_version
from recsys_lib.warehouse.tables import (
    ALL_TABLES,
    CLEAN_EVENTS,
    ERASURES,
    ITEM_DAILY,
    RAW_EVENTS,
    USER_RECOMMENDATIONS,
)
from tests.conftest import make_settings, recsys_environ
from tests.integration.helpers import (
    SMALL_MODELS,
    killed_at,
    readable,
    shop_inputs,
    snapshot,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAYS = 4
PAST_RETENTION = 2 / 3600  # 2 s, allowed by MAINTENANCE__MIN_RETENTION_HOURS=0


@dataclass(frozen=True)
class NightHome:
    home: Path
    overrides: dict[str, str]
    days: DayRange


@pytest.fixture(scope="module")
def night_home(tmp_path_factory: pytest.TempPathFactory, postgres: Any) -> NightHome:
    """A generated shop: its project home, its settings' overrides (serving on), its days."""
    root = tmp_path_factory.mktemp("upkeep")
    shop = generate_shop(root / "shop", "default", scale=0.05, days=DAYS)
    postgres.create_database("upkeep")
    overrides = {
        **shop_inputs(shop),
        **{k.removeprefix("RECSYS__"): v for k, v in SMALL_MODELS.items()},
        "SERVING__ENABLED": "true",
        "SERVING__URL": postgres.url("upkeep"),
        "MAINTENANCE__MIN_RETENTION_HOURS": "0",
        "MAINTENANCE__COMPACT_DAYS": str(DAYS),
    }
    return NightHome(root / "home", overrides, DayRange(shop.first_day, shop.last_day))


@pytest.fixture(scope="module")
def night(spark: Any, night_home: NightHome) -> Settings:
    """The shop's history and one whole night (serving on), ready to clean up."""
    settings = make_settings(night_home.home, **night_home.overrides)
    backfill(settings, HISTORY_STAGES, night_home.days)
    run_days(settings, [s for s in NIGHTLY if s not in HISTORY_STAGES], [night_home.days.last])
    return settings


def parquet_files(root: Path) -> int:
    """Data files on disk (not the Delta logs' checkpoints, not the staging area)."""
    skip = {"_staging", "_delta_log"}
    return sum(1 for p in root.rglob("*.parquet") if not skip & set(p.parts))


def test_compaction_keeps_rows_and_vacuum_keeps_time_travel_within_retention(
    spark: Any, night: Settings
) -> None:
    settings = night
    last = max(r[0] for r in read_table(spark, settings, CLEAN_EVENTS).select(C.DT).collect())
    warehouse = Path(settings.warehouse)
    run_days(settings, ["aggregate"], [last])  # a rerun: more files to compact
    rows_before = snapshot(spark, settings)
    files_before = {t.name: maintenance.active_files(spark, settings, t) for t in ALL_TABLES}
    version_before = table_version(spark, settings, CLEAN_EVENTS)
    events_before = sorted(
        spark.read.format("delta").load(table_path(settings, CLEAN_EVENTS)).collect()
    )

    figures = tasks.compact(spark, settings, last)  # compact_days = DAYS: the whole shop
    files_after = {t.name: maintenance.active_files(spark, settings, t) for t in ALL_TABLES}
    assert figures["files_removed"] > figures["files_added"] > 0
    assert sum(files_after.values()) < sum(files_before.values())
    assert all(files_after[n] <= files_before[n] for n in files_before)
    assert files_after[CLEAN_EVENTS.name] == DAYS  # one file per day's partition
    assert snapshot(spark, settings) == rows_before  # the same rows, in fewer files

    # Within the retention: nothing the old versions use is deleted; time travel works.
    within = make_settings(Path(settings.home), **{"PATHS__WAREHOUSE": settings.warehouse})
    assert tasks.vacuum(spark, within, last)["files_deleted"] == 0
    old = (
        spark.read.format("delta")
        .option("versionAsOf", version_before)
        .load(table_path(settings, CLEAN_EVENTS))
    )
    assert sorted(old.collect()) == events_before

    # Past the retention: the files only old versions used are deleted.
    time.sleep(3)
    on_disk = parquet_files(warehouse)
    deleted = maintenance.vacuum(spark, settings, hours=PAST_RETENTION)
    assert sum(deleted.values()) == on_disk - parquet_files(warehouse) > 0
    assert parquet_files(warehouse) == sum(files_after.values())
    assert sorted(read_table(spark, settings, CLEAN_EVENTS).collect()) == events_before
    with pytest.raises(Exception, match="(?i)not found|does not exist|FileNotFound|FAILED_READ"):
        old.collect()

    # The floor: a retention below maintenance.min_retention_hours is refused.
    with pytest.raises(maintenance.RetentionError, match="below maintenance.min_retention_hours"):
        maintenance.vacuum(spark, within, hours=1)


def served_rows(settings: Settings) -> list[tuple]:
    """The serving store's table, sorted; and the tables beside it."""
    with connection(settings.serving).connect() as db, db.cursor() as cur:
        cur.execute("SELECT * FROM recsys.user_recommendations")
        return sorted(map(tuple, cur.fetchall()), key=repr)


def serving_tables(settings: Settings) -> set[str]:
    with connection(settings.serving).connect() as db, db.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'recsys'")
        return {r[0] for r in cur.fetchall()}


# (stage, point, what the kill leaves): a rerun of the stage must give the night's rows.
NIGHT_KILLS = (
    ("recommend", "staged:recs.user_recommendations", "lists staged, not audited"),
    ("recommend", "serving_loaded", "serving: a loaded table beside the served one"),
)


def test_a_stage_killed_mid_night_reruns_to_the_same_rows(
    spark: Any, night: Settings, night_home: NightHome
) -> None:
    settings, last = night, night_home.days.last
    rows, served = snapshot(spark, settings), served_rows(settings)
    environ = recsys_environ(night_home.home, **night_home.overrides)
    for stage, point, state in NIGHT_KILLS:
        tables = serving_tables(settings)
        killed_at(point, environ, "run", stage, "--date", str(last))
        readable(spark, settings)  # every table reads
        assert served_rows(settings) == served  # readers still get the served night
        left = serving_tables(settings) - tables
        print(f"killed at {point} ({state}); serving tables left: {sorted(left)}")
        assert len(left) == (point == "serving_loaded")
        run_days(settings, [stage], [last])
        assert snapshot(spark, settings) == rows, point
        assert served_rows(settings) == served and serving_tables(settings) == tables


def parsed(text: str) -> object:
    """JSON text as values, or None when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def holds(path: Path, raw_id: str, pseudonym: str) -> bool:
    """Whether a file holds the user: the pseudonym anywhere (verbatim bytes, or a decoded
    Parquet or JSON value), the raw id as a raw user value or in a statistic of it."""
    if pseudonym.encode() in path.read_bytes():
        return True

    def walk(value: object, key: str = "") -> bool:
        if isinstance(value, str):
            if pseudonym in value or (key == C.RAW_USER and value.strip() == raw_id):
                return True
            if key == "stats" and value.startswith("{"):
                return walk(parsed(value), key)
            return False
        if isinstance(value, dict):
            return any(walk(v, k) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(walk(v, key) for v in value)
        return False

    if path.suffix == ".parquet":
        return walk(pq.read_table(path).to_pylist())
    if path.suffix == ".json":  # a Delta commit (JSON lines) or a JSON document
        text = path.read_text()
        return walk(parsed(text)) or any(walk(parsed(line)) for line in text.splitlines())
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return pseudonym in set(arrays["user_ids"].astype(str))
    return False


def other_rows(spark: Any, settings: Settings, raw_id: str, pseudonym: str) -> dict[str, list]:
    """The rows of every user table but those of the user."""
    out = {}
    for table in ALL_TABLES:
        if not table.user_columns:
            continue
        frame = read_table(spark, settings, table)
        if C.USER_ID in frame.columns:
            frame = frame.filter((F.col(C.USER_ID) != pseudonym) | F.col(C.USER_ID).isNull())
        if C.RAW_USER in frame.columns:
            frame = frame.filter(~F.trim(C.RAW_USER).eqNullSafe(raw_id))
        out[table.name] = sorted(map(repr, frame.drop(C.INGESTED_AT).collect()))
    return out


def test_an_erased_user_is_nowhere(spark: Any, night: Settings) -> None:
    settings = night
    # The user to erase: one who got recommendations on the night.
    recs = read_table(spark, settings, USER_RECOMMENDATIONS)
    raw = read_table(spark, settings, RAW_EVENTS).select(F.trim(C.RAW_USER).alias("u")).distinct()
    by_pseudonym = {pseudonyms(settings, [r["u"]])[0]: r["u"] for r in raw.collect() if r["u"]}
    target = next(u for u in sorted(r[C.USER_ID] for r in recs.collect()) if u in by_pseudonym)
    raw_id = by_pseudonym[target]
    kept_before = other_rows(spark, settings, raw_id, target)

    figures = erase_users(spark, settings, [f" {raw_id} "], dt.date(2026, 12, 5))
    assert figures["users"] == 1 and figures["rows_deleted"] > 10
    assert figures["artifacts_rewritten"] >= 1 and figures["serving_rows_deleted"] > 0
    assert figures["staged_partitions_deleted"] >= 1

    # Current versions: gone everywhere; everyone else's rows unchanged.
    assert other_rows(spark, settings, raw_id, target) == kept_before
    for table in ALL_TABLES:
        frame = read_table(spark, settings, table)
        if C.USER_ID in frame.columns:
            assert frame.filter(F.col(C.USER_ID) == target).isEmpty(), table.name
        if C.RAW_USER in frame.columns:
            assert frame.filter(F.trim(C.RAW_USER) == raw_id).isEmpty(), table.name
    with connection(settings.serving).connect() as db, db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM recsys.user_recommendations WHERE user_id = %s", (target,)
        )
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM recsys.user_recommendations")
        assert cur.fetchone()[0] > 0

    # After the retention, VACUUM deletes the files of the earlier versions: then nothing
    # under the warehouse or MLflow's store holds the user.
    time.sleep(3)
    maintenance.vacuum(spark, settings, hours=PAST_RETENTION)
    scanned, holding = 0, []
    for root in (Path(settings.warehouse), Path(settings.home) / "mlflow"):
        for path in (p for p in root.rglob("*") if p.is_file()):
            if path.suffix in (".parquet", ".json", ".npz", ".crc"):
                scanned += 1
                if holds(path, raw_id, target):
                    holding.append(str(path))
    assert scanned > 100 and holding == []

    # The ALS model still loads, without the user.
    night_day = max(r[0] for r in recs.select(C.DT).collect())
    model, _ = load_model(settings, night_day)
    assert target not in set(model.user_ids) and len(model.user_ids) > 10

    # The erasure is on record, without the ids.
    record = read_table(spark, settings, ERASURES).collect()
    assert len(record) == 1 and record[0][C.USERS] == 1
    values = [str(v) for v in record[0].asDict().values()]
    values += [*record[0][C.ROWS_DELETED]]
    assert raw_id not in values and not any(target in v for v in values)
    assert record[0][C.ROWS_DELETED][USER_RECOMMENDATIONS.name] > 0


def test_old_staging_partitions_go_recent_ones_stay(spark, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    today = dt.date(2026, 10, 14)
    frame = spark.createDataFrame([], ITEM_DAILY.schema)
    for day in (today - dt.timedelta(days=8), today - dt.timedelta(days=7), today):
        write_staged(spark, settings, ITEM_DAILY, frame.withColumn("dt", F.lit(day)), day)
    deleted = maintenance.clean_staging(spark, settings, today)
    assert [Path(p.removeprefix("file:")).name for p in deleted] == [
        f"dt={today - dt.timedelta(days=8)}"
    ]
    for day, kept in ((today - dt.timedelta(days=7), True), (today, True)):
        assert Path(staging_path(settings, ITEM_DAILY, day)).exists() is kept
    assert maintenance.clean_staging(spark, settings, today) == []
