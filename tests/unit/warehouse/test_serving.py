"""The serving store on a real PostgreSQL server: an atomic swap that a reader in a loop
never sees half done, a rerun that replaces, an older night that does not overwrite a newer
one, and a connection that never holds a literal password."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from contextlib import closing

import pytest

from recsys_lib import constants as C
from recsys_lib.config import ConfigError, ServingSettings
from recsys_lib.warehouse.serving import connection, publish_serving, served_night
from recsys_lib.warehouse.tables import USER_RECOMMENDATIONS
from tests.conftest import table_frame

D1, D2 = dt.date(2026, 10, 9), dt.date(2026, 10, 10)


def night(spark, day: dt.date, users: int, k: int = 5):
    rows = [
        (day, f"u{u:04d}", r, 1000 + u * 7 + r, 1.0 / r, "als", "ranker/1")
        for u in range(users)
        for r in range(1, k + 1)
    ]
    return table_frame(spark, USER_RECOMMENDATIONS, rows)


@pytest.fixture()
def serving(postgres, request) -> ServingSettings:
    database = f"serving_{request.node.name[-20:].lower()}"
    postgres.create_database(database)
    return ServingSettings(enabled=True, url=postgres.url(database))


def test_a_reader_sees_the_old_set_or_the_new_one_never_a_mix(spark, serving) -> None:
    assert publish_serving(night(spark, D1, 300), serving, D1) == 1500
    conn = connection(serving)
    seen: list[tuple] = []
    stop = threading.Event()

    def read() -> None:
        with closing(conn.connect()) as db:
            db.autocommit = True
            with db.cursor() as cur:
                while not stop.is_set():
                    cur.execute(
                        "SELECT count(*), min(dt), max(dt), count(DISTINCT user_id) "
                        "FROM recsys.user_recommendations"
                    )
                    seen.append(cur.fetchone())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert publish_serving(night(spark, D2, 2000), serving, D2) == 10000
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 10
    assert set(seen) == {(1500, D1, D1, 300), (10000, D2, D2, 2000)}
    assert served_night(conn, serving) == D2


def test_a_rerun_replaces_and_an_older_night_does_not_overwrite(spark, serving) -> None:
    publish_serving(night(spark, D2, 50), serving, D2)
    assert publish_serving(night(spark, D2, 40), serving, D2) == 200  # a rerun: replaced
    assert publish_serving(night(spark, D1, 60), serving, D1) == 0  # older: not served
    conn = connection(serving)
    with closing(conn.connect()) as db, db.cursor() as cur:
        cur.execute("SELECT count(*), min(dt) FROM recsys.user_recommendations")
        assert cur.fetchone() == (200, D2)
        cur.execute(
            "SELECT item_id FROM recsys.user_recommendations WHERE user_id = %s ORDER BY rank",
            ("u0003",),
        )
        assert [r[0] for r in cur.fetchall()] == [1022, 1023, 1024, 1025, 1026]
        cur.execute("SET enable_seqscan = off")  # 200 rows: a scan would win otherwise
        cur.execute("EXPLAIN SELECT * FROM recsys.user_recommendations WHERE user_id = 'u0003'")
        assert "Index" in " ".join(r[0] for r in cur.fetchall())  # served by the key's index
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'recsys'")
        assert cur.fetchone()[0] == 2  # the table and its state: nothing left behind


def test_the_connection_never_holds_a_literal_password(postgres) -> None:
    url = postgres.url("postgres")
    with_password = url.replace("recsys@", "recsys:secret@")
    with pytest.raises(ConfigError, match="serving.url holds a password: set PGPASSWORD"):
        connection(ServingSettings(enabled=True, url=with_password))
    conn = connection(ServingSettings(enabled=True, url=url), {"PGPASSWORD": "from-env"})
    assert (conn.user, conn.password, conn.database) == ("recsys", "from-env", "postgres")
    airflow = {"AIRFLOW_CONN_RECSYS_SERVING": with_password}
    by_airflow = connection(ServingSettings(enabled=True, conn_id="recsys_serving"), airflow)
    assert by_airflow.password == "secret"  # an Airflow connection keeps its secret itself
    with pytest.raises(ConfigError, match="no Airflow connection AIRFLOW_CONN_NOPE"):
        connection(dataclasses.replace(ServingSettings(), conn_id="nope"), {})
    assert C.USER_ID in USER_RECOMMENDATIONS.column_names
