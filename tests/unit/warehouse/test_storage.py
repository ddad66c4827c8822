import dataclasses
import datetime as dt

import pytest

from recsys_lib import constants as C
from recsys_lib.dates import DayRange
from recsys_lib.warehouse.storage import (
    read_table,
    register_tables,
    table_version,
    write_partition,
    write_partitions,
)
from recsys_lib.warehouse.tables import QUALITY_CHECKS, STAGE_RUNS

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def checks(spark, day, names, table="t"):
    return spark.createDataFrame(
        [(day, table, n, 1.0, None, True) for n in names], QUALITY_CHECKS.schema
    )


def test_rewriting_a_day_leaves_one_copy(spark, settings) -> None:
    register_tables(spark, settings)
    write_partition(checks(spark, D1, ["a", "b"]), settings, QUALITY_CHECKS, D1)
    write_partition(checks(spark, D2, ["a"]), settings, QUALITY_CHECKS, D2)
    write_partition(checks(spark, D1, ["c"]), settings, QUALITY_CHECKS, D1)
    rows = sorted(
        (r[C.DT], r[C.CHECK_NAME]) for r in read_table(spark, settings, QUALITY_CHECKS).collect()
    )
    assert rows == [(D1, "c"), (D2, "a")]


def test_scope_replaces_only_its_slice(spark, settings) -> None:
    register_tables(spark, settings)
    write_partition(
        checks(spark, D1, ["a"], "x"), settings, QUALITY_CHECKS, D1, {C.TABLE_NAME: "x"}
    )
    write_partition(
        checks(spark, D1, ["b"], "y"), settings, QUALITY_CHECKS, D1, {C.TABLE_NAME: "y"}
    )
    write_partition(
        checks(spark, D1, ["c"], "x"), settings, QUALITY_CHECKS, D1, {C.TABLE_NAME: "x"}
    )
    rows = sorted(
        (r[C.TABLE_NAME], r[C.CHECK_NAME])
        for r in read_table(spark, settings, QUALITY_CHECKS).collect()
    )
    assert rows == [("x", "c"), ("y", "b")]


def test_rows_outside_the_partition_are_refused(spark, settings) -> None:
    register_tables(spark, settings)
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|violat"):
        write_partition(checks(spark, D2, ["a"]), settings, QUALITY_CHECKS, D1)
    assert read_table(spark, settings, QUALITY_CHECKS).count() == 0


def test_failed_multi_table_write_restores_earlier_tables(spark, settings) -> None:
    register_tables(spark, settings)
    write_partition(checks(spark, D1, ["old"]), settings, QUALITY_CHECKS, D1)
    version = table_version(spark, settings, QUALITY_CHECKS)
    # A row of another day: Delta refuses the stage_runs commit while the checks commit.
    outside = spark.createDataFrame(
        [(D2, "stage", 1.0, dt.datetime(2026, 1, 2), {})], STAGE_RUNS.schema
    )
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|violat"):
        write_partitions(
            spark,
            settings,
            [(QUALITY_CHECKS, checks(spark, D1, ["new"]), {}), (STAGE_RUNS, outside, {})],
            D1,
        )
    names = [r[C.CHECK_NAME] for r in read_table(spark, settings, QUALITY_CHECKS).collect()]
    assert names == ["old"]
    # the stage's own commit, then the one that put its slice back
    assert table_version(spark, settings, QUALITY_CHECKS) == version + 2
    assert read_table(spark, settings, STAGE_RUNS).count() == 0


