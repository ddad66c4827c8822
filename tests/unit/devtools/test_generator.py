"""Tests of the shop generator (recsys_lib.devtools.generator): layout, determinism and realism."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_lib import constants as C
from recsys_lib.devtools.generator import (
    MALFORMED_KINDS,
    PROFILES,
    GenerationSummary,
    generate_shop,
)
from tests.conftest import RR_TREE

REAL_TREE = RR_TREE
EVENT_HEADER = "timestamp,visitorid,event,itemid,transactionid"


@dataclass(frozen=True)
class Shop:
    summary: GenerationSummary
    root: Path
    rows: pd.DataFrame  # every event row as text, with the date of its file and its defect


def _defect(rows: pd.DataFrame) -> pd.Series:
    """The first rule of the clean stage a row fails ("" if none), as in cleaning.py."""
    ts = rows[C.RR_TIMESTAMP]
    parses = ts.str.fullmatch(r"\d{1,15}")
    day = pd.to_datetime(ts.where(parses).astype("float64"), unit="ms").dt.date
    item = rows[C.RR_ITEM_ID]
    rules = [
        ("bad_timestamp", ~parses),
        ("timestamp_outside_day", day != rows["file_date"]),
        ("unknown_event", ~rows[C.RR_EVENT].isin([C.RR_VIEW, C.RR_ADDTOCART, C.RR_TRANSACTION])),
        ("null_user_id", rows[C.RR_VISITOR_ID].str.strip() == ""),
        ("null_item_id", item.str.strip() == ""),
        ("bad_item_id", ~item.str.fullmatch(r"\d{1,18}")),
    ]
    defect = pd.Series("", index=rows.index)
    for name, failed in reversed(rules):
        defect = defect.mask(failed, name)
    return defect


def _read_events(root: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((root / "events").glob("events_*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["file_date"] = dt.date.fromisoformat(path.stem.removeprefix("events_"))
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    rows["defect"] = _defect(rows)
    return rows


def _well_formed(rows: pd.DataFrame) -> pd.DataFrame:
    good = rows[rows["defect"] == ""].copy()
    good["ts"] = good[C.RR_TIMESTAMP].astype(np.int64)
    good["item"] = good[C.RR_ITEM_ID].astype(np.int64)
    return good


def _roots(tree: pd.DataFrame) -> dict[int, int]:
    parent = dict(zip(tree[C.RR_CATEGORY_ID], tree[C.RR_PARENT_ID], strict=True))
    roots: dict[int, int] = {}
    for category in parent:
        node = category
        while not pd.isna(parent[node]):
            node = parent[node]
        roots[category] = node
    return roots


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("shop")
    summary = generate_shop(root, scale=0.25, seed=7)
    return Shop(summary=summary, root=root, rows=_read_events(root))


@pytest.fixture(scope="module")
def items(shop: Shop) -> pd.DataFrame:
    return pd.read_csv(shop.root / "items.csv", parse_dates=[C.GEN_FIRST_SEEN])


@pytest.fixture(scope="module")
def tree(shop: Shop) -> pd.DataFrame:
    return pd.read_csv(shop.root / "category_tree.csv", dtype="Int64")


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))} | {
        "manifest.json": (root / "manifest.json").read_bytes()
    }


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate_shop(tmp_path / name, scale=0.05, seed=seed, days=7)
    first, again, other = (_file_bytes(tmp_path / n) for n in "abc")
    assert first == again
    assert first.keys() == other.keys()
    assert first["events/events_2026-10-03.csv"] != other["events/events_2026-10-03.csv"]
    assert first["items.csv"] != other["items.csv"]


def test_layout_headers_and_one_file_per_day(shop: Shop) -> None:
    s = shop.summary
    assert (s.first_day, s.last_day, s.days) == (dt.date(2026, 10, 1), dt.date(2026, 10, 28), 28)
    expected = [f"events_{s.first_day + dt.timedelta(days=d)}.csv" for d in range(28)]
    files = sorted(p.name for p in (shop.root / "events").iterdir())
    assert files == expected
    for name in expected:
        assert (shop.root / "events" / name).read_text().splitlines()[0] == EVENT_HEADER
    headers = {
        "item_properties.csv": "timestamp,itemid,property,value",
        "category_tree.csv": "categoryid,parentid",
        "items.csv": "itemid,categoryid,price,first_seen,bundle_partner",
    }
    for name, header in headers.items():
        assert (shop.root / name).read_text().splitlines()[0] == header
    manifest = json.loads((shop.root / "manifest.json").read_text())
    assert (manifest["profile"], manifest["scale"], manifest["seed"]) == ("default", 0.25, 7)
    assert (manifest["start"], manifest["days"]) == ("2026-10-01", 28)
    assert manifest["events"] == dict(s.events)


def test_summary_reconciles_with_the_files(shop: Shop) -> None:
    s = shop.summary
    assert len(shop.rows) == s.total_rows
    assert s.total_rows == sum(s.events.values()) + s.malformed_rows + s.duplicate_rows
    assert shop.rows["defect"].value_counts().drop("").to_dict() == dict(s.malformed_by_kind)
    assert s.users == 1_000 and s.items == 375


def test_default_profile_is_small_and_dense(shop: Shop) -> None:
    events = sum(shop.summary.events.values())
    assert 10_000 <= events <= 25_000  # x4 at scale 1: the 50-100k of the demo shop
    assert events / shop.summary.visitors_with_events > 10  # enough history per user


def test_funnel_rates(shop: Shop) -> None:
    share = shop.summary.event_shares
    views, carts, purchases = (shop.summary.events[e] for e in ("view", "addtocart", "transaction"))
    assert share["view"] > 0.9
    assert 0.02 < share["addtocart"] < 0.06
    assert 0.006 < purchases / views < 0.015
    assert purchases < carts


def test_carts_follow_the_users_taste(shop: Shop, items: pd.DataFrame, tree: pd.DataFrame) -> None:
    good = _well_formed(shop.rows)
    root_of = _roots(tree)
    good["root"] = good["item"].map(items.set_index(C.RR_ITEM_ID)[C.RR_CATEGORY_ID].map(root_of))
    views = good[good[C.RR_EVENT] == C.RR_VIEW]
    keys = [C.RR_VISITOR_ID, "root"]
    share = views.groupby(keys).size() / views.groupby(C.RR_VISITOR_ID).size()
    liked = share[share >= 0.25].rename("liked").reset_index()  # roots a user keeps visiting

    def liked_share(rows: pd.DataFrame) -> pd.Series:
        return rows.merge(liked, on=keys, how="left")["liked"].notna()

    in_liked_view = liked_share(views)
    in_liked_cart = liked_share(good[good[C.RR_EVENT] == C.RR_ADDTOCART])
    liked_rate = in_liked_cart.sum() / in_liked_view.sum()
    other_rate = (~in_liked_cart).sum() / (~in_liked_view).sum()
    assert liked_rate > 1.6 * other_rate  # ~1.3 without the taste lift (bots never cart)


def test_carts_bring_their_planted_bundle_partner(
    shop: Shop, items: pd.DataFrame, tree: pd.DataFrame
) -> None:
    good = _well_formed(shop.rows)
    carts = good[good[C.RR_EVENT] == C.RR_ADDTOCART]
    partner = items.set_index(C.RR_ITEM_ID)[C.GEN_BUNDLE_PARTNER]
    carted_pairs = set(zip(carts[C.RR_VISITOR_ID], carts["item"], strict=True))
    with_partner = [
        (visitor, partner[item]) in carted_pairs
        for visitor, item in carted_pairs
        if pd.notna(partner[item])
    ]
    assert 0.15 < np.mean(with_partner) < 0.6  # bundle_share 0.3 (some partners are young)
    # Partners share the root, mostly not the leaf: an accessory, not a substitute.
    root_of = _roots(tree)
    category = items.set_index(C.RR_ITEM_ID)[C.RR_CATEGORY_ID]
    planted = partner.dropna().astype(np.int64)
    same_root = [root_of[category[a]] == root_of[category[b]] for a, b in planted.items()]
    same_leaf = [category[a] == category[b] for a, b in planted.items()]
    assert all(same_root) and np.mean(same_leaf) < 0.2
    assert (planted.index != planted.to_numpy()).all()


def test_tree_has_levels_and_items_sit_on_leaves(tree: pd.DataFrame, items: pd.DataFrame) -> None:
    depth = {c: 0 for c in tree[C.RR_CATEGORY_ID]}
    parent = dict(zip(tree[C.RR_CATEGORY_ID], tree[C.RR_PARENT_ID], strict=True))
    for category in parent:
        node = category
        while not pd.isna(parent[node]):
            node = parent[node]
            depth[category] += 1
    assert 4 <= tree[C.RR_PARENT_ID].isna().sum() <= 20
    assert max(depth.values()) >= 2
    leaves = set(tree[C.RR_CATEGORY_ID]) - set(tree[C.RR_PARENT_ID].dropna())
    assert set(items[C.RR_CATEGORY_ID]) <= leaves
    sizes = items[C.RR_CATEGORY_ID].value_counts()
    assert sizes.iloc[0] > 4 * sizes.median()  # long-tailed leaf sizes


def test_no_event_before_the_items_first_seen_day(shop: Shop, items: pd.DataFrame) -> None:
    good = _well_formed(shop.rows)
    first_seen = good["item"].map(items.set_index(C.RR_ITEM_ID)[C.GEN_FIRST_SEEN])
    assert first_seen.notna().all()
    event_day = pd.to_datetime(good["ts"], unit="ms").dt.normalize()
    assert (event_day >= first_seen).all()
    new = items[C.GEN_FIRST_SEEN] > pd.Timestamp(shop.summary.first_day)
    assert 0.1 < new.mean() < 0.35


def test_popularity_has_a_long_tail(shop: Shop) -> None:
    views = _well_formed(shop.rows).query("event == 'view'")["item"].value_counts()
    top_decile = views.iloc[: len(views) // 10].sum() / views.sum()
    assert top_decile > 0.3


def test_malformed_rows_of_every_kind(shop: Shop) -> None:
    kinds = shop.rows["defect"].value_counts()
    assert set(MALFORMED_KINDS) <= set(kinds.index)
    assert 0.003 < kinds.drop("").sum() / len(shop.rows) < 0.008
    texts = shop.rows.loc[shop.rows["defect"] == "bad_timestamp", C.RR_TIMESTAMP]
    assert {"", "not-a-time"} <= set(texts)
    late = shop.rows[shop.rows["defect"] == "timestamp_outside_day"]
    late_day = pd.to_datetime(late[C.RR_TIMESTAMP].astype(np.int64), unit="ms").dt.date
    assert (late_day == late["file_date"] - dt.timedelta(days=1)).all()


def test_exact_duplicate_rows_exist(shop: Shop) -> None:
    good = shop.rows[shop.rows["defect"] == ""]
    copies = good.duplicated(subset=list(C.RR_EVENT_COLUMNS)).sum()
    assert copies == shop.summary.duplicate_rows
    assert 0.001 <= copies / len(shop.rows) <= 0.004


def test_well_formed_rows_are_in_their_days_file(shop: Shop) -> None:
    good = _well_formed(shop.rows)
    assert (pd.to_datetime(good["ts"], unit="ms").dt.date == good["file_date"]).all()
    assert good["ts"].is_monotonic_increasing


def test_hours_follow_a_diurnal_curve(shop: Shop) -> None:
    good = _well_formed(shop.rows)
    hours = pd.to_datetime(good["ts"], unit="ms").dt.hour.value_counts()
    assert hours.loc[[18, 19, 20]].sum() > 4 * hours.loc[[2, 3, 4]].sum()


def test_bots_view_many_random_items_and_never_buy(shop: Shop) -> None:
    good = _well_formed(shop.rows)
    per_visitor = good.groupby(C.RR_VISITOR_ID)
    counts: pd.Series = per_visitor.size()
    bots = counts[counts > 20 * counts.median()].index
    assert len(bots) >= shop.summary.bots >= 1
    assert (good[good[C.RR_VISITOR_ID].isin(bots)][C.RR_EVENT] == C.RR_VIEW).all()
    assert per_visitor["item"].nunique()[bots].min() > 50


def test_transaction_ids_only_on_transactions(shop: Shop) -> None:
    rows = shop.rows
    has_tid = rows[C.RR_TRANSACTION_ID] != ""
    is_purchase = rows[C.RR_EVENT] == C.RR_TRANSACTION
    assert not (has_tid & ~is_purchase).any()
    assert rows.loc[is_purchase, C.RR_TRANSACTION_ID].str.fullmatch(r"\d+").all()
    purchases = _well_formed(rows).query("event == 'transaction'")
    per_tid = purchases.groupby(C.RR_TRANSACTION_ID)
    assert (per_tid[C.RR_VISITOR_ID].nunique() == 1).all()
    assert (per_tid["ts"].nunique() == 1).all()  # one checkout per session
    assert purchases[C.RR_TRANSACTION_ID].nunique() == shop.summary.transactions


def test_item_properties(shop: Shop, items: pd.DataFrame) -> None:
    props = pd.read_csv(shop.root / "item_properties.csv", dtype=str)
    price = props[props[C.RR_PROPERTY] == C.RR_PROP_PRICE][C.RR_VALUE]
    assert price.str.fullmatch(r"n\d+\.\d{3}").all()
    assert set(props.loc[props[C.RR_PROPERTY] == C.RR_PROP_AVAILABLE, C.RR_VALUE]) == {"0", "1"}
    ts = props[C.RR_TIMESTAMP].astype(np.int64)
    props["ts"] = pd.to_datetime(ts, unit="ms")
    first = props.sort_values("ts").drop_duplicates([C.RR_ITEM_ID, C.RR_PROPERTY])
    category = first[first[C.RR_PROPERTY] == C.RR_PROP_CATEGORY].set_index(C.RR_ITEM_ID)
    truth = items.set_index(items[C.RR_ITEM_ID].astype(str))
    assert (
        category[C.RR_VALUE]
        .astype(int)
        .sort_index()
        .equals(truth.loc[category.index, C.RR_CATEGORY_ID].sort_index().rename(C.RR_VALUE))
    )
    listed = first.drop_duplicates(C.RR_ITEM_ID).set_index(C.RR_ITEM_ID)
    snapshot_lag = truth[C.GEN_FIRST_SEEN] - listed["ts"].reindex(truth.index)
    assert snapshot_lag.between(pd.Timedelta(0), pd.Timedelta(days=7)).all()
    changed = props.duplicated([C.RR_ITEM_ID, C.RR_PROPERTY])
    assert changed.any()  # later weekly snapshots of a changed price or availability
    assert len(set(props[C.RR_PROPERTY])) >= 4


def test_a_share_of_items_has_no_category_but_keeps_its_truth(
    shop: Shop, items: pd.DataFrame, tree: pd.DataFrame
) -> None:
    props = pd.read_csv(shop.root / "item_properties.csv", dtype=str)
    categorised = set(props.loc[props[C.RR_PROPERTY] == C.RR_PROP_CATEGORY, C.RR_ITEM_ID])
    listed = set(props[C.RR_ITEM_ID])
    assert listed == set(items[C.RR_ITEM_ID].astype(str))  # still in the catalogue
    hidden = listed - categorised
    assert len(hidden) == shop.summary.uncategorised_items == round(0.1 * 375) == 38
    manifest = json.loads((shop.root / "manifest.json").read_text())
    assert manifest["uncategorised_items"] == 38
    truth = items.set_index(items[C.RR_ITEM_ID].astype(str))[C.RR_CATEGORY_ID]
    assert truth.notna().all()
    assert set(truth[sorted(hidden)]) <= set(tree[C.RR_CATEGORY_ID])


def test_the_uncategorised_share_changes_only_category_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_shop(tmp_path / "some", scale=0.05, days=7)
    for name, share in (("none", 0.0), ("all", 1.0)):
        profile = replace(PROFILES["default"], uncategorised_share=share)
        monkeypatch.setitem(PROFILES, "default", profile)
        generate_shop(tmp_path / name, scale=0.05, days=7)
    some, none, every = (_file_bytes(tmp_path / n) for n in ("some", "none", "all"))
    assert some["items.csv"] == none["items.csv"] == every["items.csv"]
    assert some["events/events_2026-10-03.csv"] == none["events/events_2026-10-03.csv"]
    full = pd.read_csv(tmp_path / "none" / "item_properties.csv", dtype=str)
    part = pd.read_csv(tmp_path / "some" / "item_properties.csv", dtype=str)
    bare = pd.read_csv(tmp_path / "all" / "item_properties.csv", dtype=str)
    is_category = full[C.RR_PROPERTY] == C.RR_PROP_CATEGORY
    assert bare.equals(full[~is_category].reset_index(drop=True))
    hidden = set(full[C.RR_ITEM_ID]) - set(
        part.loc[part[C.RR_PROPERTY] == C.RR_PROP_CATEGORY, C.RR_ITEM_ID]
    )
    assert part.equals(
        full[~(is_category & full[C.RR_ITEM_ID].isin(hidden))].reset_index(drop=True)
    )
    assert len(hidden) == round(0.1 * 75) == 8


def test_an_uncategorised_share_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replace(PROFILES["default"], uncategorised_share=1.5)


def test_scale_multiplies_users_items_and_events(tmp_path: Path, shop: Shop) -> None:
    small = generate_shop(tmp_path, scale=0.125, seed=7)
    assert (small.users, small.items) == (500, 188)
    ratio = sum(shop.summary.events.values()) / sum(small.events.values())
    assert 1.6 < ratio < 2.4


def test_a_rerun_overwrites_the_files_it_owns(tmp_path: Path) -> None:
    generate_shop(tmp_path, scale=0.02, days=5)
    (tmp_path / "notes.txt").write_text("mine")
    generate_shop(tmp_path, scale=0.02, days=3, start=dt.date(2027, 1, 30))
    names = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert names == ["events_2027-01-30.csv", "events_2027-01-31.csv", "events_2027-02-01.csv"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_single_day_still_has_rows_from_outside_it(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path, scale=0.1, days=1)
    rows = _read_events(tmp_path)
    assert (
        (rows["defect"] == "timestamp_outside_day").sum()
        == summary.malformed_by_kind["timestamp_outside_day"]
        > 0
    )


@pytest.mark.skipif(not REAL_TREE.is_file(), reason=f"real category tree not at {REAL_TREE}")
def test_retailrocket_profile_has_the_published_shape(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path, "retailrocket", scale=0.01, category_tree=REAL_TREE)
    assert (summary.first_day, summary.last_day) == (dt.date(2015, 5, 3), dt.date(2015, 9, 18))
    assert summary.categories == 1_669
    share = summary.event_shares
    assert abs(share["view"] - 0.967) < 0.02
    assert abs(share["addtocart"] - 0.025) < 0.02
    assert abs(share["transaction"] - 0.008) < 0.02
    rows = _well_formed(_read_events(tmp_path))
    per_visitor = rows.groupby(C.RR_VISITOR_ID).size()
    assert (per_visitor == 1).mean() > 0.6
    assert 1.7 < len(rows) / len(per_visitor) < 2.3
    tree = pd.read_csv(tmp_path / "category_tree.csv", dtype="Int64")
    leaves = set(tree[C.RR_CATEGORY_ID]) - set(tree[C.RR_PARENT_ID].dropna())
    assert set(pd.read_csv(tmp_path / "items.csv")[C.RR_CATEGORY_ID]) <= leaves


def test_flat_profile_has_a_real_flat_catalogues_shape(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path, "flat")
    assert (summary.items, summary.categories, summary.days) == (7_498, 1_084, 10)
    tree = pd.read_csv(tmp_path / "category_tree.csv", dtype="Int64")
    assert tree[C.RR_PARENT_ID].isna().all()  # every category a root and a leaf
    used = pd.read_csv(tmp_path / "items.csv")[C.RR_CATEGORY_ID].nunique()
    assert used > 900  # most categories hold items
    per_day = sum(summary.events.values()) / summary.days
    assert 900 < per_day < 1_400 and summary.visitors_with_events <= 115
    assert 0 < summary.uncategorised_items < 0.01 * summary.items


def test_retailrocket_without_the_real_tree_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape("category_tree.csv.gz")):
        generate_shop(tmp_path / "out", "retailrocket", scale=0.001)
    with pytest.raises(FileNotFoundError, match=re.escape("nowhere.csv")):
        generate_shop(tmp_path / "out", scale=0.01, category_tree=tmp_path / "nowhere.csv")


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    assert {"default", "flat", "retailrocket"} <= set(PROFILES)
    with pytest.raises(ValueError, match="unknown profile"):
        generate_shop(tmp_path, "nope")
    with pytest.raises(ValueError, match="scale"):
        generate_shop(tmp_path, scale=0)
    with pytest.raises(ValueError, match="days"):
        generate_shop(tmp_path, days=0)
