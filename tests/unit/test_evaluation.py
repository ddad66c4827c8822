"""Ranking and beyond-accuracy metrics of recsys_lib.evaluation on hand-made cases."""

from __future__ import annotations

from math import log2
from pathlib import Path

import pytest

from recsys_lib import constants as C
from recsys_lib.evaluation import (
    CATALOG_COVERAGE,
    DIVERSITY,
    HIT_RATE,
    MAP,
    NDCG,
    NOVELTY,
    POPULARITY_BIAS,
    POPULARITY_PERCENTILE,
    PRECISION,
    RANKING_METRICS,
    RECALL,
    RELEVANCE,
    USERS_EVALUATED,
    Figure,
    beyond_accuracy_metrics,
    metrics_plot,
    popularity_percentiles,
    ranking_metrics,
)

LISTS = f"{C.VARIANT} string, {C.USER_ID} string, {C.ITEM_ID} bigint, {C.RANK} int"
RELEVANT = f"{C.USER_ID} string, {C.ITEM_ID} bigint, {RELEVANCE} double"
USERS = f"{C.USER_ID} string"
CATEGORIES = f"{C.ITEM_ID} bigint, {C.CATEGORY_ID} bigint"
POPULARITY = f"{C.ITEM_ID} bigint, {C.USERS} bigint"

A, B, C_, D, X, Y, Z = 1, 2, 3, 4, 10, 11, 12  # item ids


def _lists(spark, rows):
    return spark.createDataFrame(rows, LISTS)


def _relevant(spark, rows):
    return spark.createDataFrame(rows, RELEVANT)


def _by_key(figures: list[Figure]) -> dict[tuple[str, str, int], float]:
    return {(variant, metric, k): value for variant, metric, k, value in figures}


def _ranked(variant: str, user: str, items: list[int]) -> list[tuple[str, str, int, int]]:
    return [(variant, user, item, rank) for rank, item in enumerate(items, start=1)]


def test_hand_case_with_hits_at_ranks_1_and_3(spark) -> None:
    # u1: relevant {a, b}, list [a, x, b] (hits at 1 and 3);
    # u2: relevant {c},    list [y, c, z] (hit at 2).
    # k = 1: u1 P=1 R=1/2 NDCG=1 AP=1/min(2,1)=1 hit; u2 all 0.
    # k = 3: u1 P=2/3 R=1 DCG=1+1/log2(4)=1.5 IDCG=1+1/log2(3) AP=(1/1+2/3)/min(2,3)=5/6
    #        u2 P=1/3 R=1 DCG=IDCG*1/log2(3) with IDCG=1           AP=(1/2)/min(1,3)=1/2
    lists = _lists(spark, _ranked("v", "u1", [A, X, B]) + _ranked("v", "u2", [Y, C_, Z]))
    relevant = _relevant(spark, [("u1", A, 1.0), ("u1", B, 1.0), ("u2", C_, 1.0)])
    got = _by_key(ranking_metrics(lists, relevant, ks=[3, 1]))
    expected = {
        (PRECISION, 1): 0.5,
        (RECALL, 1): 0.25,
        (NDCG, 1): 0.5,
        (MAP, 1): 0.5,
        (HIT_RATE, 1): 0.5,
        (PRECISION, 3): 0.5,
        (RECALL, 3): 1.0,
        (NDCG, 3): (1.5 / (1 + 1 / log2(3)) + 1 / log2(3)) / 2,
        (MAP, 3): (5 / 6 + 1 / 2) / 2,
        (HIT_RATE, 3): 1.0,
    }
    assert got == {("v", m, k): pytest.approx(v) for (m, k), v in expected.items()} | {
        ("v", USERS_EVALUATED, 0): 2.0
    }


def test_perfect_ranking_scores_one(spark) -> None:
    lists = _lists(spark, _ranked("v", "u", [A, B, X]))
    relevant = _relevant(spark, [("u", A, 1.0), ("u", B, 1.0)])
    got = _by_key(ranking_metrics(lists, relevant, ks=[2, 5]))
    for k in (2, 5):  # k >= |relevant|
        for metric in (RECALL, NDCG, MAP, HIT_RATE):
            assert got[("v", metric, k)] == pytest.approx(1.0), (metric, k)
    assert got[("v", PRECISION, 2)] == pytest.approx(1.0)
    assert got[("v", PRECISION, 5)] == pytest.approx(2 / 5)  # hits / k, even past the list


def test_map_at_k_divides_by_min_of_relevant_and_k(spark) -> None:
    # Three relevant items, a perfect list of two: AP@2 = (1/1 + 2/2) / min(3, 2) = 1, while
    # recall@2 = 2/3 (Recommenders' map(), dividing by |relevant|, would give 2/3).
    lists = _lists(spark, _ranked("v", "u", [A, B]))
    relevant = _relevant(spark, [("u", A, 1.0), ("u", B, 1.0), ("u", C_, 1.0)])
    got = _by_key(ranking_metrics(lists, relevant, ks=[2]))
    assert got[("v", MAP, 2)] == pytest.approx(1.0)
    assert got[("v", RECALL, 2)] == pytest.approx(2 / 3)
    assert got[("v", NDCG, 2)] == pytest.approx(1.0)


