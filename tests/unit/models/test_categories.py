import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.models.categories import (
    FILL_CATEGORY,
    FILL_CONFIDENCE,
    FILL_IS_LEAF,
    LEAF_ID,
    LEAF_SHARE,
    NO_FILL,
    PREDICTED_TOP,
    PROBABILITY,
    TOP_K_CATEGORIES,
    TOP_K_PROBABILITIES,
    VOTE,
    CompletionMemoryError,
)
from recsys_lib.models.categories.completion import complete_categories
from recsys_lib.models.categories.features import (
    best_leaves,
    item_behaviour_features,
    item_leaf_votes,
    item_top_votes,
)
from recsys_lib.models.categories.prediction import choose_fill
from recsys_lib.models.categories.training import (
    most_frequent_accuracy,
    split_parts,
    top_k_accuracy,
)
from recsys_lib.models.categories.vote import isotonic, vote_predictions, vote_threshold
from recsys_lib.warehouse.tables import CLEAN_ITEMS, USER_ITEM_DAILY
from tests.conftest import make_settings

RUN_DATE = dt.date(2026, 10, 10)
CATEGORIES_DDL = (
    f"{C.CATEGORY_ID} bigint, {C.CATEGORY_PATH} array<bigint>, {C.TOP_CATEGORY_ID} bigint, "
    f"{C.CATEGORY_DEPTH} int, is_leaf boolean"
)


def categories_frame(spark, tree: dict[int, list[int]]):
    """Two-level tree: root -> leaves."""
    rows = []
    for root, leaves in tree.items():
        rows.append((root, [root], root, 0, not leaves))
        rows += [(leaf, [root, leaf], root, 1, True) for leaf in leaves]
    return spark.createDataFrame(rows, CATEGORIES_DDL)


def item_row(item_id: int, leaf: int | None, root: int | None, price: float | None = 10.0):
    known = leaf is not None
    return (
        RUN_DATE,
        item_id,
        leaf,
        [root, leaf] if known else None,
        root if known else None,
        1 if known else None,
        C.SOURCE_CATALOGUE if known else None,
        1.0 if known else None,
        price,
        True,
        dt.date(2026, 10, 1),
        None,
    )


def daily_row(day: int, user: str, item: int, views: int = 1, carts: int = 0, purchases: int = 0):
    when = dt.datetime(2026, 10, 1 + day, 12)
    return (RUN_DATE.replace(day=1 + day), user, item, views, carts, purchases, when)


# --- features on a hand-checked case -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(spark):
    items = spark.createDataFrame(
        [
            item_row(1, 11, 10, price=99.0),
            item_row(2, 21, 20),
            item_row(3, None, None, price=None),
            item_row(4, 12, 10),
            item_row(5, None, None),
        ],
        CLEAN_ITEMS.schema,
    )
    interactions = spark.createDataFrame(
        [
            daily_row(0, "a", 1),
            daily_row(0, "a", 2, views=1, carts=1),  # weight 1 + 4
            daily_row(0, "a", 3),
            daily_row(0, "b", 1),
            daily_row(0, "b", 4),
        ],
        USER_ITEM_DAILY.schema,
    )
    categories = categories_frame(spark, {10: [11, 12], 20: [21]})
    return items, interactions, categories


