"""`recsys query` over tables Spark wrote: reads only, names a missing table, prints text, CSV
or JSON (the refusals are in tests/unit/warehouse/test_query.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest

from recsys_lib.cli import format_rows, query
from recsys_lib.warehouse.query import MissingTableError
from recsys_lib.warehouse.storage import write_partition
from recsys_lib.warehouse.tables import QUALITY_CHECKS

DAY = dt.date(2026, 1, 1)


def listing(root: Path) -> dict[str, float]:
    """Every file and folder under ``root`` with its modification time."""
    return {
        str(Path(folder, name)): os.stat(Path(folder, name)).st_mtime
        for folder, dirs, files in os.walk(root)
        for name in (*dirs, *files)
    }


def test_rows_print_as_csv_and_json_with_iso_dates() -> None:
    columns = ["dt", "n", "figures", "name"]
    rows = [(DAY, 1, {"a": 0.5}, "x,y"), (DAY, 2, None, None)]
    assert list(csv.reader(io.StringIO(format_rows(columns, rows, "csv")))) == [
        columns,
        ["2026-01-01", "1", '{"a": 0.5}', "x,y"],
        ["2026-01-01", "2", "", ""],
    ]
    assert json.loads(format_rows(columns, rows, "json")) == [
        {"dt": "2026-01-01", "n": 1, "figures": {"a": 0.5}, "name": "x,y"},
        {"dt": "2026-01-01", "n": 2, "figures": None, "name": None},
    ]
    assert format_rows(columns, [], "text") == "(no rows)"
    assert format_rows(columns, [], "csv") == "dt,n,figures,name"
    assert format_rows(columns, [], "json") == "[]"


def test_a_query_reads_without_writing_and_names_a_missing_table(spark, settings) -> None:
    rows = [(DAY, "t", name, 1.0, None, True) for name in ("a", "b")]
    write_partition(
        spark.createDataFrame(rows, QUALITY_CHECKS.schema), settings, QUALITY_CHECKS, DAY
    )
    warehouse = Path(settings.warehouse)
    before = listing(warehouse)

    sql = "SELECT check_name, dt FROM ops.quality_checks ORDER BY check_name"
    assert json.loads(query(settings, sql, limit=0, output="json")) == [
        {"check_name": "a", "dt": "2026-01-01"},
        {"check_name": "b", "dt": "2026-01-01"},
    ]
    assert query(settings, sql, limit=1, output="csv") == "check_name,dt\na,2026-01-01"
    with pytest.raises(MissingTableError, match=r"recs\.user_recommendations"):
        query(settings, "SELECT count(*) FROM recs.user_recommendations", limit=0)
    assert listing(warehouse) == before  # no table created, no file touched


@pytest.mark.parametrize("env", ["local", "cluster"])
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "all", "--date", "2026-01-01"],
        ["backfill", "--start", "2026-01-01", "--end", "2026-01-03", "--stages", "clean"],
        ["erase-user", "--user-id", "42"],
    ],
)
def test_a_run_without_the_key_fails_at_once_in_every_environment(
    argv: list[str], env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from recsys_lib.cli import main

    monkeypatch.delenv("RECSYS_PSEUDONYM_KEY")
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.setenv("RECSYS_CONF_DIR", str(Path(__file__).parents[2] / "conf"))
    assert main(["--env", env, *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RECSYS_PSEUDONYM_KEY is not set" in err[0], err
    assert "openssl rand -hex 32" in err[0]
    assert list(tmp_path.iterdir()) == []  # before any work: nothing written, no session


def test_a_stage_job_without_the_key_fails_before_its_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from recsys_lib import jobs

    monkeypatch.delenv("RECSYS_PSEUDONYM_KEY")
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.setenv("RECSYS_CONF_DIR", str(Path(__file__).parents[2] / "conf"))
    for stage in ("ingest", "clean"):
        assert jobs.main(stage, ["--date", "2026-01-01"]) == 1
        assert "RECSYS_PSEUDONYM_KEY is not set" in capsys.readouterr().err
    ids = tmp_path / "ids.txt"
    ids.write_text("42\n")
    assert jobs.erase(["--ids-file", str(ids), "--date", "2026-01-01"]) == 1
    assert "RECSYS_PSEUDONYM_KEY is not set" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [ids]
