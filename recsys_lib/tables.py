"""Table contracts: the one place that names a table, its schema, partitioning and columns.

docs/tables.md is generated from this module (``recsys docs-tables``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from recsys_lib import constants as C


@dataclass(frozen=True)
class Column:
    name: str
    dtype: T.DataType
    doc: str
    nullable: bool = True


@dataclass(frozen=True)
class TableContract:
    """Name, grain, schema and partitioning of one Delta table."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = (C.DT,)
    key: tuple[str, ...] = ()

    @property
    def schema_name(self) -> str:
        return self.name.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".")[1]

    @property
    def relative_path(self) -> str:
        return f"{self.schema_name}/{self.table_name}"

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, c.dtype, c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


_DT = Column(C.DT, T.DateType(), "run date the row belongs to (UTC calendar day)", False)

RAW_EVENTS = TableContract(
    name="raw.events",
    grain="one input row of the event log, as received (all fields as text)",
    columns=(
        _DT,
        Column(C.RR_TIMESTAMP, T.StringType(), "event time, epoch milliseconds UTC, as received"),
        Column(C.RR_VISITOR_ID, T.StringType(), "raw visitor id (personal data: raw layer only)"),
        Column(C.RR_EVENT, T.StringType(), "event name as received (view/addtocart/transaction)"),
        Column(C.RR_ITEM_ID, T.StringType(), "item id as received"),
        Column(C.RR_TRANSACTION_ID, T.StringType(), "transaction id as received"),
        Column(C.SOURCE_FILE, T.StringType(), "input file the row came from", False),
        Column(C.INGESTED_AT, T.TimestampType(), "when the ingest stage read the row (UTC)", False),
    ),
)

CLEAN_EVENTS = TableContract(
    name="clean.events",
    grain="one typed, deduplicated, pseudonymised event",
    columns=(
        _DT,
        Column(C.EVENT_TS, T.TimestampType(), "event time (UTC)", False),
        Column(C.USER_ID, T.StringType(), "HMAC-SHA256 of the visitor id (hex)", False),
        Column(C.ITEM_ID, T.LongType(), "item id", False),
        Column(C.EVENT_TYPE, T.StringType(), "view, cart or purchase", False),
        Column(C.TRANSACTION_ID, T.StringType(), "transaction id (purchases only)"),
        Column(C.SOURCE_FILE, T.StringType(), "input file the event came from", False),
    ),
)

CLEAN_EVENTS_REJECTED = TableContract(
    name="clean.events_rejected",
    grain="one input row that failed a cleaning rule, with the first rule it failed",
    columns=(
        _DT,
        Column(C.RR_TIMESTAMP, T.StringType(), "event time as received"),
        Column(C.USER_ID, T.StringType(), "HMAC-SHA256 of the visitor id, if there was one"),
        Column(C.RR_EVENT, T.StringType(), "event name as received"),
        Column(C.RR_ITEM_ID, T.StringType(), "item id as received"),
        Column(C.RR_TRANSACTION_ID, T.StringType(), "transaction id as received"),
        Column(C.SOURCE_FILE, T.StringType(), "input file the row came from", False),
        Column(C.REJECT_REASON, T.StringType(), "the cleaning rule the row failed", False),
    ),
)

USER_RECOMMENDATIONS = TableContract(
    name="recs.user_recommendations",
    grain="user x rank: the nightly top-k list of a user active in the training window",
    columns=(
        _DT,
        Column(C.USER_ID, T.StringType(), "pseudonymous user id", False),
        Column(C.RANK, T.IntegerType(), "1 = best", False),
        Column(C.ITEM_ID, T.LongType(), "recommended item", False),
        Column(C.SCORE, T.DoubleType(), "model score (als: dot product; popular: share)", False),
        Column(C.SOURCE, T.StringType(), "als or popular (fallback for short histories)", False),
        Column(C.MODEL_VERSION, T.StringType(), "content hash of the ALS model used", False),
    ),
    key=(C.DT, C.USER_ID, C.RANK),
)

QUALITY_CHECKS = TableContract(
    name="ops.quality_checks",
    grain="table x check x run date: the measured value, its threshold and the verdict",
    columns=(
        _DT,
        Column(C.TABLE_NAME, T.StringType(), "table the check is about", False),
        Column(C.CHECK_NAME, T.StringType(), "name of the check", False),
        Column(C.VALUE, T.DoubleType(), "measured value", False),
        Column(C.THRESHOLD, T.DoubleType(), "limit the value is compared with, if any"),
        Column(C.PASSED, T.BooleanType(), "whether the check passed", False),
    ),
    key=(C.DT, C.TABLE_NAME, C.CHECK_NAME),
)

STAGE_RUNS = TableContract(
    name="ops.stage_runs",
    grain="stage x run date: the last successful run of a stage for a day",
    columns=(
        _DT,
        Column(C.STAGE, T.StringType(), "stage name", False),
        Column(C.SECONDS, T.DoubleType(), "wall time of the stage", False),
        Column(C.FINISHED_AT, T.TimestampType(), "when it finished (UTC)", False),
        Column(C.FIGURES, T.MapType(T.StringType(), T.DoubleType()), "counts the stage reported"),
    ),
    key=(C.DT, C.STAGE),
)

ALL_TABLES: tuple[TableContract, ...] = (
    RAW_EVENTS,
    CLEAN_EVENTS,
    CLEAN_EVENTS_REJECTED,
    USER_RECOMMENDATIONS,
    QUALITY_CHECKS,
    STAGE_RUNS,
)


def by_name(name: str) -> TableContract:
    """The contract registered under ``schema.table``."""
    for table in ALL_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"unknown table {name!r}; known: {[t.name for t in ALL_TABLES]}")