def test_shares_come_from_the_company_never_from_the_own_label(tiny) -> None:
    items, interactions, _ = tiny
    got = {
        r[C.ITEM_ID]: r for r in item_behaviour_features(interactions, items, [10, 20]).collect()
    }
    # Item 1: day a sees item 2 (top 20, weight 5), day b item 4 (top 10, weight 1); its own
    # weight in top 10 is taken out of both days.
    one = got[1]
    assert (one["share_10"], one["share_20"]) == (0.5, 0.5)
    assert one["mass_share_10"] == pytest.approx(1 / 6) and one["mass_share_20"] == pytest.approx(
        5 / 6
    )
    assert one["cooc_log_mass"] == pytest.approx(math.log(7))
    assert one["cooc_user_days"] == 2.0
    assert one["cooc_known_share"] == pytest.approx(6 / 7)  # item 3 is uncategorised
    assert one["log_price"] == pytest.approx(math.log(100)) and one["price_missing"] == 0.0
    # Item 2 is in top 20 but only ever next to top-10 items: its own label does not leak.
    assert (got[2]["share_10"], got[2]["share_20"]) == (1.0, 0.0)
    assert got[2]["cart_rate"] == 1.0 and got[2]["log_carts"] == pytest.approx(math.log(2))
    # Uncategorised item 3 sees weight 1 in top 10 and 5 in top 20.
    assert got[3]["share_10"] == pytest.approx(1 / 6) and got[3]["share_20"] == pytest.approx(5 / 6)
    assert got[3]["price_missing"] == 1.0 and got[3]["log_price"] is None
    # Item 5 has no behaviour: no shares, zero counts.
    assert got[5]["share_10"] is None and got[5]["log_views"] == 0.0
    assert not got[5]["has_behaviour"] and got[1]["has_behaviour"]


def test_leaf_votes_exclude_the_own_leaf(tiny) -> None:
    items, interactions, categories = tiny
    votes = item_leaf_votes(interactions, items, categories)
    got = {(r[C.ITEM_ID], r[C.TOP_CATEGORY_ID], r[LEAF_ID]): r[VOTE] for r in votes.collect()}
    assert got[(3, 10, 11)] == pytest.approx(1 / 6) and got[(3, 20, 21)] == pytest.approx(5 / 6)
    assert got[(1, 20, 21)] == 1.0 and got[(1, 10, 12)] == 1.0
    assert (1, 10, 11) not in got
    best = {
        (r[C.ITEM_ID], r[C.TOP_CATEGORY_ID]): (r[LEAF_ID], r[LEAF_SHARE])
        for r in best_leaves(votes).collect()
    }
    assert best[(3, 10)] == (11, 1.0)


def test_top_votes_exclude_the_own_label_and_rank_by_share(tiny) -> None:
    items, interactions, _ = tiny
    votes = item_top_votes(interactions, items)
    got = {(r[C.ITEM_ID], r[C.TOP_CATEGORY_ID]): r[VOTE] for r in votes.collect()}
    # Item 3 (no label): day a holds item 1 (top 10, weight 1) and item 2 (top 20, weight 5).
    assert got[(3, 10)] == pytest.approx(1 / 6) and got[(3, 20)] == pytest.approx(5 / 6)
    # Item 1 (top 10) never votes for itself: day a gives 20 its whole vote, day b (item 4,
    # top 10) gives 10 its whole vote.
    assert got[(1, 20)] == 1.0 and got[(1, 10)] == 1.0
    predicted = {r[C.ITEM_ID]: r for r in vote_predictions(votes).collect()}
    assert predicted[3][PREDICTED_TOP] == 20 and predicted[3][PROBABILITY] == pytest.approx(5 / 6)
    assert predicted[3][TOP_K_CATEGORIES] == [20, 10]
    assert predicted[3][TOP_K_PROBABILITIES] == pytest.approx([5 / 6, 1 / 6])
    # A tie goes to the smaller id, at half the votes each.
    assert (predicted[1][PREDICTED_TOP], predicted[1][PROBABILITY]) == (10, 0.5)
    assert 5 not in predicted  # no behaviour, no vote