def test_misses_and_a_user_without_a_list_score_zero(spark) -> None:
    # u1's list holds no relevant item; u2 has no list at all.
    lists = _lists(spark, _ranked("v", "u1", [X, Y]))
    relevant = _relevant(spark, [("u1", A, 1.0), ("u2", B, 2.0)])
    got = _by_key(ranking_metrics(lists, relevant, ks=[1, 2]))
    for metric in RANKING_METRICS:
        for k in (1, 2):
            assert got[("v", metric, k)] == 0.0
    assert got[("v", USERS_EVALUATED, 0)] == 2.0
    empty = _lists(spark, [])
    assert ranking_metrics(empty, relevant, ks=[1]) == []


def test_graded_relevance_and_ties_in_the_ideal_ranking(spark) -> None:
    # Relevance a=2, b=2, c=1: [b, a, c] and [a, b, c] are both ideal; a tie must not give
    # b and a the same ideal position (that would push NDCG above 1).
    # Linear gain: [c, a] has DCG@2 = 1/1 + 2/log2(3) and IDCG@2 = 2/1 + 2/log2(3).
    relevant = _relevant(spark, [("u", A, 2.0), ("u", B, 2.0), ("u", C_, 1.0)])
    lists = _lists(
        spark,
        _ranked("ba", "u", [B, A, C_])
        + _ranked("ab", "u", [A, B, C_])
        + _ranked("ca", "u", [C_, A]),
    )
    got = _by_key(ranking_metrics(lists, relevant, ks=[2, 3]))
    for variant in ("ab", "ba"):
        assert got[(variant, NDCG, 2)] == pytest.approx(1.0)
        assert got[(variant, NDCG, 3)] == pytest.approx(1.0)
    assert got[("ca", NDCG, 2)] == pytest.approx((1 + 2 / log2(3)) / (2 + 2 / log2(3)))


def test_positions_follow_the_ranks_even_with_gaps(spark) -> None:
    lists = _lists(spark, [("v", "u", X, 4), ("v", "u", A, 9)])
    relevant = _relevant(spark, [("u", A, 1.0)])
    got = _by_key(ranking_metrics(lists, relevant, ks=[2]))
    assert got[("v", MAP, 2)] == pytest.approx(0.5)  # A is second: precision@2 = 1/2
    assert got[("v", NDCG, 2)] == pytest.approx(1 / log2(3))


def test_users_argument_chooses_who_is_evaluated(spark) -> None:
    # u1 hit, u2 hit, u4 relevant but no list, u3 in `users` without a relevant item.
    lists = _lists(spark, _ranked("v", "u1", [A]) + _ranked("v", "u2", [C_]))
    relevant = _relevant(spark, [("u1", A, 1.0), ("u2", C_, 1.0), ("u4", D, 1.0)])
    default = _by_key(ranking_metrics(lists, relevant, ks=[1]))
    assert default[("v", HIT_RATE, 1)] == pytest.approx(2 / 3)
    assert default[("v", USERS_EVALUATED, 0)] == 3.0
    users = spark.createDataFrame([("u1",), ("u3",), ("u4",)], USERS)
    chosen = _by_key(ranking_metrics(lists, relevant, ks=[1], users=users))
    assert chosen[("v", HIT_RATE, 1)] == pytest.approx(1 / 2)  # u1 and u4; u2 ignored
    assert chosen[("v", USERS_EVALUATED, 0)] == 2.0


def test_two_variants_in_one_call(spark) -> None:
    lists = _lists(
        spark,
        _ranked("good", "u", [A, X])
        + _ranked("bad", "u", [X, A])
        + _ranked("others", "stranger", [A]),  # only lists of users not evaluated
    )
    relevant = _relevant(spark, [("u", A, 1.0)])
    figures = ranking_metrics(lists, relevant, ks=[1, 2])
    got = _by_key(figures)
    assert {v for v, *_ in figures} == {"good", "bad", "others"}
    assert got[("good", PRECISION, 1)] == 1.0
    assert got[("bad", PRECISION, 1)] == 0.0
    assert got[("bad", MAP, 2)] == pytest.approx(0.5)
    assert got[("bad", NDCG, 2)] == pytest.approx(1 / log2(3))
    assert got[("others", HIT_RATE, 2)] == 0.0
    assert got[("others", USERS_EVALUATED, 0)] == 1.0


def test_cut_offs_must_be_positive(spark) -> None:
    lists = _lists(spark, _ranked("v", "u", [A]))
    relevant = _relevant(spark, [("u", A, 1.0)])
    with pytest.raises(ValueError, match="at least 1"):
        ranking_metrics(lists, relevant, ks=[0, 5])


