"""Deterministic generator of online-shop behaviour, written in RetailRocket's file formats.

The shop is simulated in whole arrays (numpy), never event by event:

1. a category tree (generated, or the real RetailRocket tree) whose leaves hold the items;
2. items with a Zipf-like popularity, a price around their category's base price and a
   first-seen day (a share of them appears during the window); a share of them has no
   category in the catalogue (items.csv keeps the truth);
3. users who each like 1-3 top-level categories (and one leaf in each) and visit in
   sessions on clustered days, at hours that follow a diurnal curve (UTC);
4. per session, views of items from a liked leaf, a liked root or anywhere (exploration);
   each view may lead to an add-to-cart, more often in a liked category, and a cart to a
   purchase; a session's purchases share one transaction id; a cart may bring the item's
   planted bundle partner (an item of another leaf of the same root) into the same
   session, viewed, carted and, if the first item is bought, bought with it;
5. a few bots that view random items all day long and never buy;
6. the damage a real log carries: ~0.5 % malformed rows of the kinds the ``clean`` stage
   rejects, and exact duplicate rows.

Everything is drawn from ``numpy.random`` streams spawned from the seed, so the same
arguments give byte-identical files. Example::

    summary = generate_shop(Path("data/shop"))              # the "default" demo shop
    summary = generate_shop(Path("/tmp/rr"), "retailrocket", scale=0.1)
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from recsys_lib import constants as C

Array = npt.NDArray[Any]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
REAL_CATEGORY_TREE = "../shared/data/retailrocket/category_tree.csv.gz"

# The clean stage's reject reasons, which is what each kind must trigger there.
MALFORMED_KINDS = (
    "bad_timestamp",
    "timestamp_outside_day",
    "unknown_event",
    "null_user_id",
    "null_item_id",
    "bad_item_id",
)
# The layouts the event log can be written in (conf/sources/ has a profile for each):
# RetailRocket's daily CSV files with a catalogue and a category tree; REES46's one
# multi-day CSV with each item's category and price on its rows (no catalogue, no tree, a
# removal from the cart now and then); Taobao's headerless daily CSV files, gzip-compressed,
# with epoch seconds, the item's category on its rows and favourites among the events.
FORMATS = ("retailrocket", "rees46", "taobao")
REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
# Category ids of the REES46 layout are 19-digit numbers, as in the public log.
REES46_CATEGORY_BASE = 2_053_013_552_000_000_000
_EVENT_NAMES_OF = {
    "rees46": {"view": "view", "addtocart": "cart", "transaction": "purchase"},
    "taobao": {"view": "pv", "addtocart": "cart", "transaction": "buy"},
}
# Rows of event names the profiles drop (counted, not used): share of the anchor events,
# the anchor event, the name, and the gap after the anchor.
_DROPPED_ROWS = {
    "rees46": (0.15, "addtocart", "remove_from_cart", 60_000),
    "taobao": (0.03, "view", "fav", 10_000),
}
EVENT_NAMES = (C.RR_VIEW, C.RR_ADDTOCART, C.RR_TRANSACTION)
_VIEW, _CART, _PURCHASE = 0, 1, 2
_EXPLORE, _LEAF, _ROOT = 0, 1, 2

# Events per UTC hour of the 5,000-visitor RetailRocket sample (../shared/data).
RETAILROCKET_HOURS = (
    476, 498, 546, 524, 514, 407, 240, 163, 93, 59, 83, 97,
    98, 185, 323, 453, 539, 631, 593, 543, 604, 630, 588, 498,
)  # fmt: skip
# A European shop in UTC: quiet nights, a lunch bump and an evening peak.
EVENING_HOURS = (
    30, 18, 12, 10, 12, 20, 40, 65, 80, 85, 90, 95,
    100, 95, 90, 90, 95, 110, 130, 140, 135, 110, 80, 50,
)  # fmt: skip


@dataclass(frozen=True)
class ShopProfile:
    """Every tunable of a generated shop. Counts are at ``scale=1``; rates are probabilities.

    Sessions per user and views per session are ``1 + NegativeBinomial`` with the given
    mean and dispersion (smaller dispersion: more single-session, single-view users).
    """

    name: str
    n_users: int
    n_items: int
    days: int
    start: dt.date
    # Category tree: a path (relative to the working directory) of a real tree, or None to
    # generate one with n_roots roots, ~children_per_root children each and grandchildren
    # under a share of the children; children_per_root 0: a flat catalogue (every category
    # a root and a leaf, as in logs that carry a category id without a hierarchy).
    category_tree: str | None = None
    n_roots: int = 8
    children_per_root: float = 4.0
    grandchildren_share: float = 0.4
    grandchildren_per_child: float = 3.0
    leaf_size_sigma: float = 1.0  # log-normal sigma of leaf sizes (long tail)
    # Items.
    # Popularity of the item of rank r (1 = most popular) is (r + q) ** -zipf_exponent with
    # q = zipf_offset_share * n_items (Zipf-Mandelbrot: q > 0 flattens the head).
    zipf_exponent: float = 0.9
    zipf_offset_share: float = 0.0
    new_item_share: float = 0.2  # first seen on a later day of the window
    item_id_space: float = 1.12  # item ids are drawn from range(item_id_space * n_items)
    base_price: float = 2500.0
    price_sigma: float = 0.35  # log-normal sigma of an item's price around its leaf's
    available_share: float = 0.9
    price_change_per_week: float = 0.04
    availability_change_per_week: float = 0.03
    extra_properties: bool = True  # hashed-token properties besides category/price/stock
    # Items without any categoryid row in item_properties.csv (items.csv keeps their true
    # category: the ground truth for category completion).
    uncategorised_share: float = 0.1
    # Users and sessions.
    sessions_mean: float = 4.5
    sessions_dispersion: float = 1.5
    session_views_mean: float = 3.5
    session_views_dispersion: float = 2.0
    session_gap_days: float = 3.0  # mean days between two sessions of a user
    taste_roots_p: tuple[float, float, float] = (0.5, 0.3, 0.2)  # P(1, 2, 3 liked roots)
    explore_share: float = 0.15  # sessions browsing the whole shop
    leaf_focus_share: float = 0.5  # sessions in a liked leaf (the rest: a liked root)
    repeat_view_share: float = 0.15  # a view of the item viewed just before
    hour_weights: tuple[int, ...] = EVENING_HOURS  # per UTC hour
    weekday_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.95, 0.85, 0.95)  # Mon..Sun
    view_gap_seconds: float = 60.0
    cart_gap_seconds: float = 30.0
    checkout_gap_seconds: float = 180.0
    # Funnel, over all views (bots included).
    cart_per_view: float = 0.035
    purchase_per_cart: float = 0.3
    taste_cart_lift: float = 3.0  # cart probability of a view in a liked root vs elsewhere
    # Bundles: a share of carts brings the item's partner (viewed and carted right after;
    # bought with it at this rate when the first item is bought). cart_per_view holds.
    bundle_share: float = 0.3
    bundle_purchase_share: float = 0.6
    # Bots: many views of random items at any hour, no carts.
    n_bots: int = 5
    bot_views_mean: float = 600.0
    # Damage.
    malformed_share: float = 0.005
    duplicate_share: float = 0.002

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.days) < 1:
            raise ValueError(f"profile {self.name!r}: n_users, n_items and days must be >= 1")
        shares = (
            self.new_item_share,
            self.available_share,
            self.uncategorised_share,
            self.explore_share + self.leaf_focus_share,
            self.repeat_view_share,
            self.cart_per_view,
            self.purchase_per_cart,
            self.bundle_share,
            self.bundle_purchase_share,
            self.malformed_share,
            self.duplicate_share,
        )
        if any(not 0.0 <= s <= 1.0 for s in shares):
            raise ValueError(f"profile {self.name!r}: a share or rate is outside [0, 1]")
        if len(self.hour_weights) != 24 or len(self.weekday_weights) != 7:
            raise ValueError(f"profile {self.name!r}: need 24 hour and 7 weekday weights")


PROFILES: dict[str, ShopProfile] = {
    # The demo and the tests: ~4k users, 1.5k items, 4 weeks, ~70k events.
    "default": ShopProfile(
        name="default", n_users=4_000, n_items=1_500, days=28, start=dt.date(2026, 10, 1)
    ),
    # A flat catalogue the size of a small real public log (issue 32): ~114 users over ten
    # days, ~1,100 events a day, 7.5k items in ~1,084 categories without a hierarchy, few
    # items without a category; sessions wander more than the default shop's.
    "flat": ShopProfile(
        name="flat",
        n_users=114,
        n_items=7_498,
        days=10,
        start=dt.date(2026, 10, 1),
        n_roots=1_084,
        children_per_root=0.0,
        uncategorised_share=0.004,
        sessions_mean=10.0,
        sessions_dispersion=2.0,
        session_views_mean=8.0,
        session_gap_days=0.8,
        explore_share=0.3,
        leaf_focus_share=0.4,
        n_bots=1,
        bot_views_mean=300.0,
    ),
    # Calibrated on RetailRocket's published statistics: 1,407,580 visitors, 2,756,101
    # events (96.7 % views, 2.5 % carts, 0.8 % transactions), 235,061 items with events,
    # 417,053 items with properties, 2015-05-03 .. 2015-09-18, the real category tree.
    "retailrocket": ShopProfile(
        name="retailrocket",
        n_users=1_407_560,
        n_items=417_053,
        days=139,
        start=dt.date(2015, 5, 3),
        category_tree=REAL_CATEGORY_TREE,
        leaf_size_sigma=1.5,
        zipf_exponent=1.3,
        zipf_offset_share=0.0012,
        new_item_share=0.3,
        item_id_space=1.12,
        base_price=5000.0,
        price_change_per_week=0.03,
        availability_change_per_week=0.03,
        sessions_mean=1.45,
        sessions_dispersion=0.08,
        session_views_mean=1.3,
        session_views_dispersion=0.2,
        session_gap_days=7.0,
        explore_share=0.3,
        leaf_focus_share=0.4,
        repeat_view_share=0.2,
        hour_weights=RETAILROCKET_HOURS,
        weekday_weights=(1.0,) * 7,
        view_gap_seconds=90.0,
        cart_per_view=69_332 / 2_664_312,
        purchase_per_cart=22_457 / 69_332,
        n_bots=20,
        bot_views_mean=1_000.0,
    ),
}


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_shop` wrote. ``events`` counts well-formed, distinct rows by
    event name; ``total_rows = sum(events) + malformed_rows + duplicate_rows``."""

    profile: str
    scale: float
    seed: int
    users: int
    bots: int
    items: int
    uncategorised_items: int
    categories: int
    visitors_with_events: int
    items_with_events: int
    events: Mapping[str, int]
    transactions: int
    malformed_rows: int
    malformed_by_kind: Mapping[str, int]
    duplicate_rows: int
    total_rows: int
    days: int
    first_day: dt.date
    last_day: dt.date
    out_dir: Path
    seconds: float
    format: str = "retailrocket"
    dropped_rows: int = 0  # rows of event names the format's profile drops (input.drop_events)
    events_path: str = "events"  # the event log, relative to out_dir

    @property
    def event_shares(self) -> dict[str, float]:
        """Share of each event name among the well-formed, distinct events."""
        total = sum(self.events.values())
        return {name: (n / total if total else 0.0) for name, n in self.events.items()}

    def manifest(self) -> dict[str, Any]:
        """The reproducible part (no timing, no output path), as written to manifest.json."""
        data = asdict(self)
        del data["out_dir"], data["seconds"]
        data["first_day"] = self.first_day.isoformat()
        data["last_day"] = self.last_day.isoformat()
        return data