def test_a_rollback_reverts_its_own_slice_and_keeps_another_run_s_commit(
    spark, settings, monkeypatch
) -> None:
    from recsys_lib.warehouse import storage

    register_tables(spark, settings)
    write_partition(checks(spark, D1, ["old"]), settings, QUALITY_CHECKS, D1)
    real_write = storage.write_partition

    def other_run_then_fail(df, settings_, table, days, scope=None):
        if table is STAGE_RUNS:
            # Another run commits day D2 of the same table while this one writes D1 ...
            real_write(checks(spark, D2, ["other run"]), settings_, QUALITY_CHECKS, D2)
            raise RuntimeError("stage_runs write failed")  # ... then this run fails.
        real_write(df, settings_, table, days, scope)

    monkeypatch.setattr(storage, "write_partition", other_run_then_fail)
    with pytest.raises(RuntimeError, match="stage_runs write failed"):
        write_partitions(
            spark,
            settings,
            [
                (QUALITY_CHECKS, checks(spark, D1, ["new"]), {}),
                (STAGE_RUNS, spark.createDataFrame([], STAGE_RUNS.schema), {}),
            ],
            D1,
        )
    by_day = {
        (r[C.DT], r[C.CHECK_NAME]) for r in read_table(spark, settings, QUALITY_CHECKS).collect()
    }
    assert by_day == {(D1, "old"), (D2, "other run")}  # D1 put back, D2's commit kept


def test_a_missing_column_fails_before_anything_is_written(spark, settings) -> None:
    register_tables(spark, settings)
    version = table_version(spark, settings, QUALITY_CHECKS)
    broken = spark.createDataFrame([(D1, "stage")], f"{C.DT} date, {C.STAGE} string")
    with pytest.raises(ValueError, match="missing columns"):
        write_partitions(
            spark,
            settings,
            [(QUALITY_CHECKS, checks(spark, D1, ["new"]), {}), (STAGE_RUNS, broken, {})],
            D1,
        )
    assert table_version(spark, settings, QUALITY_CHECKS) == version


def test_a_range_replaces_exactly_its_days(spark, settings) -> None:
    register_tables(spark, settings)
    d3 = D2 + dt.timedelta(days=1)
    for day in (D1, D2, d3):
        write_partition(checks(spark, day, ["day"]), settings, QUALITY_CHECKS, day)
    both = checks(spark, D1, ["range"]).unionByName(checks(spark, D2, ["range"]))
    write_partition(both, settings, QUALITY_CHECKS, DayRange(D1, D2))
    rows = sorted(
        (r[C.DT], r[C.CHECK_NAME]) for r in read_table(spark, settings, QUALITY_CHECKS).collect()
    )
    assert rows == [(D1, "range"), (D2, "range"), (d3, "day")]


def test_registration_follows_the_warehouse_and_keeps_data(spark, settings, tmp_path) -> None:
    register_tables(spark, settings)
    write_partition(checks(spark, D1, ["kept"]), settings, QUALITY_CHECKS, D1)
    other = dataclasses.replace(
        settings, paths=dataclasses.replace(settings.paths, warehouse=str(tmp_path / "other"))
    )
    register_tables(spark, other)
    assert spark.sql("SELECT count(*) FROM ops.quality_checks").first()[0] == 0
    register_tables(spark, settings)
    assert spark.sql("SELECT check_name FROM ops.quality_checks").first()[0] == "kept"


def test_a_table_of_an_earlier_version_gains_the_contracts_new_columns(spark, settings) -> None:
    from delta.tables import DeltaTable

    from recsys_lib.warehouse.storage import (
        STATS_COLUMNS,
        create_missing_tables,
        delta_columns,
        delta_property,
        table_path,
    )
    from recsys_lib.warehouse.tables import CLEAN_EVENTS

    path = table_path(settings, CLEAN_EVENTS)
    old = [c for c in CLEAN_EVENTS.schema.fields if c.name not in (C.CATEGORY_ID, C.PRICE)]
    DeltaTable.create(spark).location(path).addColumns(old).partitionedBy(C.DT).execute()
    assert delta_columns(spark, path) == [c.name for c in old]
    create_missing_tables(spark, settings)
    assert delta_columns(spark, path) == CLEAN_EVENTS.column_names
    # ... and no longer keeps statistics of its user column (an erased id would stay there).
    stats = delta_property(spark, path, STATS_COLUMNS)
    assert stats == ",".join(CLEAN_EVENTS.stats_columns) and C.USER_ID not in stats.split(",")
    create_missing_tables(spark, settings)  # nothing left to add
    assert table_version(spark, settings, CLEAN_EVENTS) == 2