def test_choose_fill_thresholds(spark) -> None:
    predictions = spark.createDataFrame(
        [(1, 10, 0.9), (2, 10, 0.6), (3, 10, 0.45), (4, 20, 0.7)],
        f"{C.ITEM_ID} bigint, {PREDICTED_TOP} bigint, {PROBABILITY} double",
    )
    leaves = spark.createDataFrame(
        [(1, 10, 11, 0.8), (2, 10, 12, 0.5), (3, 10, 11, 1.0), (4, 10, 11, 1.0)],
        f"{C.ITEM_ID} bigint, {C.TOP_CATEGORY_ID} bigint, {LEAF_ID} bigint, {LEAF_SHARE} double",
    )
    got = {
        r[C.ITEM_ID]: (r[FILL_CATEGORY], round(r[FILL_CONFIDENCE], 6), r[FILL_IS_LEAF])
        for r in choose_fill(predictions, leaves, 0.5, 0.5).collect()
    }
    # 1: leaf 0.9 x 0.8; 2: leaf 0.3 too low -> top; 3: below both; 4: leaf under another top.
    assert got == {1: (11, 0.72, True), 2: (10, 0.6, False), 4: (20, 0.7, False)}
    # The vote's holdout threshold bars top and leaf fills alike.
    gated = choose_fill(predictions, leaves, 0.5, 0.5, min_probability=0.8)
    assert [(r[C.ITEM_ID], r[FILL_IS_LEAF]) for r in gated.collect()] == [(1, True)]
    assert choose_fill(predictions, leaves, 0.5, 0.5, min_probability=NO_FILL).count() == 0


def test_split_is_stable_and_near_the_share() -> None:
    ids = np.arange(20_000)
    parts = split_parts(ids, 0.2, 42)
    assert abs((parts == "holdout").mean() - 0.2) < 0.01
    assert abs((parts == "valid").mean() - 0.8 * 0.15) < 0.01
    assert (split_parts(ids[::7], 0.2, 42) == parts[::7]).all()
    assert (split_parts(ids, 0.2, 7) != parts).any()


def test_accuracy_limits() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert top_k_accuracy(proba, np.array([0, 2]), 1) == 1.0
    assert top_k_accuracy(proba, np.array([2, 0]), 1) == 0.0
    assert top_k_accuracy(proba, np.array([2, 0]), 3) == 1.0
    assert top_k_accuracy(np.zeros((0, 3)), np.array([], dtype=int), 1) == 0.0
    assert most_frequent_accuracy(np.array([1, 1, 0, 2]), np.array([1, 0, 1, 2]), 1) == 0.5
    assert most_frequent_accuracy(np.array([1, 1, 0, 2]), np.array([1, 0, 1, 2]), 2) == 0.75


# --- the stage on a planted shop -----------------------------------------------------------

TREE = {1: [11, 12], 2: [21, 22], 3: [31, 32]}
ITEMS_PER_LEAF = {11: 30, 12: 20, 21: 24, 22: 16, 31: 16, 32: 14}  # imbalanced roots
HIDDEN_EVERY = 6  # every 6th item has no catalogue category
NO_BEHAVIOUR_ITEM = 99_999


def planted(spark):
    """Users browse one leaf per day (plus, 15 % of the time, one random item anywhere)."""
    rng = np.random.default_rng(7)
    truth: dict[int, tuple[int, int]] = {}
    rows = []
    for leaf, n in ITEMS_PER_LEAF.items():
        root = leaf // 10
        for j in range(n):
            item = leaf * 100 + j
            truth[item] = (root, leaf)
            hidden = len(truth) % HIDDEN_EVERY == 0
            price = float(rng.lognormal(4.0, 1.0))
            rows.append(item_row(item, None if hidden else leaf, None if hidden else root, price))
    rows.append(item_row(NO_BEHAVIOUR_ITEM, None, None))
    items = spark.createDataFrame(rows, CLEAN_ITEMS.schema)
    by_leaf = {leaf: [i for i, t in truth.items() if t[1] == leaf] for leaf in ITEMS_PER_LEAF}
    all_items = sorted(truth)
    daily = []
    for day in range(8):
        for user in range(40):
            leaf = list(ITEMS_PER_LEAF)[rng.integers(len(ITEMS_PER_LEAF))]
            seen = set(rng.choice(by_leaf[leaf], size=4, replace=False).tolist())
            if rng.random() < 0.15:
                seen.add(int(rng.choice(all_items)))
            for item in sorted(seen):
                carts = int(rng.random() < 0.1)
                daily.append(daily_row(day, f"u{user}", int(item), 1, carts))
    interactions = spark.createDataFrame(daily, USER_ITEM_DAILY.schema)
    return items, interactions, categories_frame(spark, TREE), truth


