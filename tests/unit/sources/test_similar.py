import dataclasses

import numpy as np
import pytest

from recsys_lib import constants as C
from recsys_lib.models.als import BACKENDS, AlsModel, train_model
from recsys_lib.models.scoring import normalise_rows, top_k_similar
from recsys_lib.sources.similar import similar_items

R = 2**-0.5  # cos 45 degrees
# Item ids and factors by hand: 10 and 20 point the same way, 30 is orthogonal to both, 40
# sits between them, 50 has no direction (zero row), 60 points away from 10 and 20.
IDS = np.array([10, 20, 30, 40, 50, 60], dtype=np.int64)
FACTORS = np.array(
    [[1, 0], [2, 0], [0, 3], [1, 1], [0, 0], [-1, 0]],
    dtype=np.float32,
)
# Each item's neighbours by cosine, best first, ties to the smaller id (self and 50 never).
EXPECTED = {
    10: [(20, 1.0), (40, R), (30, 0.0), (60, -1.0)],
    20: [(10, 1.0), (40, R), (30, 0.0), (60, -1.0)],
    30: [(40, R), (10, 0.0), (20, 0.0), (60, 0.0)],
    40: [(10, R), (20, R), (30, R), (60, -R)],
    60: [(30, 0.0), (40, -R), (10, -1.0), (20, -1.0)],
}


def as_lists(item, rank, neighbour, score):
    got: dict[int, list[tuple[int, float]]] = {}
    for i, r, n, s in zip(item, rank, neighbour, score, strict=True):
        got.setdefault(int(i), []).append((int(n), float(s)))
        assert r == len(got[int(i)]), "ranks run 1, 2, ... in order"
    return got


def assert_lists(got, expected, k) -> None:
    expected = {item: pairs[:k] for item, pairs in expected.items()}
    assert {i: [n for n, _ in p] for i, p in got.items()} == {
        i: [n for n, _ in p] for i, p in expected.items()
    }
    for item, pairs in expected.items():
        assert [s for _, s in got[item]] == pytest.approx([s for _, s in pairs], abs=1e-6)


def test_normalised_rows_have_unit_norm_and_zero_rows_stay_zero() -> None:
    normed = normalise_rows(FACTORS)
    assert normed.dtype == np.float32
    norms = np.linalg.norm(normed, axis=1)
    assert norms.tolist() == pytest.approx([1, 1, 1, 1, 0, 1], abs=1e-7)
    assert not np.isnan(normed).any()


@pytest.mark.parametrize("k", [1, 2, 3, 4, 10])
def test_kernel_exact_top_k_self_excluded_ties_by_id(k) -> None:
    normed = normalise_rows(FACTORS)
    item, rank, neighbour, score = top_k_similar(np.arange(len(IDS)), normed, IDS, k)
    got = as_lists(IDS[item], rank, IDS[neighbour], score)
    # k=2 cuts 40's three-way tie at R and 30's at 0.0: the smaller ids get in.
    assert_lists(got, EXPECTED, k)
    assert 50 not in got, "a zero factor row gets no neighbours"


def test_kernel_scores_any_subset_of_rows_the_same_way() -> None:
    normed = normalise_rows(FACTORS)
    whole = top_k_similar(np.arange(len(IDS)), normed, IDS, 3)
    parts = [top_k_similar(np.array(rows), normed, IDS, 3) for rows in ([3], [0, 1], [2, 4, 5])]
    joined = [np.concatenate([p[i] for p in parts]) for i in range(4)]
    order = np.lexsort((joined[1], joined[0]))
    for a, b in zip(whole, joined, strict=True):
        assert np.array_equal(a, b[order])


def test_similar_items_in_batches_give_the_same_rows(spark) -> None:
    model = AlsModel(np.array(["u"]), IDS, np.ones((1, 2), np.float32), FACTORS.astype(np.float32))
    results = {}
    for batch_rows in (1, 4, 100):
        frame = similar_items(spark, model, top_n=3, batch_rows=batch_rows)
        assert frame.schema.simpleString() == (
            "struct<item_id:bigint,rank:int,similar_item_id:bigint,score:double>"
        )
        rows = sorted(tuple(r) for r in frame.collect())
        results[batch_rows] = rows
        got = as_lists(*zip(*rows, strict=True))
        assert_lists(got, EXPECTED, 3)
    assert results[1] == results[4] == results[100]