# Beyond accuracy. Items 1..5 are recommended, item 6 only has a popularity.
# Categories: 1 -> 100, 2 -> 100, 3 -> 200, 4 -> null, 5 -> missing (both count as -1).
# Popularity (users of 7): 1: 7, 2: 3, 3: 3, 4: 1, 6: 0, 5: missing.
#   novelty -log2((users + 1) / 8): item 1: 0, items 2 and 3: 1, item 4: 2, items 5, 6: 3.
#   percentile by position among 5 items, ascending: 6 -> 1, 4 -> 2, 2 and 3 -> 3.5 (tie),
#   1 -> 5; (position - 1) / 4: 6: 0, 4: 0.25, 2 and 3: 0.625, 1: 1; item 5: 0.
CATEGORY_ROWS = [(1, 100), (2, 100), (3, 200), (4, None)]
POPULARITY_ROWS = [(1, 7), (2, 3), (3, 3), (4, 1), (6, 0)]


def test_popularity_percentiles_share_ties_and_average_one_half(spark) -> None:
    popularity = spark.createDataFrame(POPULARITY_ROWS, POPULARITY)
    rows = popularity_percentiles(popularity).collect()
    got = {r[C.ITEM_ID]: r[POPULARITY_PERCENTILE] for r in rows}
    assert got == pytest.approx({6: 0.0, 4: 0.25, 2: 0.625, 3: 0.625, 1: 1.0})
    assert sum(got.values()) / len(got) == pytest.approx(0.5)
    lone = spark.createDataFrame([(1, 5)], POPULARITY)
    assert popularity_percentiles(lone).first()[POPULARITY_PERCENTILE] == 0.5


def test_beyond_accuracy_hand_case(spark) -> None:
    # Variant v: u1 [1, 2, 3], u2 [4, 5] (ranks 2 and 7), u3 [1]; variant w: u1 [6].
    # k = 1: top items 1, 4, 1. coverage 2/10; novelty (0 + 2 + 0)/3; no list of two items,
    #        so diversity 0; popularity bias (1 + 0.25 + 1)/3.
    # k = 3: coverage 5/10; novelty (0+1+1 + 2+3 + 0)/6; diversity: u1 has categories
    #        100, 100, 200 -> 2 of 3 pairs differ, u2 has -1, -1 -> 0, u3 has one item, so
    #        (2/3 + 0)/2; popularity bias u1 (1 + 0.625 + 0.625)/3, u2 (0.25 + 0)/2, u3 1.
    lists = _lists(
        spark,
        _ranked("v", "u1", [1, 2, 3])
        + [("v", "u2", 4, 2), ("v", "u2", 5, 7)]
        + _ranked("v", "u3", [1])
        + _ranked("w", "u1", [6]),
    )
    categories = spark.createDataFrame(CATEGORY_ROWS, CATEGORIES)
    popularity = spark.createDataFrame(POPULARITY_ROWS, POPULARITY)
    figures = beyond_accuracy_metrics(
        lists, categories, popularity, n_users=7, catalogue_size=10, ks=[1, 3]
    )
    expected = {
        ("v", CATALOG_COVERAGE, 1): 0.2,
        ("v", NOVELTY, 1): 2 / 3,
        ("v", DIVERSITY, 1): 0.0,
        ("v", POPULARITY_BIAS, 1): 0.75,
        ("v", CATALOG_COVERAGE, 3): 0.5,
        ("v", NOVELTY, 3): 7 / 6,
        ("v", DIVERSITY, 3): 1 / 3,
        ("v", POPULARITY_BIAS, 3): (0.75 + 0.125 + 1.0) / 3,
        ("w", CATALOG_COVERAGE, 1): 0.1,
        ("w", NOVELTY, 1): 3.0,
        ("w", DIVERSITY, 1): 0.0,
        ("w", POPULARITY_BIAS, 1): 0.0,
    }
    got = _by_key(figures)
    assert {key: got[key] for key in expected} == {
        key: pytest.approx(value) for key, value in expected.items()
    }
    assert len(figures) == 16  # 2 variants x 4 metrics x 2 cut-offs


def test_beyond_accuracy_of_one_category_lists_and_all_distinct_lists(spark) -> None:
    lists = _lists(spark, _ranked("same", "u", [1, 2]) + _ranked("apart", "u", [1, 3, 4]))
    categories = spark.createDataFrame(CATEGORY_ROWS, CATEGORIES)
    popularity = spark.createDataFrame(POPULARITY_ROWS, POPULARITY)
    got = _by_key(beyond_accuracy_metrics(lists, categories, popularity, 7, 10, ks=[3]))
    assert got[("same", DIVERSITY, 3)] == 0.0
    assert got[("apart", DIVERSITY, 3)] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="catalogue_size"):
        beyond_accuracy_metrics(lists, categories, popularity, 7, 0, ks=[3])


def test_metrics_plot_writes_a_png(tmp_path: Path) -> None:
    figures: list[Figure] = [
        (variant, metric, k, value / k)
        for variant, value in (("ranker", 1.0), ("popularity", 0.5))
        for metric in RANKING_METRICS
        for k in (5, 10, 20)
    ] + [("ranker", USERS_EVALUATED, 0, 100.0)]
    path = metrics_plot(figures, tmp_path / "plots" / "metrics.png", "holdout 2026-03-10")
    assert path == tmp_path / "plots" / "metrics.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="more than one k"):
        metrics_plot([("ranker", PRECISION, 5, 0.1)], tmp_path / "one.png", "one k")