@pytest.fixture(scope="module")
def shop(spark):
    items, interactions, categories, truth = planted(spark)
    return items.cache(), interactions.cache(), categories.cache(), truth


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("completion")


@pytest.fixture(scope="module")
def completed(spark, shop, home):
    items, interactions, categories, _ = shop
    settings = make_settings(home)
    return complete_categories(
        spark,
        settings,
        items,
        interactions,
        categories,
        RUN_DATE,
        input_versions={"input.features.user_item_daily.delta_version": 3},
    )


def by_id(frame) -> dict[int, tuple]:
    return {r[C.ITEM_ID]: tuple(r) for r in frame.collect()}


def test_model_beats_most_frequent_on_held_out_items(completed) -> None:
    figures = completed.figures
    assert figures["model_accepted"] == 1.0 and figures["n_holdout"] >= 10
    assert figures["holdout_top1"] >= 0.85 > figures["baseline_top1"] + 0.3
    assert figures["holdout_top3"] == 1.0 == figures["baseline_top3"]  # 3 classes
    rows = {(v, m, k): value for v, m, k, value in completed.evaluation}
    assert rows[("lightgbm", "accuracy", 1)] == figures["holdout_top1"]
    assert rows[("most_frequent", "accuracy", 1)] == figures["baseline_top1"]
    assert ("leaf_vote", "accuracy", 1) in rows


def test_fills_only_uncategorised_rows_and_leaves_catalogue_alone(shop, completed) -> None:
    items, _, _, truth = shop
    before, after = by_id(items), by_id(completed.items)
    assert completed.items.columns == items.columns and before.keys() == after.keys()
    index = {name: i for i, name in enumerate(items.columns)}
    for item, row in before.items():
        if row[index[C.CATEGORY_SOURCE]] is not None:
            assert after[item] == row
    filled = [r for r in after.values() if r[index[C.CATEGORY_SOURCE]] == C.SOURCE_PREDICTED]
    assert len(filled) == completed.figures["filled"] >= 0.8 * len(truth) / HIDDEN_EVERY
    right_top = 0
    for r in filled:
        category, top, depth = (
            r[index[c]] for c in (C.CATEGORY_ID, C.TOP_CATEGORY_ID, C.CATEGORY_DEPTH)
        )
        assert r[index[C.CATEGORY_PATH]] == ([top] if depth == 0 else [top, category])
        assert r[index[C.CATEGORY_CONFIDENCE]] >= 0.5
        right_top += top == truth[r[index[C.ITEM_ID]]][0]
    assert right_top >= 0.9 * len(filled)
    assert after[NO_BEHAVIOUR_ITEM][index[C.CATEGORY_SOURCE]] is None


def test_same_inputs_same_predictions_and_the_bar_decides(spark, shop, completed, home) -> None:
    items, interactions, categories, _ = shop
    assert completed.predictions is not None
    first = sorted(map(tuple, completed.predictions.collect()))
    # A second run with the bar at the median probability: same predictions, and exactly the
    # items at or above the bar are filled (a leaf's confidence never exceeds its top's).
    bar = float(np.median([row[2] for row in first]))
    settings = make_settings(home)
    strict = dataclasses.replace(
        settings,
        completion=dataclasses.replace(
            settings.completion, min_confidence=bar, leaf_min_confidence=bar
        ),
    )
    again = complete_categories(spark, strict, items, interactions, categories, RUN_DATE)
    assert again.predictions is not None
    assert sorted(map(tuple, again.predictions.collect())) == first
    after = {r[C.ITEM_ID]: r for r in again.items.collect()}
    below = 0
    for item, _, probability, *_ in first:
        assert (after[item][C.CATEGORY_SOURCE] == C.SOURCE_PREDICTED) == (probability >= bar)
        below += probability < bar
        if probability < bar:
            assert after[item][C.CATEGORY_ID] is None and after[item][C.CATEGORY_CONFIDENCE] is None
    assert below > 0