def test_similar_items_rejects_a_non_positive_top_n(spark) -> None:
    model = AlsModel(np.array(["u"]), IDS, np.ones((1, 2), np.float32), FACTORS)
    with pytest.raises(ValueError, match="top_n and batch_rows"):
        similar_items(spark, model, top_n=0, batch_rows=10)


# --- planted structure ----------------------------------------------------------------------

CLUSTERS, ITEMS_PER_CLUSTER, USERS_PER_CLUSTER, ITEMS_PER_USER = 3, 12, 40, 6
TOP_N = 5


def cluster_of(item: int) -> int:
    return item // 100


def planted_pairs(spark):
    """Users of cluster c interact only with items c00..c11 (c = 1..3), a random 6 each."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(1, CLUSTERS + 1):
        items = np.arange(ITEMS_PER_CLUSTER) + 100 * c
        for u in range(USERS_PER_CLUSTER):
            for item in rng.choice(items, ITEMS_PER_USER, replace=False):
                rows.append((f"c{c}-u{u:02d}", int(item), float(rng.integers(1, 4))))
    return spark.createDataFrame(rows, f"{C.USER_ID} string, {C.ITEM_ID} bigint, weight double")


def neighbours(spark, model) -> dict[int, list[int]]:
    got: dict[int, list[int]] = {}
    for r in similar_items(spark, model, TOP_N, batch_rows=16).orderBy(C.ITEM_ID, C.RANK).collect():
        got.setdefault(r[C.ITEM_ID], []).append(r[C.SIMILAR_ITEM_ID])
    return got


def in_cluster_share(got: dict[int, list[int]]) -> float:
    """Share of items whose top neighbours all lie in their own cluster."""
    return float(
        np.mean([all(cluster_of(n) == cluster_of(i) for n in ns) for i, ns in got.items()])
    )


def planted_als(settings, backend: str):
    return dataclasses.replace(
        settings.als, backend=backend, factors=8, iterations=15, regularization=0.05
    )


def users_in_their_cluster(model: AlsModel) -> float:
    """Share of users whose best-scored item is in their own cluster (rows aligned with ids)."""
    best = model.item_ids[np.argmax(model.user_factors @ model.item_factors.T, axis=1)]
    users = [int(u.split("-")[0][1:]) for u in model.user_ids]
    return float(np.mean([cluster_of(int(i)) == c for i, c in zip(best, users, strict=True)]))


def test_implicit_similar_items_stay_in_their_planted_cluster(spark, settings) -> None:
    model, figures = train_model(spark, planted_pairs(spark), planted_als(settings, "implicit"))
    assert figures["n_items"] == CLUSTERS * ITEMS_PER_CLUSTER
    got = neighbours(spark, model)
    assert sorted(got) == sorted(model.item_ids.tolist())
    assert all(len(ns) == TOP_N for ns in got.values())
    # Threshold: every item's 5 neighbours are in its own cluster (by chance: 0.14 %).
    assert in_cluster_share(got) == 1.0


def test_both_backends_recover_the_planted_neighbours_and_agree(spark, settings) -> None:
    pairs = planted_pairs(spark).cache()
    models = {b: train_model(spark, pairs, planted_als(settings, b))[0] for b in BACKENDS}
    implicit, mllib = models["implicit"], models["spark"]
    # Same output contract: sorted ids, rows aligned with them, float32.
    assert implicit.user_ids.tolist() == mllib.user_ids.tolist() == sorted(mllib.user_ids)
    assert implicit.item_ids.tolist() == mllib.item_ids.tolist() == sorted(mllib.item_ids)
    for model in models.values():
        assert model.user_factors.dtype == model.item_factors.dtype == np.float32
        assert model.user_factors.shape == (CLUSTERS * USERS_PER_CLUSTER, 8)
        assert model.item_factors.shape == (CLUSTERS * ITEMS_PER_CLUSTER, 8)
        assert users_in_their_cluster(model) == 1.0
    got = {b: neighbours(spark, m) for b, m in models.items()}
    # Threshold: >= 90 % of items have all 5 neighbours in their own cluster, per backend
    # (measured: 100 % for both; by chance 0.14 %).
    for backend, lists in got.items():
        assert in_cluster_share(lists) >= 0.9, backend
    # Threshold: the backends share >= 70 % of each item's 5 neighbours on average (measured
    # 86 %); two random 5-subsets of the 11 cluster mates share 5/11 = 45 %.
    a, b = got["implicit"], got["spark"]
    overlap = np.mean([len(set(a[i]) & set(b[i])) / TOP_N for i in a])
    assert overlap >= 0.7
    pairs.unpersist()