def generate_shop(
    out_dir: Path,
    profile: str = "default",
    *,
    scale: float = 1.0,
    seed: int = C.DEFAULT_SEED,
    days: int | None = None,
    start: dt.date | None = None,
    category_tree: Path | None = None,
    format: str = "retailrocket",
) -> GenerationSummary:
    """Generate a shop into ``out_dir`` and return its counts.

    ``format`` is the layout of the files (:data:`FORMATS`); the shop is the same in each:
    the same users do the same things, only written differently.

    ``scale`` multiplies users, items and bots (and so events); ``days`` and ``start``
    override the profile's window; ``category_tree`` overrides the profile's tree file (the
    ``retailrocket`` profile reads ``../shared/data/retailrocket/category_tree.csv.gz``
    relative to the working directory by default). Files the generator owns in ``out_dir``
    are overwritten; daily event files of an earlier, longer run are removed.

    >>> generate_shop(Path("/tmp/shop"), scale=0.1).events["view"] > 0
    True
    """
    started = time.perf_counter()
    try:
        shop = PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}") from None
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    n_days = shop.days if days is None else days
    if n_days < 1:
        raise ValueError(f"days must be >= 1, got {n_days}")
    first_day = shop.start if start is None else start
    tree_path = category_tree
    if tree_path is None and shop.category_tree is not None:
        tree_path = Path(shop.category_tree)
    # One stream per concern; spawning more keeps the earlier streams as they were.
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]

    tree = _read_tree(tree_path) if tree_path is not None else _generate_tree(shop, rngs[0])
    items = _make_items(
        shop, tree, max(1, round(shop.n_items * scale)), n_days, rngs[1], bundle_rng=rngs[7]
    )
    n_users = max(1, round(shop.n_users * scale))
    n_bots = max(1, round(shop.n_bots * scale)) if shop.n_bots > 0 else 0
    bot_views = round(shop.n_bots * shop.bot_views_mean * scale)
    users = _make_users(shop, items, n_users, rngs[2])
    log = _simulate(
        shop, items, users, n_days, first_day, n_bots, bot_views, rngs[3], rngs[4], rngs[7]
    )
    rows = _damage(shop, log, n_days, first_day, items, rngs[5])

    out_dir.mkdir(parents=True, exist_ok=True)
    properties, hidden = _item_properties(items, first_day, n_days, rngs[6], shop)
    _write_truth(out_dir, items, first_day)
    dropped, events_path = 0, "events"
    if format == "retailrocket":
        _write_events(out_dir / "events", rows, first_day, n_days)
        tree.table.to_csv(out_dir / "category_tree.csv", index=False, lineterminator="\n")
        properties.to_csv(out_dir / "item_properties.csv", index=False, lineterminator="\n")
    else:
        for stale in ("category_tree.csv", "item_properties.csv"):
            (out_dir / stale).unlink(missing_ok=True)
        dropped, events_path = _write_events_as(
            format, out_dir, rows, items, hidden, first_day, n_days, rngs[8]
        )

    summary = GenerationSummary(
        profile=profile,
        scale=scale,
        seed=seed,
        users=n_users,
        bots=n_bots,
        items=len(items.ids),
        uncategorised_items=len(hidden),
        categories=len(tree.ids),
        visitors_with_events=rows.visitors_with_events,
        items_with_events=rows.items_with_events,
        events=rows.events,
        transactions=rows.transactions,
        malformed_rows=sum(rows.malformed_by_kind.values()),
        malformed_by_kind=rows.malformed_by_kind,
        duplicate_rows=rows.duplicate_rows,
        total_rows=len(rows.frame) + dropped,
        days=n_days,
        format=format,
        dropped_rows=dropped,
        events_path=events_path,
        first_day=first_day,
        last_day=first_day + dt.timedelta(days=n_days - 1),
        out_dir=out_dir,
        seconds=0.0,
    )
    manifest = {
        "profile_settings": _jsonable(asdict(shop)),
        "start": first_day.isoformat(),
        "category_tree": "generated" if tree_path is None else str(tree_path),
        **summary.manifest(),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return replace(summary, seconds=time.perf_counter() - started)


# --- category tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Tree:
    table: pd.DataFrame  # categoryid, parentid (nullable) in file order
    ids: Array  # category ids
    root: Array  # index (into ids) of each category's root
    leaves: Array  # indexes of the leaves


def _tree_from_parents(table: pd.DataFrame, source: str) -> _Tree:
    ids = table[C.RR_CATEGORY_ID].to_numpy(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{source}: duplicate category ids")
    parents = table[C.RR_PARENT_ID]
    order = np.argsort(ids)
    has_parent = parents.notna().to_numpy()
    parent_ids = parents.fillna(-1).to_numpy(np.int64)
    found = np.searchsorted(ids, parent_ids, sorter=order).clip(0, len(ids) - 1)
    parent = np.where(has_parent, order[found], -1)
    if (has_parent & (ids[parent] != parent_ids)).any():
        raise ValueError(f"{source}: a parentid is not a category id")
    root = np.arange(len(ids))
    for _ in range(len(ids) + 1):
        up = parent[root]
        if (up < 0).all():
            break
        root = np.where(up >= 0, up, root)
    else:
        raise ValueError(f"{source}: the tree has a cycle")
    is_parent = np.zeros(len(ids), bool)
    is_parent[parent[has_parent]] = True
    return _Tree(table=table, ids=ids, root=root, leaves=np.flatnonzero(~is_parent))


def _read_tree(path: Path) -> _Tree:
    if not path.is_file():
        raise FileNotFoundError(
            f"category tree not found: {path} (resolved: {path.resolve()}); the retailrocket "
            "profile reads the real tree from ../shared/data/retailrocket/ relative to the "
            "working directory; pass category_tree= to point elsewhere"
        )
    table = pd.read_csv(path, dtype={C.RR_CATEGORY_ID: "Int64", C.RR_PARENT_ID: "Int64"})
    if list(table.columns) != [C.RR_CATEGORY_ID, C.RR_PARENT_ID]:
        raise ValueError(f"{path}: expected columns categoryid,parentid, got {list(table)}")
    return _tree_from_parents(table, str(path))


def _generate_tree(shop: ShopProfile, rng: np.random.Generator) -> _Tree:
    n_roots = shop.n_roots
    n_children = 1 + rng.poisson(max(shop.children_per_root - 1, 0), n_roots)
    if shop.children_per_root <= 0:
        n_children = np.zeros(n_roots, np.int64)
    child_parent = np.repeat(np.arange(n_roots), n_children)
    has_grand = rng.random(len(child_parent)) < shop.grandchildren_share
    n_grand = np.where(has_grand, 2 + rng.poisson(max(shop.grandchildren_per_child - 2, 0)), 0)
    grand_parent = np.repeat(n_roots + np.arange(len(child_parent)), n_grand)
    parent = np.concatenate([np.full(n_roots, -1), child_parent, grand_parent])
    ids = rng.choice(4 * len(parent), len(parent), replace=False).astype(np.int64)
    table = pd.DataFrame(
        {
            C.RR_CATEGORY_ID: pd.array(ids, dtype="Int64"),
            C.RR_PARENT_ID: pd.array(np.where(parent >= 0, ids[parent], 0), dtype="Int64"),
        }
    )
    table.loc[parent < 0, C.RR_PARENT_ID] = pd.NA
    return _tree_from_parents(table, "generated tree")


# --- items and users ---------------------------------------------------------------------


class _Sampler:
    """Draws elements within groups, proportionally to their weights (inverse CDF)."""

    def __init__(self, group: Array, weight: Array, n_groups: int) -> None:
        self.order = np.argsort(group, kind="stable")
        self.cum = np.cumsum(weight[self.order])
        counts = np.bincount(group, minlength=n_groups)
        self.hi = np.cumsum(counts)
        self.lo = self.hi - counts
        self.mass = np.bincount(group, weights=weight, minlength=n_groups)
        self.base = np.concatenate([[0.0], self.cum])[self.lo]

    def draw(self, groups: Array, rng: np.random.Generator) -> Array:
        target = self.base[groups] + rng.random(len(groups)) * self.mass[groups]
        index = np.searchsorted(self.cum, target, side="right")
        return np.asarray(self.order[np.clip(index, self.lo[groups], self.hi[groups] - 1)])


@dataclass(frozen=True)
class _Items:
    ids: Array  # itemid
    leaf: Array  # index into tree.leaves
    root: Array  # index into roots
    category: Array  # category id (a leaf)
    price: Array  # whole currency units
    first_seen: Array  # day index
    available: Array  # 0/1 at first sight
    weight: Array  # popularity
    roots: Array  # category indexes of the roots holding items' leaves (all roots)
    n_leaves: int
    leaf_root: Array  # root index of each leaf
    partner: Array  # index of the item's bundle partner, -1 if none


def _make_items(
    shop: ShopProfile,
    tree: _Tree,
    n_items: int,
    n_days: int,
    rng: np.random.Generator,
    bundle_rng: np.random.Generator,
) -> _Items:
    roots = np.flatnonzero(tree.root == np.arange(len(tree.ids)))
    root_index = np.full(len(tree.ids), -1)
    root_index[roots] = np.arange(len(roots))
    leaf_root = root_index[tree.root[tree.leaves]]
    leaf_size = rng.lognormal(0.0, shop.leaf_size_sigma, len(tree.leaves))
    leaf = rng.choice(len(tree.leaves), n_items, p=leaf_size / leaf_size.sum())
    ids = np.sort(
        rng.choice(max(n_items, int(shop.item_id_space * n_items)), n_items, replace=False)
    )
    offset = shop.zipf_offset_share * n_items
    weight = (rng.permutation(n_items) + 1.0 + offset) ** -shop.zipf_exponent
    first_seen = np.where(
        rng.random(n_items) < shop.new_item_share, rng.integers(1, max(n_days, 2), n_items), 0
    )
    first_seen[np.argmax(weight)] = 0  # some item is always there to be viewed
    root_price = shop.base_price * rng.lognormal(0.0, 0.7, len(roots))
    leaf_price = root_price[leaf_root] * rng.lognormal(0.0, 0.5, len(tree.leaves))
    price = np.maximum(
        1.0, np.round(leaf_price[leaf] * rng.lognormal(0, shop.price_sigma, n_items))
    )
    item_root = leaf_root[leaf]
    return _Items(
        ids=ids.astype(np.int64),
        leaf=leaf,
        root=item_root,
        category=tree.ids[tree.leaves[leaf]],
        price=price,
        first_seen=first_seen,
        available=(rng.random(n_items) < shop.available_share).astype(np.int64),
        weight=weight,
        roots=roots,
        n_leaves=len(tree.leaves),
        leaf_root=leaf_root,
        partner=_bundle_partners(leaf, item_root, weight, len(roots), bundle_rng),
    )


def _bundle_partners(
    leaf: Array, root: Array, weight: Array, n_roots: int, rng: np.random.Generator
) -> Array:
    """Each item's bundle partner: an item of the same root drawn by popularity, from
    another leaf when a few draws find one; -1 for an item alone in its root."""
    sampler = _Sampler(root, weight, n_roots)
    partner = sampler.draw(root, rng)
    for _ in range(10):
        again = np.flatnonzero(leaf[partner] == leaf)
        if again.size == 0:
            break
        partner[again] = sampler.draw(root[again], rng)
    partner[partner == np.arange(len(partner))] = -1
    return np.asarray(partner, np.int64)


@dataclass(frozen=True)
class _Users:
    roots: Array  # (n, 3) liked root indexes, -1 where unused
    leaves: Array  # (n, 3) one liked leaf in each liked root, -1 where unused
    n_tastes: Array  # 1..3


def _make_users(shop: ShopProfile, items: _Items, n_users: int, rng: np.random.Generator) -> _Users:
    root_mass = np.bincount(items.root, weights=items.weight, minlength=len(items.roots))
    leaf_mass = np.bincount(items.leaf, weights=items.weight, minlength=items.n_leaves)
    n_tastes = rng.choice(3, n_users, p=np.asarray(shop.taste_roots_p) / sum(shop.taste_roots_p))
    n_tastes = np.minimum(n_tastes + 1, np.count_nonzero(root_mass))
    cdf = np.cumsum(root_mass)
    roots = np.full((n_users, 3), -1)
    for slot in range(3):
        need = np.flatnonzero(n_tastes > slot)
        for _ in range(100):  # redraw roots already liked (a few rounds on a shrinking set)
            if need.size == 0:
                break
            draw = np.searchsorted(cdf, rng.random(need.size) * cdf[-1], side="right")
            roots[need, slot] = np.minimum(draw, len(cdf) - 1)
            need = need[(roots[need, :slot] == roots[need, slot, None]).any(axis=1)]
        roots[need, slot] = -1
        n_tastes[need] = slot
    leaf_sampler = _Sampler(items.leaf_root, leaf_mass, len(items.roots))
    leaves = np.full((n_users, 3), -1)
    liked = roots >= 0
    leaves[liked] = leaf_sampler.draw(roots[liked], rng)
    return _Users(roots=roots, leaves=leaves, n_tastes=n_tastes)


# --- behaviour ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Log:
    ts: Array  # epoch ms
    visitor: Array  # visitorid
    event: Array  # _VIEW / _CART / _PURCHASE
    item: Array  # item index
    tid: Array  # transaction id, -1 if none
    day: Array  # day index of ts


def _one_plus_nb(rng: np.random.Generator, mean: float, dispersion: float, n: int) -> Array:
    extra = mean - 1.0
    if extra <= 0:
        return np.ones(n, np.int64)
    return 1 + rng.negative_binomial(dispersion, dispersion / (dispersion + extra), n)


def _group_cumsum(values: Array, counts: Array) -> Array:
    """Cumulative sums restarting at each group of consecutive ``counts`` elements."""
    total = np.cumsum(values)
    starts = np.cumsum(counts) - counts
    return np.asarray(total - np.repeat(total[starts] - values[starts], counts))


def _draw_items(
    samplers: tuple[_Sampler, _Sampler, _Sampler],
    items: _Items,
    mode: Array,
    group: Array,
    day: Array,
    rng: np.random.Generator,
) -> Array:
    """Items for views, never one before its first-seen day (redrawn until it fits)."""
    mode, group = mode.copy(), group.copy()
    chosen = np.empty(len(mode), np.int64)
    todo = np.arange(len(mode))
    for attempt in range(60):
        if attempt == 10:  # a young leaf or root: fall back to the whole shop
            mode[todo], group[todo] = _EXPLORE, 0
        for m, sampler in enumerate(samplers):
            sel = todo[mode[todo] == m]
            chosen[sel] = sampler.draw(group[sel], rng)
        todo = todo[items.first_seen[chosen[todo]] > day[todo]]
        if todo.size == 0:
            break
    chosen[todo] = int(np.argmax(items.weight))
    return chosen


def _simulate(
    shop: ShopProfile,
    items: _Items,
    users: _Users,
    n_days: int,
    first_day: dt.date,
    n_bots: int,
    bot_views: int,
    rng: np.random.Generator,
    bot_rng: np.random.Generator,
    bundle_rng: np.random.Generator,
) -> _Log:
    n_users = len(users.n_tastes)
    visitor_ids = rng.permutation(n_users + n_bots).astype(np.int64)
    day0_ms = (first_day - dt.date(1970, 1, 1)).days * DAY_MS

    # Sessions: a first day (weekday-weighted), then return visits after geometric gaps.
    n_sessions = _one_plus_nb(rng, shop.sessions_mean, shop.sessions_dispersion, n_users)
    session_user = np.repeat(np.arange(n_users), n_sessions)
    n_s = len(session_user)
    weekday0 = first_day.weekday()
    day_weight = np.asarray(shop.weekday_weights)[(weekday0 + np.arange(n_days)) % 7]
    first = rng.choice(n_days, n_users, p=day_weight / day_weight.sum())
    gap = rng.geometric(1.0 / (1.0 + shop.session_gap_days), n_s) - 1
    is_first = np.zeros(n_s, bool)
    is_first[np.cumsum(n_sessions) - n_sessions] = True
    session_day = _group_cumsum(np.where(is_first, first[session_user], gap), n_sessions) % n_days
    slot = (rng.random(n_s) * users.n_tastes[session_user]).astype(np.int64)
    pick = rng.random(n_s)
    mode = np.where(
        pick < shop.explore_share,
        _EXPLORE,
        np.where(pick < shop.explore_share + shop.leaf_focus_share, _LEAF, _ROOT),
    )
    group = np.select(
        [mode == _EXPLORE, mode == _LEAF],
        [0, users.leaves[session_user, slot]],
        users.roots[session_user, slot],
    )

    # Views within sessions.
    n_views = _one_plus_nb(rng, shop.session_views_mean, shop.session_views_dispersion, n_s)
    view_session = np.repeat(np.arange(n_s), n_views)
    n_v = len(view_session)
    position = np.arange(n_v) - np.repeat(np.cumsum(n_views) - n_views, n_views)
    repeat = (position > 0) & (rng.random(n_v) < shop.repeat_view_share)
    fresh = np.flatnonzero(~repeat)
    samplers = (
        _Sampler(np.zeros(len(items.ids), np.int64), items.weight, 1),
        _Sampler(items.leaf, items.weight, items.n_leaves),
        _Sampler(items.root, items.weight, len(items.roots)),
    )
    view_item = np.zeros(n_v, np.int64)
    fs = view_session[fresh]
    view_item[fresh] = _draw_items(samplers, items, mode[fs], group[fs], session_day[fs], rng)
    source = np.where(repeat, 0, np.arange(n_v))
    view_item = view_item[np.maximum.accumulate(source)]
    step = rng.exponential(shop.view_gap_seconds * 1000.0, n_v)
    step[position == 0] = 0.0
    view_rel = _group_cumsum(step, n_views)

    # Funnel: carts (likelier in a liked root), bundle partners, purchases, one checkout.
    # The first carts' rate leaves room for the bundles' views and carts.
    view_user = session_user[view_session]
    liked = (users.roots[view_user] == items.root[view_item][:, None]).any(axis=1)
    liked_share = float(liked.mean()) if n_v else 0.0
    bundle_room = 1.0 + shop.bundle_share * (1.0 - shop.cart_per_view)
    cart_rate = min(1.0, shop.cart_per_view * (n_v + bot_views) / max(n_v, 1) / bundle_room)
    plain = cart_rate / (shop.taste_cart_lift * liked_share + (1.0 - liked_share))
    carted = np.flatnonzero(
        rng.random(n_v) < np.minimum(1.0, np.where(liked, shop.taste_cart_lift * plain, plain))
    )
    cart_rel = view_rel[carted] + rng.exponential(shop.cart_gap_seconds * 1000.0, len(carted))
    span = view_rel[np.cumsum(n_views) - 1]
    first_carts = len(carted)
    brings = np.flatnonzero(bundle_rng.random(first_carts) < shop.bundle_share)
    partner = items.partner[view_item[carted[brings]]]
    fits = (partner >= 0) & (items.first_seen[partner] <= session_day[view_session[carted[brings]]])
    brings, partner = brings[fits], partner[fits]
    n_bundles = len(brings)
    partner_view_rel = cart_rel[brings] + bundle_rng.exponential(
        shop.view_gap_seconds * 1000.0, n_bundles
    )
    partner_cart_rel = partner_view_rel + bundle_rng.exponential(
        shop.cart_gap_seconds * 1000.0, n_bundles
    )
    view_session = np.concatenate([view_session, view_session[carted[brings]]])
    view_item = np.concatenate([view_item, partner])
    view_rel = np.concatenate([view_rel, partner_view_rel])
    carted = np.concatenate([carted, n_v + np.arange(n_bundles)])
    cart_rel = np.concatenate([cart_rel, partner_cart_rel])
    n_v = len(view_session)
    view_user = session_user[view_session]
    # Purchases: the first carts at a rate that keeps purchase_per_cart over all carts; a
    # partner is bought with its item at bundle_purchase_share.
    first_purchase_rate = shop.purchase_per_cart * (1.0 + shop.bundle_share)
    first_purchase_rate /= 1.0 + shop.bundle_share * shop.bundle_purchase_share
    bought = np.flatnonzero(rng.random(first_carts) < min(1.0, first_purchase_rate))
    with_item = np.isin(brings, bought) & (
        bundle_rng.random(n_bundles) < shop.bundle_purchase_share
    )
    bought = np.concatenate([bought, first_carts + np.flatnonzero(with_item)])
    bought = bought[np.argsort(view_session[carted[bought]], kind="stable")]
    key = view_session[carted[bought]] * len(items.ids) + view_item[carted[bought]]
    bought = bought[np.sort(np.unique(key, return_index=True)[1])]  # an item once per checkout
    buy_session = view_session[carted[bought]]
    paying, first_buy = np.unique(buy_session, return_index=True)
    checkout = np.maximum.reduceat(cart_rel[bought], first_buy) if len(bought) else np.empty(0)
    checkout = checkout + rng.exponential(shop.checkout_gap_seconds * 1000.0, len(paying))

    # Session start from the diurnal curve, kept inside its day.
    np.maximum.at(span, view_session[carted], cart_rel)
    span[paying] = np.maximum(span[paying], checkout)
    hours = np.asarray(shop.hour_weights, float)
    start = (rng.choice(24, n_s, p=hours / hours.sum()) + rng.random(n_s)) * HOUR_MS
    start = np.clip(np.minimum(start, DAY_MS - 1 - span), 0, None)
    session_ms = day0_ms + session_day * DAY_MS + start
    day_end = day0_ms + (session_day + 1) * DAY_MS - 1

    def stamp(session: Array, rel: Array) -> Array:
        return np.asarray(np.minimum(session_ms[session] + rel, day_end[session]), np.int64)

    checkout_ts = stamp(paying, checkout)
    tid = np.empty(len(paying), np.int64)
    tid[np.argsort(checkout_ts, kind="stable")] = np.arange(len(paying))
    buy_index = np.searchsorted(paying, buy_session)

    # Bots: random items available that day, any hour, no funnel.
    bot_share = bot_rng.lognormal(0.0, 1.0, n_bots) if n_bots else np.ones(1)
    per_bot = bot_rng.multinomial(bot_views if n_bots else 0, bot_share / bot_share.sum())
    bot_visitor = np.repeat(visitor_ids[n_users:], per_bot[:n_bots])
    bot_day = bot_rng.integers(0, n_days, len(bot_visitor))
    by_age = np.argsort(items.first_seen, kind="stable")
    n_open = np.searchsorted(items.first_seen[by_age], bot_day, side="right")
    bot_item = by_age[(bot_rng.random(len(bot_visitor)) * n_open).astype(np.int64)]
    bot_ts = day0_ms + bot_day * DAY_MS + bot_rng.integers(0, DAY_MS, len(bot_visitor))

    def cat(*parts: Array) -> Array:
        return np.concatenate([np.asarray(p, np.int64) for p in parts])

    n_c, n_p, n_b = len(carted), len(bought), len(bot_visitor)
    buy_session_day = session_day[buy_session]
    return _Log(
        ts=cat(
            stamp(view_session, view_rel),
            stamp(view_session[carted], cart_rel),
            checkout_ts[buy_index],
            bot_ts,
        ),
        visitor=cat(
            visitor_ids[view_user],
            visitor_ids[view_user[carted]],
            visitor_ids[session_user[buy_session]],
            bot_visitor,
        ),
        event=cat(
            np.full(n_v, _VIEW), np.full(n_c, _CART), np.full(n_p, _PURCHASE), np.full(n_b, _VIEW)
        ),
        item=cat(view_item, view_item[carted], view_item[carted[bought]], bot_item),
        tid=cat(np.full(n_v + n_c, -1), tid[buy_index], np.full(n_b, -1)),
        day=cat(
            session_day[view_session], session_day[view_session[carted]], buy_session_day, bot_day
        ),
    )


# --- damage and output -------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    frame: pd.DataFrame  # the five text columns, sorted by file day then time
    file_day: Array  # day index of the file each row goes to
    events: dict[str, int]
    transactions: int
    malformed_by_kind: dict[str, int]
    duplicate_rows: int
    visitors_with_events: int
    items_with_events: int


def _damage(
    shop: ShopProfile,
    log: _Log,
    n_days: int,
    first_day: dt.date,
    items: _Items,
    rng: np.random.Generator,
) -> _Rows:
    """Text rows with malformed rows (one defect each) and exact duplicates injected."""
    n = len(log.ts)
    day0_ms = (first_day - dt.date(1970, 1, 1)).days * DAY_MS
    n_bad = min(n, max(round(shop.malformed_share * n), len(MALFORMED_KINDS)))
    if shop.malformed_share == 0:
        n_bad = 0
    kind = rng.permutation(np.arange(n_bad) % len(MALFORMED_KINDS))
    is_late = kind == 1
    # Late rows: events of day d delivered in the file of d + 1 (with one day, a stale stamp).
    may_be_late = np.flatnonzero(log.day < n_days - 1) if n_days > 1 else np.arange(n)
    late = rng.choice(may_be_late, min(int(is_late.sum()), len(may_be_late)), replace=False)
    taken = np.zeros(n, bool)
    taken[late] = True
    others = rng.choice(np.flatnonzero(~taken), int((~is_late).sum()), replace=False)
    bad = np.concatenate([late, others])
    kind = np.concatenate([np.full(len(late), 1), kind[~is_late]])
    malformed = np.zeros(n, bool)
    malformed[bad] = True

    ts = log.ts.copy()
    file_day = log.day.copy()
    sort_ms = log.ts.copy()
    if n_days > 1:
        file_day[late] += 1
        sort_ms[late] = day0_ms + file_day[late] * DAY_MS + rng.integers(0, 2 * HOUR_MS, len(late))
    else:
        ts[late] -= DAY_MS

    text = {
        C.RR_TIMESTAMP: ts.astype(str).astype(object),
        C.RR_VISITOR_ID: log.visitor.astype(str).astype(object),
        C.RR_EVENT: np.asarray(EVENT_NAMES, dtype=object)[log.event],
        C.RR_ITEM_ID: items.ids[log.item].astype(str).astype(object),
        C.RR_TRANSACTION_ID: np.where(log.tid >= 0, log.tid.astype(str), "").astype(object),
    }
    variant = np.arange(len(bad)) % 3
    for k, column, choices in (
        (0, C.RR_TIMESTAMP, None),
        (2, C.RR_EVENT, ("click", "View", "remove_from_cart")),
        (3, C.RR_VISITOR_ID, ("", "", "")),
        (4, C.RR_ITEM_ID, ("", "", "")),
        (5, C.RR_ITEM_ID, None),
    ):
        rows, v = bad[kind == k], variant[kind == k]
        if k == 0:
            iso = pd.to_datetime(log.ts[rows], unit="ms").strftime("%Y-%m-%dT%H:%M:%SZ")
            values = np.where(v == 0, "", np.where(v == 1, "not-a-time", np.asarray(iso)))
        elif k == 5:
            item = items.ids[log.item[rows]].astype(str).astype(object)
            values = np.where(v == 0, item + ".0", np.where(v == 1, "undefined", "#" + item))
        else:
            assert choices is not None
            values = np.asarray(choices, dtype=object)[v]
        text[column][rows] = values
        if k == 2:  # a "click" carries no transaction id, even if it was a purchase
            text[C.RR_TRANSACTION_ID][rows] = ""

    # Exact copies of well-formed rows, next to their original.
    n_dup = max(1, round(shop.duplicate_share * n)) if shop.duplicate_share > 0 and n else 0
    dup = np.sort(rng.choice(np.flatnonzero(~malformed), min(n_dup, n - n_bad), replace=False))
    index = np.concatenate([np.arange(n), dup])
    order = index[np.lexsort((index, sort_ms[index], file_day[index]))]
    frame = pd.DataFrame({c: v[order] for c, v in text.items()})

    good = ~malformed[order]
    fields = pd.DataFrame(
        {
            "day": file_day[order],
            "ts": log.ts[order],
            "visitor": log.visitor[order],
            "event": log.event[order],
            "item": log.item[order],
            "tid": log.tid[order],
        }
    )[good]
    copies = fields.duplicated()
    distinct = fields[~copies.to_numpy()]
    counts = np.bincount(distinct["event"].to_numpy(), minlength=3)
    tids = distinct["tid"].to_numpy()
    return _Rows(
        frame=frame,
        file_day=file_day[order],
        events={name: int(c) for name, c in zip(EVENT_NAMES, counts, strict=True)},
        transactions=len(np.unique(tids[tids >= 0])),
        malformed_by_kind={
            name: int(c)
            for name, c in zip(MALFORMED_KINDS, np.bincount(kind, minlength=6), strict=True)
        },
        duplicate_rows=int(copies.sum()),
        visitors_with_events=int(distinct["visitor"].nunique()),
        items_with_events=int(distinct["item"].nunique()),
    )


def _write_events(directory: Path, rows: _Rows, first_day: dt.date, n_days: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("events_*.csv"):
        stale.unlink()
    bounds = np.searchsorted(rows.file_day, np.arange(n_days + 1))
    for d in range(n_days):
        day = first_day + dt.timedelta(days=d)
        rows.frame.iloc[bounds[d] : bounds[d + 1]].to_csv(
            directory / f"events_{day.isoformat()}.csv", index=False, lineterminator="\n"
        )


def _write_truth(out_dir: Path, items: _Items, first_day: dt.date) -> None:
    """items.csv: every item's true category, price, first day and bundle partner."""
    first_seen = pd.to_datetime(first_day) + pd.to_timedelta(items.first_seen, unit="D")
    pd.DataFrame(
        {
            C.RR_ITEM_ID: items.ids,
            C.RR_CATEGORY_ID: items.category,
            C.GEN_PRICE: items.price,
            C.GEN_FIRST_SEEN: first_seen.strftime("%Y-%m-%d"),
            C.GEN_BUNDLE_PARTNER: pd.Series(items.ids[items.partner], dtype="Int64").where(
                items.partner >= 0
            ),
        }
    ).to_csv(out_dir / "items.csv", index=False, lineterminator="\n", float_format="%.3f")


def _write_events_as(
    fmt: str,
    out_dir: Path,
    rows: _Rows,
    items: _Items,
    hidden: Array,
    first_day: dt.date,
    n_days: int,
    rng: np.random.Generator,
) -> tuple[int, str]:
    """Write the event log in the REES46 or Taobao layout (module docstring of FORMATS);
    returns the rows of dropped event names added and the log's path under ``out_dir``."""
    frame, file_day = rows.frame, rows.file_day
    share, anchor, name, gap_ms = _DROPPED_ROWS[fmt]
    ts_text = frame[C.RR_TIMESTAMP].astype(str)
    valid_ms = ts_text.str.fullmatch(r"\d+").to_numpy()
    candidates = np.flatnonzero((frame[C.RR_EVENT] == anchor).to_numpy() & valid_ms)
    chosen = np.sort(rng.choice(candidates, round(share * len(candidates)), replace=False))
    extra = frame.iloc[chosen].copy()
    extra[C.RR_TIMESTAMP] = (ts_text.iloc[chosen].astype(np.int64) + gap_ms).astype(str)
    extra[C.RR_EVENT] = name
    extra[C.RR_TRANSACTION_ID] = ""
    order = np.argsort(np.concatenate([np.arange(len(frame)), chosen + 0.5]), kind="stable")
    log = pd.concat([frame, extra], ignore_index=True).iloc[order].reset_index(drop=True)
    day = np.concatenate([file_day, file_day[chosen]])[order]

    # The item's category (hidden ones: none, as in the catalogue) and price, by id text.
    categorised = np.ones(len(items.ids), bool)
    categorised[hidden] = False
    known = pd.Series(np.arange(len(items.ids)), index=items.ids.astype(str))
    index = log[C.RR_ITEM_ID].map(known)
    found = index.notna().to_numpy()
    at = index.fillna(0).astype(np.int64).to_numpy()
    has_category = found & categorised[at]
    names = _EVENT_NAMES_OF[fmt]
    event = log[C.RR_EVENT].map(lambda e: names.get(e, e)).to_numpy(object)
    # A damaged row whose name happens to be the dropped one stays unknown to the profile.
    event[(order < len(frame)) & (event == name)] = name.replace("_", "-") + "?"
    ts_text = log[C.RR_TIMESTAMP].astype(str)
    digits = ts_text.str.fullmatch(r"\d+").fillna(False).to_numpy()
    iso = ts_text.str.match(r"\d{4}-\d{2}-\d{2}").fillna(False).to_numpy()
    ms = np.where(digits, pd.to_numeric(ts_text.where(digits, "0")), 0).astype(np.int64)
    if fmt == "rees46":
        stamp = pd.to_datetime(ms, unit="ms").strftime("%Y-%m-%d %H:%M:%S UTC").to_numpy()
        # An ISO time is valid here: the damaged rows of that kind get milliseconds instead.
        iso_ms = pd.to_datetime(ts_text.where(iso, "1970-01-01T00:00:00Z"), utc=True)
        time_text = np.where(
            digits, stamp, np.where(iso, (iso_ms.astype("int64") // 1_000_000).astype(str), ts_text)
        )
        category = np.where(
            has_category, (REES46_CATEGORY_BASE + items.category[at]).astype(str), ""
        )
        code = np.where(has_category, "c" + items.category[at].astype(str), "")
        price = np.where(found, np.char.mod("%.2f", items.price[at].astype(float)), "")
        session = pd.util.hash_pandas_object(
            pd.DataFrame({"u": log[C.RR_VISITOR_ID], "d": day}), index=False
        ).map("{:016x}".format)
        out = pd.DataFrame(
            {
                "event_time": time_text,
                "event_type": event,
                "product_id": log[C.RR_ITEM_ID],
                "category_id": category,
                "category_code": code,
                "brand": np.where(found, "brand" + (at % 40).astype(str), ""),
                "price": price,
                "user_id": log[C.RR_VISITOR_ID],
                "user_session": session.to_numpy(),
            },
            columns=list(REES46_COLUMNS),
        )
        events = out_dir / "events"
        if events.is_dir():
            for stale in events.iterdir():
                stale.unlink()
            events.rmdir()
        out.to_csv(out_dir / "events.csv", index=False, lineterminator="\n")
        return len(chosen), "events.csv"
    seconds = np.where(digits, (ms // 1000).astype(str), ts_text)
    out = pd.DataFrame(
        {
            "user_id": log[C.RR_VISITOR_ID],
            "item_id": log[C.RR_ITEM_ID],
            "category_id": np.where(has_category, items.category[at].astype(str), ""),
            "behavior_type": event,
            "timestamp": seconds,
        },
        columns=list(TAOBAO_COLUMNS),
    )
    directory = out_dir / "events"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():
        stale.unlink()
    bounds = np.searchsorted(day, np.arange(n_days + 1))
    for d in range(n_days):
        name_of_day = (first_day + dt.timedelta(days=d)).strftime("UserBehavior-%Y%m%d.csv.gz")
        out.iloc[bounds[d] : bounds[d + 1]].to_csv(
            directory / name_of_day, index=False, header=False, lineterminator="\n"
        )
    return len(chosen), "events"


def _item_properties(
    items: _Items, first_day: dt.date, n_days: int, rng: np.random.Generator, shop: ShopProfile
) -> tuple[pd.DataFrame, Array]:
    """Weekly snapshots: every property at the item's first week, then the changes; and the
    indexes of the items whose category rows were left out."""
    n = len(items.ids)
    day0_ms = (first_day - dt.date(1970, 1, 1)).days * DAY_MS
    week = items.first_seen // 7  # snapshot on the window's weekly grid, at or before day
    ids_text = items.ids.astype(str).astype(object)
    parts = [
        (week, ids_text, C.RR_PROP_CATEGORY, items.category.astype(str).astype(object)),
        (week, ids_text, C.RR_PROP_AVAILABLE, items.available.astype(str).astype(object)),
        (week, ids_text, C.RR_PROP_PRICE, _price_text(items.price)),
    ]
    if shop.extra_properties:
        tokens = rng.integers(0, 1_300_000, (n, 4)).astype(str).astype(object)
        parts.append(
            (week, ids_text, "888", tokens[:, 0] + " " + tokens[:, 1] + " " + tokens[:, 2])
        )
        parts.append((week, ids_text, "364", tokens[:, 3]))

    # Later weeks where the price or the availability changed.
    n_weeks = (n_days - 1) // 7 + 1
    later = n_weeks - 1 - week
    for prop, rate in (
        (C.RR_PROP_PRICE, shop.price_change_per_week),
        (C.RR_PROP_AVAILABLE, shop.availability_change_per_week),
    ):
        n_changes = np.minimum(rng.poisson(rate * later), later)
        item = np.repeat(np.arange(n), n_changes)
        when = week[item] + 1 + (rng.random(len(item)) * later[item]).astype(np.int64)
        first = np.unique(item * n_weeks + when, return_index=True)[1]
        item, when = item[first], when[first]  # sorted by item, then week
        if prop == C.RR_PROP_PRICE:
            factor = rng.lognormal(0.0, 0.15, len(item))
            value = _price_text(np.maximum(1.0, np.round(items.price[item] * factor)))
        else:
            run_start = np.flatnonzero(np.diff(item, prepend=-1))
            nth = np.arange(len(item)) - np.repeat(run_start, np.diff(run_start, append=len(item)))
            value = ((items.available[item] + nth + 1) % 2).astype(str).astype(object)
        parts.append((when, ids_text[item], prop, value))

    # Drawn last, so that the other rows do not depend on the share.
    n_hidden = round(shop.uncategorised_share * n)
    hidden = rng.choice(n, n_hidden, replace=False) if n_hidden else np.empty(0, np.int64)
    keep = np.ones(n, bool)
    keep[hidden] = False
    week0, ids0, prop0, value0 = parts[0]
    parts[0] = (week0[keep], ids0[keep], prop0, value0[keep])

    frame = pd.DataFrame(
        {
            C.RR_TIMESTAMP: np.concatenate([day0_ms + p[0] * 7 * DAY_MS for p in parts]),
            C.RR_ITEM_ID: np.concatenate([p[1] for p in parts]),
            C.RR_PROPERTY: np.concatenate([np.full(len(p[0]), p[2], dtype=object) for p in parts]),
            C.RR_VALUE: np.concatenate([p[3] for p in parts]),
        }
    )
    return frame.iloc[np.argsort(frame[C.RR_TIMESTAMP].to_numpy(), kind="stable")], hidden


def _price_text(price: Array) -> Array:
    """RetailRocket's price property: "n" + price with three decimals, e.g. ``n5280.000``."""
    whole = np.round(price).astype(np.int64).astype(str).astype(object)
    return "n" + whole + ".000"


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in data.items()}
