"""`recsys query` reads and cannot write: one refused statement per kind of harm, each with
one line and a non-zero exit, and every table's Delta version and files unchanged after.

The tables are written with delta-rs (no JVM): these tests run in a second or two."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from recsys_lib.cli import main
from recsys_lib.warehouse.query import (
    MissingTableError,
    QueryRefused,
    checked_statement,
    run_query,
    table_history,
)
from recsys_lib.warehouse.tables import QUALITY_CHECKS, USER_RECOMMENDATIONS
from tests.conftest import REPO

DAY = dt.date(2026, 1, 1)
TABLES = (QUALITY_CHECKS, USER_RECOMMENDATIONS)

# Statement -> the words its one-line refusal holds. Spark syntax that DuckDB does not
# parse is refused by the parser; what it parses is refused by its kind; what is a SELECT
# but reaches outside the tables finds no file access, no JVM and no shell.
REFUSED = {
    "DELETE FROM recs.user_recommendations WHERE rank > 5": "this is DELETE",
    "UPDATE recs.user_recommendations SET score = 0": "this is UPDATE",
    "MERGE INTO recs.user_recommendations t USING recs.user_recommendations s "
    "ON t.user_id = s.user_id WHEN MATCHED THEN DELETE": "this is MERGE_INTO",
    "INSERT INTO recs.user_recommendations SELECT * FROM recs.user_recommendations": (
        "this is INSERT"
    ),
    "CREATE TABLE t (a int)": "this is CREATE",
    "CREATE TABLE t USING DELTA LOCATION '/tmp/t'": "not a query DuckDB can parse",
    "CREATE TABLE t AS SELECT * FROM ops.quality_checks": "this is CREATE",
    "DROP TABLE recs.user_recommendations": "this is DROP",
    "ALTER TABLE ops.quality_checks RENAME TO x": "this is ALTER",
    "COPY recs.user_recommendations TO '/tmp/recs.csv'": "this is COPY",
    "INSERT OVERWRITE DIRECTORY '/tmp/out' SELECT 1": "not a query DuckDB can parse",
    "ATTACH '/tmp/other.duckdb' AS other": "this is ATTACH",
    "INSTALL httpfs": "this is LOAD",
    "LOAD httpfs": "this is LOAD",
    "SET enable_external_access = true": "this is SET",
    "EXPORT DATABASE '/tmp/export'": "this is EXPORT",
    "SELECT * FROM read_csv('/etc/passwd')": "file system operations are disabled",
    "SELECT * FROM read_text('/proc/self/environ')": "file system operations are disabled",
    "SELECT * FROM text.`/etc/passwd`": "does not exist",
    "SELECT * FROM '/etc/passwd'": "does not exist",
    "SELECT reflect('java.lang.System', 'getenv')": "reflect does not exist",
    "SELECT java_method('java.lang.Runtime', 'getRuntime')": "java_method does not exist",
    ".shell cat /etc/passwd": "not a query DuckDB can parse",
    "SELECT 1; DELETE FROM recs.user_recommendations": "one statement at a time: found 2",
}


def _write(root: Path) -> None:
    checks = pa.table(
        {
            "dt": [DAY, DAY],
            "table_name": ["t", "t"],
            "check_name": ["a", "b"],
            "value": [1.0, 2.0],
            "threshold": [None, 1.5],
            "passed": [True, False],
        }
    )
    recs = pa.table(
        {
            "dt": [DAY] * 3,
            "user_id": ["u1", "u1", "u2"],
            "rank": pa.array([1, 2, 1], pa.int32()),
            "item_id": [10, 11, 10],
            "score": [0.9, 0.5, 0.7],
            "figures": pa.array(
                [[("n", 1.0)], [("n", 2.0)], []], pa.map_(pa.string(), pa.float64())
            ),
            "ts": pa.array([dt.datetime(2026, 1, 2, 3, 4, 5)] * 3, pa.timestamp("us", "UTC")),
        }
    )
    for table, frame in zip(TABLES, (checks, recs), strict=True):
        write_deltalake(str(root / table.relative_path), frame, partition_by=["dt"])


def _state(root: Path) -> tuple[dict[str, int], dict[str, float]]:
    versions = {t.name: DeltaTable(str(root / t.relative_path)).version() for t in TABLES}
    files = {
        str(Path(folder, name)): os.stat(Path(folder, name)).st_mtime
        for folder, _, names in os.walk(root)
        for name in names
    }
    return versions, files


@pytest.fixture()
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "warehouse"
    _write(root)
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.setenv("RECSYS_CONF_DIR", str(REPO / "conf"))
    monkeypatch.setenv("RECSYS_ENV", "local")
    monkeypatch.setenv("RECSYS_TUNED", "off")
    return root


def test_a_select_reads_the_tables_with_their_types(warehouse: Path, capsys) -> None:
    from recsys_lib.config import load_settings

    settings = load_settings()
    result = run_query(
        settings,
        "WITH r AS (SELECT * FROM recs.user_recommendations) "
        "SELECT user_id, count(*) AS n, max(figures['n']) AS most, min(ts) AS ts, dt "
        "FROM r GROUP BY user_id, dt ORDER BY user_id",
    )
    assert result.columns == ["user_id", "n", "most", "ts", "dt"]
    assert [r[:3] for r in result.rows] == [("u1", 2, 2.0), ("u2", 1, None)]
    assert result.rows[0][4] == DAY
    assert run_query(settings, "SELECT * FROM ops.quality_checks", limit=1).rows == [
        (DAY, "t", "a", 1.0, None, True)
    ]
    assert main(["query", "SELECT user_id, ts FROM recs.user_recommendations LIMIT 1",
                 "--format", "json"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == '[{"user_id": "u1", "ts": "2026-01-02T03:04:05"}]'


@pytest.mark.parametrize("sql", list(REFUSED))
def test_a_statement_that_is_not_one_read_is_refused_and_changes_nothing(
    warehouse: Path, sql: str, capsys
) -> None:
    before = _state(warehouse)
    assert main(["query", sql]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("recsys: ")
    assert REFUSED[sql] in err
    assert _state(warehouse) == before  # every table's version and every file as it was
    assert not Path("/tmp/recs.csv").exists() and not Path("/tmp/export").exists()


def test_the_parser_decides_not_the_words() -> None:
    # A SELECT that mentions DELETE passes; a DELETE spelled in lower case with a comment
    # in front is still a DELETE.
    assert checked_statement("SELECT 'DELETE FROM x' AS delete_me")
    with pytest.raises(QueryRefused, match="DELETE"):
        checked_statement("/* read */ delete from recs.user_recommendations")


def test_a_missing_table_is_named_and_not_created(tmp_path: Path, monkeypatch) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    with pytest.raises(MissingTableError, match=r"ops\.stage_runs does not exist"):
        run_query(settings, "SELECT * FROM ops.stage_runs")
    assert not Path(settings.warehouse).exists()


def test_history_lists_commits_newest_first_and_refuses_other_names(warehouse: Path) -> None:
    from recsys_lib.config import load_settings

    settings = load_settings()
    history = table_history(settings, "recs.user_recommendations")
    assert history.columns[:3] == ["version", "timestamp", "operation"]
    assert [r[0] for r in history.rows] == [0]
    with pytest.raises(QueryRefused, match="no table 'x; drop'"):
        table_history(settings, "x; drop")
