"""Readers for RetailRocket's catalogue: item properties and the category tree.

``item_properties*.csv[.gz]`` holds ``timestamp,itemid,property,value``: one row per weekly
snapshot of a property that changed. The input is one file or a directory of such files
(the Kaggle data ships as ``item_properties_part1.csv`` and ``..._part2.csv``); a run for
date D gets the rows stamped on D (UTC). Most days have no snapshot, so an empty day is
normal here, unlike the event log.

``category_tree.csv[.gz]`` holds ``categoryid,parentid`` with an empty parent for a root. It
is small (the real one has 1,669 rows) and is read with pandas on the driver.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.dates import DayRange
from recsys_lib.io.events import RawInput
from recsys_lib.io.files import InputError, first_line, is_remote, list_remote, remote_head_lines

log = logging.getLogger(__name__)

ITEM_PROPERTIES_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in C.RR_ITEM_PROPERTY_COLUMNS]
)
ITEM_PROPERTIES_GLOBS = ("item_properties*.csv", "item_properties*.csv.gz")

# Columns of the frame returned by read_category_tree.
TREE_CATEGORY_ID = "category_id"
TREE_PARENT_ID = "parent_id"

_ID_PATTERN = r"\d{1,18}"
_MS_PATTERN = r"^\s*\d{1,15}\s*$"


def check_header(path: str, expected: tuple[str, ...], spark: SparkSession) -> None:
    """Raise :class:`InputError` naming ``path`` unless its header is ``expected``."""
    if is_remote(path):
        header = next(iter(remote_head_lines(spark, path, 1)), None)
    else:
        header = first_line(Path(path))
    if header is None:
        raise InputError("the file is empty (no header)", path)
    found = [h.strip() for h in header.split(",")]
    if found != list(expected):
        raise InputError(f"unexpected header {found}; expected {list(expected)}", path)


def read_csv(
    spark: SparkSession, paths: list[str], schema: T.StructType, columns: tuple[str, ...]
) -> DataFrame:
    """Rows of CSV files with the header ``columns`` (checked on each file first), all as text,
    plus ``source_file``."""
    for path in paths:
        check_header(path, columns, spark)
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .schema(schema)
        .csv(paths)
        .withColumn(C.SOURCE_FILE, F.col("_metadata.file_path"))
    )


def rows_on_days(rows: DataFrame, days: DayRange, source: Path) -> RawInput:
    """The catalogue ``rows`` whose epoch-milliseconds ``timestamp`` falls on a day of ``days``
    (UTC), with that day as ``dt``, cached. Rows whose timestamp does not parse belong to no
    day; their count is logged as a warning."""
    millis = F.when(F.col(C.RR_TIMESTAMP).rlike(_MS_PATTERN), F.trim(C.RR_TIMESTAMP).cast("long"))
    dated = rows.withColumn(C.DT, F.to_date(F.timestamp_millis(millis)))
    counts = {r[0]: int(r[1]) for r in dated.groupBy(C.DT).count().collect()}
    unattributable = counts.pop(None, 0)  # type: ignore[call-overload]
    if unattributable:
        log.warning(
            "%s: %d item property rows have no parseable timestamp and belong to no run date",
            source,
            unattributable,
        )
    inside = dated.filter(F.col(C.DT).between(F.lit(days.first), F.lit(days.last))).cache()
    return RawInput(inside, {d: counts.get(d, 0) for d in days.days})


def item_property_files(root: str, spark: SparkSession | None = None) -> list[str]:
    """The input files behind a configured path: the file itself, or the directory's
    ``item_properties*.csv[.gz]`` in name order (a remote path is listed by ``spark``)."""
    if is_remote(root):
        assert spark is not None
        listing = list_remote(spark, root.rstrip("/"))
        if list(listing) == [root]:
            return [root]
        names = {uri.rsplit("/", 1)[-1]: uri for uri in listing}
        files = [
            names[n] for n in sorted(names) if any(fnmatch(n, g) for g in ITEM_PROPERTIES_GLOBS)
        ]
    else:
        path = Path(root)
        if path.is_file():
            return [str(path)]
        if not path.is_dir():
            raise InputError("the item properties input does not exist", path)
        found = {f for pattern in ITEM_PROPERTIES_GLOBS for f in path.glob(pattern)}
        files = [str(f) for f in sorted(found)]
    if not files:
        raise InputError("the directory holds no item_properties*.csv[.gz] file", root)
    return files


def load_item_properties(spark: SparkSession, path: str, days: dt.date | DayRange) -> RawInput:
    """Raw property rows stamped on the run dates ``days`` (UTC), all as text, plus
    ``source_file`` and ``dt``, cached, with their count per day.

    Fails before any write if the input is missing or a file has another header. Zero rows
    is a valid answer. Rows whose timestamp does not parse belong to no day; their count is
    logged as a warning on every run.
    """
    files = item_property_files(path, spark)
    everything = read_csv(spark, files, ITEM_PROPERTIES_SCHEMA, C.RR_ITEM_PROPERTY_COLUMNS)
    return rows_on_days(everything, DayRange.of(days), Path(path))


def read_item_properties(spark: SparkSession, path: str, days: dt.date | DayRange) -> DataFrame:
    """The rows of :func:`load_item_properties`."""
    return load_item_properties(spark, path, days).rows


def read_category_tree(path: str, spark: SparkSession | None = None) -> pd.DataFrame:
    """The category tree as ``category_id`` (int64) and ``parent_id`` (nullable ``Int64``;
    ``<NA>`` for a root), in file order.

    Raises :class:`InputError` if the file is missing, has another header, holds a
    non-integer id, or lists a category twice. Whether every parent is itself a category is
    not checked here (see :func:`recsys_lib.transforms.catalogue.category_paths`).
    """
    file: Path | str
    if is_remote(path):  # small: its lines come to the driver through Spark
        assert spark is not None
        if not list_remote(spark, path):
            raise InputError("the category tree does not exist", path)
        lines = [str(r[0]) for r in spark.read.text(path).collect()]
        file, source = path, io.StringIO("\n".join(lines) + "\n")
    else:
        file = Path(path)
        if not file.is_file():
            raise InputError("the category tree does not exist", file)
        source = file  # type: ignore[assignment]
    try:
        text = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty (no header)", file) from None
    found = [str(c).strip() for c in text.columns]
    if found != list(C.RR_CATEGORY_TREE_COLUMNS):
        raise InputError(
            f"unexpected header {found}; expected {list(C.RR_CATEGORY_TREE_COLUMNS)}", file
        )
    category = text[C.RR_CATEGORY_ID].str.strip()
    parent = text[C.RR_PARENT_ID].str.strip()
    bad = ~category.str.fullmatch(_ID_PATTERN) | ~(
        parent.str.fullmatch(_ID_PATTERN) | (parent == "")
    )
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2  # 1-based, after the header
        raise InputError(
            f"{int(bad.sum())} rows with a category or parent id that is not a "
            f"non-negative integer (first at line {line}: "
            f"{text.iloc[line - 2].tolist()})",
            file,
        )
    tree = pd.DataFrame(
        {
            TREE_CATEGORY_ID: category.astype("int64"),
            TREE_PARENT_ID: pd.array([int(p) if p else None for p in parent], dtype="Int64"),
        }
    )
    duplicated = tree[TREE_CATEGORY_ID][tree[TREE_CATEGORY_ID].duplicated()]
    if not duplicated.empty:
        shown = sorted(set(duplicated.tolist()))[:10]
        raise InputError(f"{len(duplicated)} duplicate category ids, e.g. {shown}", file)
    return tree
