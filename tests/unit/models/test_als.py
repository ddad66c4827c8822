import dataclasses
import datetime as dt

import numpy as np
import pytest

from recsys_lib import constants as C
from recsys_lib.models.als import (
    AlsMemoryError,
    AlsModel,
    build_matrix,
    fit,
    interactions,
    memory_bound_mb,
    train_model,
)
from recsys_lib.models.scoring import block_rows, top_k_for_users
from recsys_lib.stages.train_als import train_als
from tests.conftest import table_frame

RUN_DATE = dt.date(2026, 3, 30)
EVENTS_DDL = f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.EVENT_TYPE} string, {C.DT} date"


def days_ago(n: int) -> dt.date:
    return RUN_DATE - dt.timedelta(days=n)


EVENTS = [
    ("u", 1, "view", days_ago(0)),
    ("u", 1, "view", days_ago(1)),
    ("u", 1, "purchase", days_ago(2)),
    ("u", 2, "cart", days_ago(3)),
    ("v", 3, "other", days_ago(0)),  # no weight: the pair is dropped
    ("v", 4, "cart", days_ago(6)),
]


def weights_of(spark, settings, half_life_days: float) -> dict[tuple[str, int], float]:
    events = spark.createDataFrame(EVENTS, EVENTS_DDL)
    als = dataclasses.replace(
        settings.als,
        event_weights={"view": 1, "cart": 4, "purchase": 8},
        half_life_days=half_life_days,
    )
    return {(r[0], r[1]): r[2] for r in interactions(events, als, RUN_DATE).collect()}


def test_confidence_sums_event_weights_without_decay(spark, settings) -> None:
    got = weights_of(spark, settings, half_life_days=0)
    assert got == {("u", 1): 10.0, ("u", 2): 4.0, ("v", 4): 4.0}


def test_confidence_halves_every_half_life(spark, settings) -> None:
    # Half-life 2 days: weight x 0.5 ** (age / 2), age = run date - event day.
    got = weights_of(spark, settings, half_life_days=2)
    expected = {
        ("u", 1): 1 * 1.0 + 1 * 0.5**0.5 + 8 * 0.5**1,  # 1 + 0.7071 + 4 = 5.7071
        ("u", 2): 4 * 0.5**1.5,  # 1.4142
        ("v", 4): 4 * 0.5**3,  # 0.5
    }
    assert got.keys() == expected.keys()
    for pair, value in expected.items():
        assert got[pair] == pytest.approx(value, abs=1e-6), pair
    assert got[("u", 1)] == pytest.approx(5.7071068, abs=1e-6)


def test_matrix_is_indexed_in_sorted_id_order(spark, settings) -> None:
    pairs = spark.createDataFrame(
        [("b", 20, 1.0), ("a", 10, 2.0), ("a", 30, 3.0)],
        f"{C.USER_ID} string, {C.ITEM_ID} bigint, weight double",
    )
    matrix, users, items = build_matrix(spark, pairs, settings.als)
    assert users.tolist() == ["a", "b"] and items.tolist() == [10, 20, 30]
    assert matrix.toarray().tolist() == [[2.0, 0.0, 3.0], [0.0, 1.0, 0.0]]


def test_memory_bound_refuses_with_advice(spark, settings) -> None:
    pairs = spark.createDataFrame(
        [("a", 1, 1.0)], f"{C.USER_ID} string, {C.ITEM_ID} bigint, weight double"
    )
    tiny = dataclasses.replace(settings.als, max_matrix_mb=0)
    with pytest.raises(AlsMemoryError, match=r"max_matrix_mb=0\. Set `als\.backend: spark`"):
        build_matrix(spark, pairs, tiny)
    with pytest.raises(AlsMemoryError, match="als.backend: spark"):
        train_model(spark, pairs, tiny)
    assert memory_bound_mb(1_000_000, 200_000, 10_000_000, 64) > 500


def test_fit_is_deterministic_and_version_is_a_content_hash(settings) -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    dense = (rng.random((40, 30)) < 0.2) * rng.integers(1, 5, (40, 30))
    matrix = sp.csr_matrix(dense.astype(np.float32))
    als = dataclasses.replace(settings.als, factors=8, iterations=5)
    a, b = fit(matrix, als), fit(matrix, als)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    users, items = np.array([f"u{i}" for i in range(40)]), np.arange(30, dtype=np.int64)
    m1, m2 = AlsModel(users, items, *a), AlsModel(users, items, *b)
    assert m1.version == m2.version and m1.version.startswith("als-")
    other = fit(matrix, dataclasses.replace(als, seed=7))
    assert AlsModel(users, items, *other).version != m1.version


