"""The recommend stage's ranking rules and its write-audit-publish."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.models.scoring import top_k_for_users, top_k_rows
from recsys_lib.stages.recommend import audit, best_source, top_k
from recsys_lib.warehouse.publish import publish, staging_path, write_staged
from recsys_lib.warehouse.quality import QualityCheckError
from recsys_lib.warehouse.storage import create_missing_tables, read_table
from recsys_lib.warehouse.tables import CANDIDATES, QUALITY_CHECKS, USER_RECOMMENDATIONS
from tests.conftest import make_settings

DAY = dt.date(2026, 3, 10)
PAIRS = f"{C.USER_ID} string, {C.ITEM_ID} bigint"


def test_top_k_excludes_purchased_and_breaks_ties_by_item_id() -> None:
    item_ids = np.array([10, 20, 30, 40], dtype=np.int64)
    item_factors = np.array([[1.0], [3.0], [3.0], [2.0]], dtype=np.float32)
    users = np.array([[1.0], [1.0]], dtype=np.float32)
    purchased = [np.array([], dtype=np.int64), np.array([20, 99], dtype=np.int64)]
    best, scores = top_k_for_users(users, purchased, item_ids, item_factors, k=3)
    assert item_ids[best[0]].tolist() == [20, 30, 40]
    assert item_ids[best[1]].tolist() == [30, 40, 10]
    assert scores[1].tolist() == [3.0, 2.0, 1.0]


@pytest.mark.parametrize("k", [0, 1, 3, 7, 40])
def test_top_k_rows_equals_a_full_sort_with_ties_and_excluded_items(k) -> None:
    rng = np.random.default_rng(k)
    scores = rng.integers(-3, 4, size=(6, 37)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    item_ids = rng.permutation(1000)[:37].astype(np.int64)
    best, values = top_k_rows(scores, item_ids, k)
    assert best.shape == values.shape == (6, min(k, 37))
    for row in range(6):
        expected = np.lexsort((item_ids, -scores[row]))[: min(k, 37)]
        assert best[row].tolist() == expected.tolist()
        assert values[row].tolist() == scores[row, expected].tolist()


def _candidates(spark, rows):
    """rows: (user, item, {source: rank})."""
    data = []
    for user, item, ranks in rows:
        row = {c: None for c in CANDIDATES.column_names}
        row.update({C.DT: DAY, C.USER_ID: user, C.ITEM_ID: item, C.SOURCES: sorted(ranks)})
        row.update({C.N_SOURCES: len(ranks), C.UNION_RANK: min(ranks.values())})
        for source, rank in ranks.items():
            row[C.source_rank(source)] = rank
            row[C.source_score(source)] = 1.0 / rank
        data.append(tuple(row[c] for c in CANDIDATES.column_names))
    return spark.createDataFrame(data, CANDIDATES.schema)


def test_best_source_is_the_best_rank_then_the_source_order(spark) -> None:
    candidates = _candidates(
        spark,
        [
            ("u", 1, {C.SOURCE_POPULAR: 1, C.SOURCE_ALS: 4}),
            ("u", 2, {C.SOURCE_POPULAR: 2, C.SOURCE_ALS: 2}),
            ("u", 3, {C.SOURCE_RECENT_VIEWS: 7}),
        ],
    )
    got = dict(
        candidates.select(C.ITEM_ID, best_source(candidates).alias(C.SOURCE)).collect()  # type: ignore[arg-type]
    )
    assert got == {1: C.SOURCE_POPULAR, 2: C.SOURCE_ALS, 3: C.SOURCE_RECENT_VIEWS}


def test_top_k_caps_categories_skips_purchases_and_orders_by_score(spark) -> None:
    candidates = _candidates(spark, [("u", i, {C.SOURCE_ALS: i}) for i in range(1, 7)])
    # items 1-4 in category 100, 5 in 200, 6 without a category; u bought item 2
    scored = spark.createDataFrame(
        [("u", 1, 0.9), ("u", 2, 0.95), ("u", 3, 0.8), ("u", 4, 0.7), ("u", 5, 0.1), ("u", 6, 0.8)],
        f"{C.USER_ID} string, {C.ITEM_ID} bigint, {C.SCORE} double",
    )
    categories = spark.createDataFrame(
        [(1, 100), (2, 100), (3, 100), (4, 100), (5, 200), (6, None)],
        f"{C.ITEM_ID} bigint, {C.CATEGORY_ID} bigint",
    )
    purchased = spark.createDataFrame([("u", 2)], PAIRS)
    rows = top_k(scored, candidates, categories, purchased, k=4, category_cap=2).orderBy(C.RANK)
    # category 100 keeps its best two not bought (1, 3); 3 and 6 tie at 0.8: item id decides
    assert [(r[C.RANK], r[C.ITEM_ID]) for r in rows.collect()] == [(1, 1), (2, 3), (3, 6), (4, 5)]
    uncapped = top_k(scored, candidates, categories, purchased, k=4, category_cap=0)
    assert [r[C.ITEM_ID] for r in uncapped.orderBy(C.RANK).collect()] == [1, 3, 6, 4]


def _recs(spark, rows, day=DAY):
    return spark.createDataFrame(
        [(day, u, r, i, s, C.SOURCE_ALS, "recsys-ranker/1") for u, r, i, s in rows],
        USER_RECOMMENDATIONS.schema,
    )


GOOD = [("u1", 1, 10, 2.0), ("u1", 2, 11, 1.0), ("u2", 1, 10, 0.5)]


def test_audit_passes_a_sound_set_and_names_each_fault(spark, tmp_path) -> None:
    settings = make_settings(tmp_path)
    purchased = spark.createDataFrame([("u2", 99)], PAIRS)
    assert all(c.passed for c in audit(_recs(spark, GOOD), purchased, 2, [], settings))

    bad = _recs(spark, [*GOOD, ("u1", 2, 12, 1.0), ("u2", 2, 99, float("nan"))])
    failed = {c.name for c in audit(bad, purchased, 4, [], settings) if not c.passed}
    assert failed == {
        "duplicate_keys",
        "purchased_items",
        "non_finite_scores",
        "out_of_range.score",  # NaN sorts above every number in Spark
        "user_coverage",
    }
    nulls = spark.createDataFrame(
        [(DAY, "u1", 1, None, 1.0, C.SOURCE_ALS, "v"), (DAY, "u1", 1, 10, 1.0, C.SOURCE_ALS, "v")],
        T.StructType(
            [T.StructField(f.name, f.dataType, True) for f in USER_RECOMMENDATIONS.schema]
        ),
    )
    failed = {c.name for c in audit(nulls, purchased, 1, [], settings) if not c.passed}
    assert {"nulls.item_id", "duplicate_keys"} <= failed

    many = audit(_recs(spark, GOOD), purchased, 2, recent_rows=[100] * 7, settings=settings)
    assert {c.name for c in many if not c.passed} == {"rows_vs_recent_min"}


@pytest.mark.slow
def test_a_bad_set_is_not_published_and_yesterday_stays(spark, tmp_path) -> None:
    settings = make_settings(tmp_path)
    create_missing_tables(spark, settings)
    yesterday = DAY - dt.timedelta(days=1)
    purchased = spark.createDataFrame([], PAIRS)

    good = write_staged(
        spark, settings, USER_RECOMMENDATIONS, _recs(spark, GOOD, yesterday), yesterday
    )
    publish(
        spark,
        settings,
        USER_RECOMMENDATIONS,
        good,
        audit(good, purchased, 2, [], settings),
        yesterday,
    )
    before = sorted(read_table(spark, settings, USER_RECOMMENDATIONS).collect())

    for day in (DAY, yesterday):  # a new day, and a rerun of the published one
        rows = [(d_u, r, i, s) for d_u, r, i, s in GOOD] + [("u1", 1, 13, 0.1)]
        staged = write_staged(spark, settings, USER_RECOMMENDATIONS, _recs(spark, rows, day), day)
        checks = audit(staged, purchased, 2, [3, 3, 3], settings)
        with pytest.raises(QualityCheckError, match="duplicate_keys"):
            publish(spark, settings, USER_RECOMMENDATIONS, staged, checks, day)
        assert (
            spark.read.format("delta")
            .load(staging_path(settings, USER_RECOMMENDATIONS, day))
            .count()
            == 4
        )  # kept for inspection
    assert sorted(read_table(spark, settings, USER_RECOMMENDATIONS).collect()) == before
    recorded = read_table(spark, settings, QUALITY_CHECKS).filter(
        (F.col(C.DT) == DAY) & (F.col(C.CHECK_NAME) == "duplicate_keys")
    )
    assert [r[C.PASSED] for r in recorded.collect()] == [False]


def test_without_a_champion_the_best_measured_order_serves(spark, tmp_path) -> None:
    from recsys_lib.evaluation import NDCG, evaluation_frame
    from recsys_lib.stages.recommend import best_measured_order, source_scores
    from recsys_lib.warehouse.storage import write_partition
    from recsys_lib.warehouse.tables import MODEL_EVALUATION

    settings = make_settings(tmp_path)
    create_missing_tables(spark, settings)
    assert best_measured_order(spark, settings, DAY) is None  # nothing measured: the union
    k = settings.ranker.gate_k
    for day, popular in ((DAY - dt.timedelta(days=2), 0.50), (DAY - dt.timedelta(days=1), 0.20)):
        figures = [
            (C.RANKER, NDCG, k, 0.60),  # a model is not an order without one
            (C.VARIANT_POPULARITY, NDCG, k, 0.90),  # nor the global list: not the candidates
            ("popular", NDCG, k, popular),
            ("als", NDCG, k, 0.30),
            (C.SOURCE_UNION, NDCG, k, 0.25),
            ("als", NDCG, 5, 0.99),
        ]
        frame = evaluation_frame(spark, C.MODEL_RANKER, figures, day)
        write_partition(frame, settings, MODEL_EVALUATION, day, {C.MODEL: C.MODEL_RANKER})
    yesterday = DAY - dt.timedelta(days=1)
    assert best_measured_order(spark, settings, DAY) == ("als", 0.30, yesterday)  # the latest
    assert best_measured_order(spark, settings, yesterday - dt.timedelta(days=1))[0] == "popular"

    candidates = _candidates(
        spark,
        [("u", 1, {C.SOURCE_ALS: 2}), ("u", 2, {C.SOURCE_POPULAR: 1}), ("u", 3, {C.SOURCE_ALS: 1})],
    )
    scores = {r[C.ITEM_ID]: r[C.SCORE] for r in source_scores(candidates, "als").collect()}
    assert sorted(scores, key=scores.get, reverse=True) == [3, 1, 2]  # als's, then the union
