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
    window_bounds,
)


def test_window_bounds_include_the_run_date() -> None:
    assert window_bounds(dt.date(2026, 3, 30), 30) == (dt.date(2026, 3, 1), dt.date(2026, 3, 30))


def test_confidence_sums_event_weights(spark) -> None:
    events = spark.createDataFrame(
        [
            ("u", 1, "view"),
            ("u", 1, "view"),
            ("u", 1, "purchase"),
            ("u", 2, "cart"),
            ("v", 3, "other"),
        ],
        f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.EVENT_TYPE} string",
    )
    got = {
        (r[0], r[1]): r[2]
        for r in interactions(events, {"view": 1, "cart": 4, "purchase": 8}).collect()
    }
    assert got == {("u", 1): 10.0, ("u", 2): 4.0}


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
    with pytest.raises(AlsMemoryError, match="max_matrix_mb=0.*Spark MLlib backend"):
        build_matrix(spark, pairs, tiny)
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
