"""The item catalogue: category paths from the tree, and each item's values as of a run date.

Rules of :func:`item_snapshot` (the ``clean.items`` columns it fills):

- Only catalogue rows stamped before the end of the run date (UTC) count, whatever partition
  they sit in: a snapshot never sees the future.
- Per item and property the row with the latest timestamp wins (ties: the greater value,
  so that reruns agree); its value is then parsed. A winner that does not parse gives null;
  an older, parseable value is not used instead.
- Price (property ``790``) ``n5280.000`` -> 5280.0; availability ``1``/``0`` -> true/false;
  category id -> long. Rows whose item id or timestamp does not parse are dropped
  (:func:`unusable_property_rows` returns them for counting).
- A category absent from the tree keeps its id: path ``[id]``, top level and depth null
  (we do not know where it sits). A category whose chain of parents reaches an id absent
  from the tree has the known part of the path, a null top level, and a depth counted from
  the highest known ancestor (a lower bound).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.io.catalogue import TREE_CATEGORY_ID, TREE_PARENT_ID
from recsys_lib.io.files import InputError
from recsys_lib.warehouse.tables import CLEAN_ITEMS, conform

DAY_MS = 86_400_000

# Columns of category_paths (pandas) besides category_id and top_category_id.
PATH = "path"
DEPTH = "depth"
IS_LEAF = "is_leaf"

CATEGORIES_SCHEMA = T.StructType(
    [
        T.StructField(C.CATEGORY_ID, T.LongType(), False),
        T.StructField(C.CATEGORY_PATH, T.ArrayType(T.LongType(), False), False),
        T.StructField(C.TOP_CATEGORY_ID, T.LongType()),
        T.StructField(C.CATEGORY_DEPTH, T.IntegerType(), False),
        T.StructField(IS_LEAF, T.BooleanType(), False),
    ]
)

_MS_PATTERN = r"^\s*\d{1,15}\s*$"
_ID_PATTERN = r"^\s*\d{1,19}\s*$"
# Below 1e12, the upper bound of clean.items.price.
_PRICE_PATTERN = r"^\s*n?(\d{1,12}(\.\d+)?)\s*$"
_USED_PROPERTIES = (C.RR_PROP_CATEGORY, C.RR_PROP_AVAILABLE, C.RR_PROP_PRICE)


def category_paths(tree: pd.DataFrame) -> pd.DataFrame:
    """Per category of ``tree`` (``category_id``, ``parent_id`` as from
    :func:`~recsys_lib.io.catalogue.read_category_tree`), in tree order:

    - ``category_id``;
    - ``path``: list of ids from the top level down to the category;
    - ``top_category_id`` (``Int64``): the root, or ``<NA>`` when the chain of parents
      reaches an id that is not in the tree (``path`` then starts at the highest known
      ancestor);
    - ``depth``: ``len(path) - 1`` (0 for a root);
    - ``is_leaf``: no category has it as parent.

    Raises :class:`InputError` naming the category whose chain of parents loops.

    >>> tree = pd.DataFrame({"category_id": [1, 2], "parent_id": pd.array([None, 1], "Int64")})
    >>> category_paths(tree)["path"].tolist()
    [[1], [1, 2]]
    """
    ids = [int(c) for c in tree[TREE_CATEGORY_ID]]
    parent_of = {
        c: (None if pd.isna(p) else int(p)) for c, p in zip(ids, tree[TREE_PARENT_ID], strict=True)
    }
    resolved: dict[int, tuple[list[int], int | None]] = {}
    for start in ids:
        chain: list[int] = []  # start, its parent, ... up to where the walk stops
        node = start
        while True:
            if node in resolved:
                prefix, top = resolved[node]
                break
            if node not in parent_of:  # a parent id that is not a category
                prefix, top = [], None
                break
            if node in chain:
                loop = " -> ".join(str(c) for c in [*chain[chain.index(node) :], node])
                raise InputError(
                    f"category tree: the parents of category {start} form a cycle ({loop})"
                )
            chain.append(node)
            parent = parent_of[node]
            if parent is None:
                prefix, top = [], node
                break
            node = parent
        path = list(prefix)
        for category in reversed(chain):
            if category in resolved:
                continue
            path = [*path, category]
            resolved[category] = (path, top)
    parents = {p for p in parent_of.values() if p is not None}
    return pd.DataFrame(
        {
            C.CATEGORY_ID: pd.Series(ids, dtype="int64"),
            PATH: pd.Series([resolved[c][0] for c in ids], dtype=object),
            C.TOP_CATEGORY_ID: pd.array([resolved[c][1] for c in ids], dtype="Int64"),
            DEPTH: pd.Series([len(resolved[c][0]) - 1 for c in ids], dtype="int64"),
            IS_LEAF: pd.Series([c not in parents for c in ids], dtype=bool),
        }
    )


def categories_frame(spark: SparkSession, tree: pd.DataFrame) -> DataFrame:
    """:func:`category_paths` as a Spark frame: ``category_id``, ``category_path``,
    ``top_category_id``, ``category_depth``, ``is_leaf`` (:data:`CATEGORIES_SCHEMA`)."""
    paths = category_paths(tree)
    rows = [
        (
            int(r[C.CATEGORY_ID]),
            [int(c) for c in r[PATH]],
            None if pd.isna(r[C.TOP_CATEGORY_ID]) else int(r[C.TOP_CATEGORY_ID]),
            int(r[DEPTH]),
            bool(r[IS_LEAF]),
        )
        for r in paths.to_dict("records")
    ]
    return spark.createDataFrame(rows, CATEGORIES_SCHEMA)


def parse_price(value: Column) -> Column:
    """RetailRocket's price text (``n5280.000``; the ``n`` may be missing) as a double;
    null if it is anything else or not below 1e12."""
    number = F.regexp_extract(value, _PRICE_PATTERN, 1)
    return F.when(value.rlike(_PRICE_PATTERN), number.cast("double"))


def parse_available(value: Column) -> Column:
    """``1`` -> true, ``0`` -> false, anything else -> null."""
    text = F.trim(value)
    return F.when(text == "1", True).when(text == "0", False)


def parse_id(value: Column) -> Column:
    """A non-negative integer id as long (up to 2**63 - 1); null if it does not parse."""
    return F.when(value.rlike(_ID_PATTERN), F.trim(value).try_cast("long"))


def _end_of_day_ms(run_date: dt.date) -> int:
    return (run_date + dt.timedelta(days=1) - dt.date(1970, 1, 1)).days * DAY_MS


def _up_to(properties: DataFrame, run_date: dt.date) -> DataFrame:
    if C.DT in properties.columns:
        return properties.filter(F.col(C.DT) <= F.lit(run_date))
    return properties


def unusable_property_rows(properties: DataFrame, run_date: dt.date) -> DataFrame:
    """The rows (of partitions up to ``run_date``) that :func:`item_snapshot` drops because
    their item id or timestamp does not parse."""
    rows = _up_to(properties, run_date)
    return rows.filter(
        parse_id(F.col(C.RR_ITEM_ID)).isNull()
        | ~F.coalesce(F.col(C.RR_TIMESTAMP).rlike(_MS_PATTERN), F.lit(False))
    )


def flat_categories(items: DataFrame) -> DataFrame:
    """The categories of ``items`` as a tree without levels (every one a top-level leaf),
    in :data:`CATEGORIES_SCHEMA`: a shop without a category tree file."""
    category = F.col(C.CATEGORY_ID)
    return (
        items.filter(category.isNotNull())
        .select(category)
        .distinct()
        .select(
            category,
            F.array(category).alias(C.CATEGORY_PATH),
            category.alias(C.TOP_CATEGORY_ID),
            F.lit(0).alias(C.CATEGORY_DEPTH),
            F.lit(True).alias(IS_LEAF),
        )
    )


def item_snapshot(
    properties: DataFrame,
    first_event_days: DataFrame,
    categories: DataFrame,
    run_date: dt.date,
    *,
    flat: bool = False,
) -> DataFrame:
    """``clean.items`` for ``run_date`` from the catalogue rows known by then.

    ``properties``: ``raw.items`` rows (``dt``, ``timestamp``, ``itemid``, ``property``,
    ``value``, ...); partitions after ``run_date`` are ignored. ``first_event_days``:
    ``item_id``, ``first_seen`` (the item's first day in ``clean.events``) and, when the
    event rows carry them, ``category_id`` and ``price`` (their latest values), which fill
    what the catalogue does not say. ``categories``: :func:`categories_frame`; ``flat``: the
    shop has no tree, so every category is a top-level one. The items are those of either
    input; ``first_seen`` is the earlier of the first catalogue row and the first event.
    The rules for values are in this module's docstring.
    """
    end_ms = _end_of_day_ms(run_date)
    ts_ms = F.when(F.col(C.RR_TIMESTAMP).rlike(_MS_PATTERN), F.trim(C.RR_TIMESTAMP).cast("long"))
    rows = (
        _up_to(properties, run_date)
        .select(
            parse_id(F.col(C.RR_ITEM_ID)).alias(C.ITEM_ID),
            ts_ms.alias("_ts_ms"),
            F.trim(C.RR_PROPERTY).alias("_property"),
            F.col(C.RR_VALUE).alias("_value"),
        )
        .filter(
            F.col(C.ITEM_ID).isNotNull()
            & F.col("_ts_ms").isNotNull()
            & (F.col("_ts_ms") < F.lit(end_ms))
        )
    )
    listed = rows.groupBy(C.ITEM_ID).agg(F.min("_ts_ms").alias("_first_ms"))
    latest = (
        rows.filter(F.col("_property").isin(*_USED_PROPERTIES))
        .groupBy(C.ITEM_ID, "_property")
        .agg(F.max(F.struct("_ts_ms", "_value")).alias("_latest"))
    )

    def latest_value(prop: str) -> Column:
        return F.max(F.when(F.col("_property") == prop, F.col("_latest._value")))

    values = latest.groupBy(C.ITEM_ID).agg(
        latest_value(C.RR_PROP_CATEGORY).alias("_category"),
        latest_value(C.RR_PROP_PRICE).alias("_price"),
        latest_value(C.RR_PROP_AVAILABLE).alias("_available"),
        F.max("_latest._ts_ms").alias("_updated_ms"),
    )
    catalogue = listed.join(values, C.ITEM_ID, "left")

    def event_value(column: str, dtype: str) -> Column:
        if column in first_event_days.columns:
            return F.max(column).alias(f"_event_{column}")
        return F.lit(None).cast(dtype).alias(f"_event_{column}")

    seen_in_events = (
        first_event_days.filter(F.col(C.FIRST_SEEN) <= F.lit(run_date))
        .groupBy(C.ITEM_ID)
        .agg(
            F.min(C.FIRST_SEEN).alias("_event_first"),
            event_value(C.CATEGORY_ID, "long"),
            event_value(C.PRICE, "double"),
        )
    )
    in_tree = categories.select(
        F.col(C.CATEGORY_ID).alias("_tree_category"),
        F.col(C.CATEGORY_PATH).alias("_tree_path"),
        F.col(C.TOP_CATEGORY_ID).alias("_tree_top"),
        F.col(C.CATEGORY_DEPTH).alias("_tree_depth"),
    )
    category = F.col(C.CATEGORY_ID)
    has_category = category.isNotNull()
    top = F.col("_tree_top")
    depth = F.col("_tree_depth")
    if flat:
        top = F.coalesce(top, category)
        depth = F.when(has_category, F.coalesce(depth, F.lit(0)))
    items = (
        catalogue.join(seen_in_events, C.ITEM_ID, "full")
        .withColumn(
            C.CATEGORY_ID,
            F.coalesce(parse_id(F.col("_category")), F.col(f"_event_{C.CATEGORY_ID}")),
        )
        .join(F.broadcast(in_tree), category == F.col("_tree_category"), "left")
        .select(
            F.lit(run_date).alias(C.DT),
            C.ITEM_ID,
            category,
            F.when(has_category, F.coalesce(F.col("_tree_path"), F.array(category))).alias(
                C.CATEGORY_PATH
            ),
            top.alias(C.TOP_CATEGORY_ID),
            depth.alias(C.CATEGORY_DEPTH),
            F.when(has_category, F.lit(C.SOURCE_CATALOGUE)).alias(C.CATEGORY_SOURCE),
            F.when(has_category, F.lit(1.0)).alias(C.CATEGORY_CONFIDENCE),
            F.coalesce(parse_price(F.col("_price")), F.col(f"_event_{C.PRICE}")).alias(C.PRICE),
            parse_available(F.col("_available")).alias(C.AVAILABLE),
            F.least(
                F.date_from_unix_date(F.floor(F.col("_first_ms") / DAY_MS).cast("int")),
                F.col("_event_first"),
            ).alias(C.FIRST_SEEN),
            F.timestamp_millis(F.col("_updated_ms")).alias(C.PROPERTIES_UPDATED_AT),
        )
    )
    return conform(items, CLEAN_ITEMS)
