"""Bought together on tiny hand-computed cases: support, confidence, lift, the time and
transaction rules, the filters, the per-user cap and the order of a list."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recsys_lib import constants as C
from recsys_lib.config import BoughtTogetherSettings
from recsys_lib.devtools.generator import generate_shop
from recsys_lib.sources.bought_together import bought_together, skipped_users
from recsys_lib.warehouse.tables import BOUGHT_TOGETHER, CLEAN_EVENTS
from tests.conftest import table_frame

D = dt.date(2026, 1, 31)
T0 = dt.datetime(2026, 1, 20, 10, 0)

A, B, C_, D_, E = 10, 20, 50, 40, 30


def at(hours: float = 0.0, seconds: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours, seconds=seconds)


def ev(
    user: str, item: int, ts: dt.datetime, kind: str = C.CART, tx: str | None = None
) -> tuple[Any, ...]:
    return (ts.date(), ts, user, item, kind, tx, "events.csv")


def basket(user: str, *items: int) -> list[tuple[Any, ...]]:
    """``user`` carts ``items`` one minute apart."""
    return [ev(user, item, at(seconds=60 * i)) for i, item in enumerate(items)]


@pytest.fixture()
def loose(settings: Any) -> BoughtTogetherSettings:
    """24 hours, carts and purchases, no support or lift threshold."""
    return dataclasses.replace(
        settings.bought_together,
        hours=24,
        event_types=(C.CART, C.PURCHASE),
        min_support=1,
        min_lift=0.0,
        top_n=20,
        max_items_per_user=200,
    )


def run(spark: Any, rows: list[tuple[Any, ...]], settings: BoughtTogetherSettings) -> Any:
    return bought_together(table_frame(spark, CLEAN_EVENTS, rows), settings)


def pairs(spark: Any, rows: list[tuple[Any, ...]], settings: BoughtTogetherSettings) -> dict:
    return {(r[C.ITEM_ID], r[C.OTHER_ITEM_ID]): r for r in run(spark, rows, settings).collect()}


def test_support_confidence_and_lift_by_hand(spark: Any, loose: BoughtTogetherSettings) -> None:
    rows = [
        *basket("u1", A, B),
        ev("u1", A, at(hours=30)),  # the same pair again, u1 still counts once
        ev("u1", B, at(hours=31)),
        ev("u1", B, at(hours=31)),  # a duplicate row
        ev("u2", A, at()),
        ev("u2", B, at(hours=2), C.PURCHASE, "t2"),
        *basket("u3", A, C_),
        ev("u4", B, at()),
        ev("u5", D_, at()),
    ]
    got = pairs(spark, rows, loose)
    # N = 5 users; users(A) = 3 (u1 u2 u3), users(B) = 3 (u1 u2 u4), users(C) = 1.
    # support(A,B) = 2: conf(A->B) = 2/3, lift = (2/3) / (3/5) = 10/9; B->A the same.
    # support(A,C) = 1: conf(A->C) = 1/3, lift = (1/3) / (1/5) = 5/3;
    #                   conf(C->A) = 1/1,  lift = 1 / (3/5) = 5/3.
    assert set(got) == {(A, B), (B, A), (A, C_), (C_, A)}
    expected = {
        (A, B): (2, 2 / 3, 10 / 9),
        (B, A): (2, 2 / 3, 10 / 9),
        (A, C_): (1, 1 / 3, 5 / 3),
        (C_, A): (1, 1.0, 5 / 3),
    }
    for pair, (support, confidence, lift) in expected.items():
        row = got[pair]
        assert row[C.SUPPORT] == support
        assert row[C.CONFIDENCE] == pytest.approx(confidence)
        assert row[C.LIFT] == pytest.approx(lift)
    # Confidence ranks before lift: B (2/3) is A's first although C has the higher lift.
    assert (got[(A, B)][C.RANK], got[(A, C_)][C.RANK]) == (1, 2)


def test_output_matches_the_contract(spark: Any, loose: BoughtTogetherSettings) -> None:
    df = run(spark, basket("u1", A, B), loose)
    contract = {f.name: f.dataType for f in BOUGHT_TOGETHER.schema.fields if f.name != C.DT}
    assert {f.name: f.dataType for f in df.schema.fields} == contract
    assert df.columns == [c for c in BOUGHT_TOGETHER.column_names if c != C.DT]


def test_hours_boundary(spark: Any, loose: BoughtTogetherSettings) -> None:
    rows = [
        ev("u1", A, at()),
        ev("u1", B, at(hours=24, seconds=-1)),  # just inside
        ev("u2", C_, at()),
        ev("u2", D_, at(hours=24, seconds=1)),  # just outside
        ev("u3", E, at(hours=24)),  # exactly 24 hours: inside
        ev("u3", 60, at()),
    ]
    assert set(pairs(spark, rows, loose)) == {(A, B), (B, A), (E, 60), (60, E)}


def test_same_transaction_pairs_however_far_apart(
    spark: Any, loose: BoughtTogetherSettings
) -> None:
    rows = [
        ev("u1", A, at(), C.PURCHASE, "t1"),
        ev("u1", B, at(hours=72), C.PURCHASE, "t1"),
        ev("u2", C_, at(), C.PURCHASE, "t2"),
        ev("u2", D_, at(hours=72), C.PURCHASE, "t3"),
    ]
    assert set(pairs(spark, rows, loose)) == {(A, B), (B, A)}


def test_views_are_ignored(spark: Any, loose: BoughtTogetherSettings) -> None:
    rows = [
        ev("u1", A, at(), C.VIEW),
        ev("u1", B, at(seconds=60)),
        ev("u2", A, at(), C.VIEW),
        ev("u2", B, at(seconds=60), C.VIEW),
    ]
    assert run(spark, rows, loose).count() == 0


def test_min_support_and_min_lift(spark: Any, loose: BoughtTogetherSettings) -> None:
    rows = [
        *basket("u1", A, B),
        *basket("u2", A, B),
        *basket("u3", A, C_),
        *basket("u4", A, C_),
        *basket("u5", B),
        *basket("u6", C_),
        *basket("u7", B),
        *basket("u8", A, D_),
    ]
    strict = dataclasses.replace(loose, min_support=2, min_lift=1.0)
    # N = 8; users(A) = 5, users(B) = 4, users(C) = 3, users(D) = 1.
    # A-B: support 2, lift = 2 * 8 / (5 * 4) = 0.8     -> below min_lift 1
    # A-C: support 2, lift = 2 * 8 / (5 * 3) = 16/15   -> kept, both ways
    # A-D: support 1, lift = 1 * 8 / (5 * 1) = 1.6     -> below min_support 2
    got = pairs(spark, rows, strict)
    assert set(got) == {(A, C_), (C_, A)}
    assert got[(A, C_)][C.LIFT] == pytest.approx(16 / 15)
    # A lift exactly at the threshold is kept.
    at_threshold = pairs(spark, rows, dataclasses.replace(strict, min_lift=0.8))
    assert set(at_threshold) == {(A, B), (B, A), (A, C_), (C_, A)}
    assert at_threshold[(A, B)][C.LIFT] == 0.8


def test_users_with_too_many_items_are_skipped(spark: Any, loose: BoughtTogetherSettings) -> None:
    rows = [
        *basket("bot", A, B, C_),  # 3 distinct items > 2: left out entirely
        *basket("u1", A, B),
        *basket("u2", A, B, A),  # 2 distinct items: kept
    ]
    capped = dataclasses.replace(loose, max_items_per_user=2)
    got = pairs(spark, rows, capped)
    # Without the bot: N = 2, users(A) = users(B) = 2, support 2 -> confidence 1, lift 1.
    assert set(got) == {(A, B), (B, A)}
    assert (got[(A, B)][C.SUPPORT], got[(A, B)][C.CONFIDENCE], got[(A, B)][C.LIFT]) == (2, 1, 1)
    events = table_frame(spark, CLEAN_EVENTS, rows)
    assert skipped_users(events, capped) == 1
    assert skipped_users(events, loose) == 0


def test_top_n_and_tie_order(spark: Any, loose: BoughtTogetherSettings) -> None:
    rows = [
        *basket("u1", A, B),
        *basket("u2", A, B),
        *basket("u3", A, C_),
        *basket("u4", A, D_),
        *basket("u5", D_),
        *basket("u6", A, E),
    ]
    # N = 6; users(A) = 5, users(B) = 2, users(C) = 1, users(D) = 2, users(E) = 1.
    # A->B: conf 2/5, lift 2*6/(5*2) = 1.2
    # A->E: conf 1/5, lift 1*6/(5*1) = 1.2   (E = 30)
    # A->C: conf 1/5, lift 1.2               (C = 50: same as E, larger id)
    # A->D: conf 1/5, lift 1*6/(5*2) = 0.6   (D = 40: lower lift, cut by top_n = 3)
    got = run(spark, rows, dataclasses.replace(loose, top_n=3)).filter(f"{C.ITEM_ID} = {A}")
    ordered = [(r[C.RANK], r[C.OTHER_ITEM_ID]) for r in got.orderBy(C.RANK).collect()]
    assert ordered == [(1, B), (2, E), (3, C_)]


def test_finds_the_planted_bundles_of_a_generated_shop(
    spark: Any, settings: Any, tmp_path: Path
) -> None:
    """The production settings on a generated shop (4 weeks, scale 0.5): the pairs found
    are the generator's planted bundle partners, not chance co-occurrences."""
    generate_shop(tmp_path, scale=0.5, seed=7)
    raw = pd.concat(pd.read_csv(p, dtype=str) for p in sorted((tmp_path / "events").glob("*.csv")))
    well_formed = (
        raw[C.RR_TIMESTAMP].str.fullmatch(r"\d+", na=False)
        & raw[C.RR_VISITOR_ID].str.fullmatch(r"\d+", na=False)
        & raw[C.RR_ITEM_ID].str.fullmatch(r"\d+", na=False)
        & raw[C.RR_EVENT].isin([C.RR_ADDTOCART, C.RR_TRANSACTION])
    )
    rows = []
    for r in raw[well_formed].itertuples(index=False):
        ts = dt.datetime.fromtimestamp(int(r.timestamp) / 1000, dt.UTC).replace(tzinfo=None)
        kind = C.RR_EVENT_TO_TYPE[r.event]
        tx = r.transactionid if isinstance(r.transactionid, str) else None
        rows.append(ev(r.visitorid, int(r.itemid), ts, kind, tx))
    found = run(spark, rows, settings.bought_together).collect()

    partner = pd.read_csv(tmp_path / "items.csv").set_index(C.RR_ITEM_ID)[C.GEN_BUNDLE_PARTNER]
    planted = {(a, int(b)) for a, b in partner.dropna().items()}
    planted |= {(b, a) for a, b in planted}
    is_planted = [(r[C.ITEM_ID], r[C.OTHER_ITEM_ID]) in planted for r in found]
    assert len(found) >= 20
    assert sum(is_planted) / len(found) >= 0.8