def test_run_is_tracked(completed, home) -> None:
    import mlflow

    from recsys_lib.runtime.tracking import use_experiment

    use_experiment(make_settings(home))
    run = mlflow.get_run(completed.run_id)
    assert run.data.tags["recsys.stage"] == "items"
    assert run.data.tags["recsys.run_date"] == RUN_DATE.isoformat()
    assert run.data.metrics["lightgbm.accuracy.1"] == completed.figures["holdout_top1"]
    assert run.data.params["input.features.user_item_daily.delta_version"] == "3"
    assert run.data.params["completion.min_confidence"] == "0.5"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(completed.run_id, "model")}
    assert artifacts == {"model/category_model.txt", "model/category_model.json"}


def with_completion(home: Path, **changes):
    settings = make_settings(home)
    return dataclasses.replace(
        settings, completion=dataclasses.replace(settings.completion, **changes)
    )


@pytest.fixture(scope="module")
def voted(spark, shop, home):
    items, interactions, categories, _ = shop
    settings = with_completion(home, max_classes=2)  # the planted shop has 3 top categories
    return complete_categories(spark, settings, items, interactions, categories, RUN_DATE)


def test_many_classes_take_the_vote_and_it_fills_like_the_model(shop, voted, completed) -> None:
    items, _, _, truth = shop
    figures = voted.figures
    assert figures["method_vote"] == 1.0 and figures["model_trained"] == 0.0
    assert figures["model_accepted"] == 1.0
    # The same holdout as the model's, against the same baseline.
    assert figures["n_holdout"] == completed.figures["n_holdout"]
    assert figures["baseline_top1"] == completed.figures["baseline_top1"]
    assert figures["holdout_top1"] >= 0.85 > figures["baseline_top1"] + 0.3
    rows = {(v, m, k): value for v, m, k, value in voted.evaluation}
    assert rows[("category_vote", "accuracy", 1)] == figures["holdout_top1"]
    assert ("lightgbm", "accuracy", 1) not in rows and ("leaf_vote", "accuracy", 1) in rows
    before, after = by_id(items), by_id(voted.items)
    index = {name: i for i, name in enumerate(items.columns)}
    for item, row in before.items():
        if row[index[C.CATEGORY_SOURCE]] is not None:
            assert after[item] == row
    filled = [r for r in after.values() if r[index[C.CATEGORY_SOURCE]] == C.SOURCE_PREDICTED]
    assert len(filled) == figures["filled"] >= 0.8 * len(truth) / HIDDEN_EVERY
    right = sum(r[index[C.TOP_CATEGORY_ID]] == truth[r[index[C.ITEM_ID]]][0] for r in filled)
    assert right >= 0.9 * len(filled)
    # No fill, top or leaf, below the share the holdout set.
    assert voted.predictions is not None
    share = {r[C.ITEM_ID]: r[PROBABILITY] for r in voted.predictions.collect()}
    assert all(share[r[index[C.ITEM_ID]]] >= figures["vote_threshold"] for r in filled)
    assert figures["holdout_filled_precision"] >= 0.5


def test_a_vote_no_share_of_which_is_right_often_enough_fills_nothing(spark, shop, home) -> None:
    items, interactions, categories, _ = shop
    settings = with_completion(home, max_classes=2, min_confidence=1.01)
    result = complete_categories(spark, settings, items, interactions, categories, RUN_DATE)
    assert result.figures["model_accepted"] == 1.0  # it beats the baseline ...
    assert result.figures["vote_threshold"] == NO_FILL  # ... but no share reaches the bar
    assert result.figures["filled"] == result.figures["filled_leaf"] == 0.0
    assert result.items.filter(F.col(C.CATEGORY_SOURCE) == C.SOURCE_PREDICTED).count() == 0
    assert "nothing filled" in result.note