def test_model_round_trips_through_a_file(tmp_path) -> None:
    model = AlsModel(
        np.array(["x" * 64, "y" * 64]),
        np.array([5, 6], dtype=np.int64),
        np.ones((2, 3), np.float32),
        np.zeros((2, 3), np.float32),
    )
    model.save(tmp_path / "m.npz")
    loaded = AlsModel.load(tmp_path / "m.npz")
    assert loaded.version == model.version and loaded.user_ids.tolist() == ["x" * 64, "y" * 64]


def test_an_unknown_backend_raises_before_any_work(spark, settings) -> None:
    pairs = spark.createDataFrame(
        [("a", 1, 1.0)], f"{C.USER_ID} string, {C.ITEM_ID} bigint, weight double"
    )
    mahout = dataclasses.replace(settings.als, backend="mahout")
    with pytest.raises(ValueError, match="unknown als.backend 'mahout'; choose one of: implicit"):
        train_model(spark, pairs, mahout)
    # The stage refuses it before reading clean.events (which this warehouse does not have).
    with pytest.raises(ValueError, match="unknown als.backend"):
        train_als(spark, dataclasses.replace(settings, als=mahout), RUN_DATE)


@pytest.mark.slow
def test_train_als_writes_similar_items_and_a_rerun_gives_the_same_rows(spark, settings) -> None:
    from recsys_lib.models.als import load_model
    from recsys_lib.warehouse.storage import create_missing_tables, read_partition, write_partition
    from recsys_lib.warehouse.tables import CLEAN_EVENTS, QUALITY_CHECKS, SIMILAR_ITEMS

    rng = np.random.default_rng(3)
    rows = []
    for c in (1, 2):  # users of cluster c view and cart items c00..c07 only
        for u in range(15):
            for item in rng.choice(np.arange(8) + 100 * c, 4, replace=False):
                age = int(rng.integers(0, 3))
                event = ("view", "cart")[int(rng.integers(0, 2))]
                rows.append((days_ago(age), f"c{c}u{u}", int(item), event, age))
    create_missing_tables(spark, settings)
    for age in range(3):
        day = days_ago(age)
        frame = table_frame(
            spark,
            CLEAN_EVENTS,
            [
                (d, dt.datetime.combine(d, dt.time(12)), user, item, event, None, "test")
                for d, user, item, event, a in rows
                if a == age
            ],
        )
        write_partition(frame, settings, CLEAN_EVENTS, day)
    als = dataclasses.replace(
        settings.als, factors=8, iterations=10, similar_top_n=3, similar_batch_rows=5
    )
    settings = dataclasses.replace(settings, als=als)

    figures = train_als(spark, settings, RUN_DATE)
    first = sorted(
        tuple(r) for r in read_partition(spark, settings, SIMILAR_ITEMS, RUN_DATE).collect()
    )
    model, _ = load_model(settings, RUN_DATE)
    assert figures["n_items"] == 16 and figures["rows.recs.similar_items"] == 16 * 3 == len(first)
    assert {r[-1] for r in first} == {model.version}
    assert all(r[2] // 100 == r[4] // 100 for r in first), "neighbours stay in their cluster"
    checks = read_partition(spark, settings, QUALITY_CHECKS, RUN_DATE).filter(
        f"{C.TABLE_NAME} = '{SIMILAR_ITEMS.name}'"
    )
    assert checks.filter(f"NOT {C.PASSED}").count() == 0 and checks.count() > 0

    train_als(spark, settings, RUN_DATE)
    again = sorted(
        tuple(r) for r in read_partition(spark, settings, SIMILAR_ITEMS, RUN_DATE).collect()
    )
    assert again == first


def test_scoring_blocks_stay_within_their_bound_and_refuse_a_row_that_cannot() -> None:
    assert block_rows(100_000, 256, "candidates.als_block_mb") == 256 * 2**20 // 800_000
    assert block_rows(10, 1, "x") == 2**20 // 80
    with pytest.raises(MemoryError, match="candidates.als_block_mb = 1 MiB"):
        block_rows(200_000, 1, "candidates.als_block_mb")
    # Users are scored row by row: a block's split does not change anyone's list.
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(50, 4))
    item_ids, none = np.arange(50, dtype=np.int64) * 3, [np.zeros(0, np.int64)] * 7
    whole = top_k_for_users(users, none, item_ids, items.astype(np.float32), 5)
    parts = [
        top_k_for_users(users[i : i + 2], none[:2], item_ids, items.astype(np.float32), 5)
        for i in range(0, 7, 2)
    ]
    assert np.array_equal(whole[0], np.vstack([p[0] for p in parts]))
