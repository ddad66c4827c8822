"""The pipeline on three days of the real RetailRocket sample (a day with a real duplicate):
the history stages for the first, two nights, then the first night again.

A 5,000-visitor sample has a handful of returning users a day, and on some days none of
them touches one of their candidates: the ranker stage runs, labels samples, fits what it
can and declines to train a ranker without positive samples on three label days; the lists
keep the candidates' union order. The trained path is covered on generated data."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys_lib import constants as C
from recsys_lib.cli import days, run_days
from recsys_lib.pipeline import HISTORY_STAGES, NIGHTLY
from tests.conftest import RR_SAMPLE, RR_TREE, make_settings
from tests.integration.helpers import (
    SMALL_MODELS,
    assert_candidates_filled,
    assert_features_filled,
    assert_no_raw_user_ids,
    assert_ranker_declined,
    assert_recommendations_sound,
    assert_reconciled,
    assert_samples_labelled,
    snapshot,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FIRST, LAST = dt.date(2015, 7, 9), dt.date(2015, 7, 11)
# Visitors drawn at random from 1.4M over ~235k items rarely share an item: no carted pairs
# (bought_together) and no item two sample users both touched in a window, which is all
# EASE learns from (its weights between items nobody shares are not positive).
SPARSE = (C.SOURCE_BOUGHT_TOGETHER, C.SOURCE_EASE)


def test_real_days_then_a_rerun(spark, tmp_path) -> None:
    if not RR_SAMPLE.is_file():
        pytest.fail(f"the real sample is missing: {RR_SAMPLE} (../shared must sit beside the repo)")
    # The sample has no item properties: items are known from events only, on the real tree.
    settings = make_settings(
        tmp_path,
        INPUT__EVENTS_PATH=str(RR_SAMPLE),
        INPUT__ITEM_PROPERTIES_PATH="",
        INPUT__CATEGORY_TREE_PATH=str(RR_TREE),
        **{k.removeprefix("RECSYS__"): v for k, v in SMALL_MODELS.items()},
    )
    run_days(settings, HISTORY_STAGES, [FIRST])
    nights = days(FIRST + dt.timedelta(days=1), LAST)
    run_days(settings, NIGHTLY, nights)
    duplicates = 0
    for day in days(FIRST, LAST):
        checks = assert_reconciled(spark, settings, day)
        duplicates += checks["duplicate_rows"]
        assert checks["rejected_rows"] == 0  # the real rows are well formed
    for day in nights:
        assert_recommendations_sound(spark, settings, day, settings.recommend.top_k)
        assert_features_filled(spark, settings, day)
    # A 5,000-visitor sample has few users who cart two items (bought_together), few shared
    # items (EASE) and few returning users; the second night measures the first's candidates.
    assert_candidates_filled(
        spark, settings, nights[0], recall_measured=False, may_find_nothing=SPARSE
    )
    recall = assert_candidates_filled(
        spark, settings, nights[1], recall_measured=True, may_find_nothing=SPARSE
    )
    print("recall of the first night's candidates on the second:", sorted(recall.items()))
    for day in nights[1:]:
        assert_samples_labelled(spark, settings, day, positives_expected=False)
    assert_ranker_declined(spark, settings, LAST)
    assert duplicates == 1  # the sample's exact duplicate of 2015-07-10
    assert_no_raw_user_ids(spark, settings)
    before = snapshot(spark, settings)
    run_days(settings, NIGHTLY, nights[:1])  # an earlier night again, after a later one
    assert snapshot(spark, settings) == before