def test_the_vote_threshold_is_set_where_the_holdout_is_right_often_enough() -> None:
    assert isotonic(np.array([0.0, 1, 0, 1]), np.ones(4)).tolist() == [0, 0.5, 0.5, 1]
    assert isotonic(np.array([1.0, 0, 0]), np.array([1.0, 1, 2])).tolist() == [1 / 4] * 3
    shares = np.array([0.9, 0.8, 0.5, 0.4, 0.3])
    right = np.array([True, False, True, False, False])
    assert vote_threshold(shares, right, 0.5, min_support=1) == 0.5
    assert vote_threshold(shares, right, 0.6, min_support=1) == 0.9
    # Too few held-out items at or above a share: not that share.
    assert vote_threshold(shares, right, 0.6, min_support=2) == NO_FILL > 1.0
    assert vote_threshold(shares, right, 0.5, min_support=4) == NO_FILL
    # Too few held-out votes to fit: the share is read as a probability.
    assert vote_threshold(shares, right, 0.7, min_support=6) == 0.7
    # Never right: nothing is filled. Equal shares fill together (no cut between them).
    assert vote_threshold(shares, np.zeros(5, bool), 0.1, min_support=1) == NO_FILL
    tied = np.array([0.5, 0.5, 0.5, 0.1])
    once, twice = np.array([True, False, False, False]), np.array([True, True, False, False])
    assert vote_threshold(tied, once, 0.5, min_support=1) == NO_FILL
    assert vote_threshold(tied, twice, 0.6, min_support=1) == 0.5


def test_the_vote_logs_no_model(voted, home) -> None:
    import mlflow

    from recsys_lib.runtime.tracking import use_experiment

    use_experiment(make_settings(home))
    run = mlflow.get_run(voted.run_id)
    assert run.data.metrics["category_vote.accuracy.1"] == voted.figures["holdout_top1"]
    assert run.data.metrics["method_vote"] == 1.0
    assert run.data.params["completion.max_classes"] == "2"
    assert mlflow.MlflowClient().list_artifacts(voted.run_id, "model") == []


def test_nothing_to_fill_trains_nothing(spark, shop, home) -> None:
    items, interactions, categories, _ = shop
    # Every uncategorised item but the one without behaviour leaves the catalogue.
    catalogued = items.filter(
        F.col(C.CATEGORY_SOURCE).isNotNull() | (F.col(C.ITEM_ID) == NO_BEHAVIOUR_ITEM)
    )
    result = complete_categories(
        spark, make_settings(home), catalogued, interactions, categories, RUN_DATE
    )
    assert result.figures["model_trained"] == 0.0 and result.figures["filled"] == 0.0
    assert result.figures["uncategorised"] == 1.0
    assert "no uncategorised item has behaviour" in result.note and result.evaluation == []
    assert by_id(result.items) == by_id(catalogued)


def test_too_few_labels_trains_nothing(spark, shop, home) -> None:
    items, interactions, categories, _ = shop
    settings = make_settings(home)
    few = dataclasses.replace(
        settings, completion=dataclasses.replace(settings.completion, min_labelled_items=10_000)
    )
    result = complete_categories(spark, few, items, interactions, categories, RUN_DATE)
    assert result.figures["model_trained"] == 0.0 and result.figures["filled"] == 0.0
    assert "min_labelled_items" in result.note and result.evaluation == []
    assert by_id(result.items) == by_id(items)


def test_training_rows_are_bounded(spark, shop, home) -> None:
    items, interactions, categories, _ = shop
    settings = make_settings(home)
    tight = dataclasses.replace(
        settings, completion=dataclasses.replace(settings.completion, max_training_rows=20)
    )
    with pytest.raises(CompletionMemoryError, match="max_training_rows=20.*Spark MLlib"):
        complete_categories(spark, tight, items, interactions, categories, RUN_DATE)
