"""Stage ``ingest``: the input rows of some run dates, as received, into ``raw.events`` and,
when the shop has a catalogue file (``input.item_properties_path``), ``raw.items``.

A range of days is read and written in one pass; each day's partition gets exactly the rows
a run of that day alone would give it. :func:`check_input` (``recsys check-input``) reads
the same input and judges it as ``clean`` would, writing nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_lib import constants as C
from recsys_lib.config import Settings
from recsys_lib.dates import DayRange
from recsys_lib.io.catalogue import load_item_properties
from recsys_lib.io.events import FileFigures, RawInput, load_events, local_name
from recsys_lib.io.timestamps import kind_of, timestamp_hint
from recsys_lib.transforms.cleaning import CleanCounts, clean_events
from recsys_lib.warehouse import quality
from recsys_lib.warehouse.tables import RAW_EVENTS, RAW_ITEMS, TableContract

DayFigures = dict[dt.date, dict[str, float]]
UNIT_HINT_SHARE = 0.1  # check-input suggests a unit of time when this share has none


def to_raw(rows: DataFrame) -> DataFrame:
    """Input rows (with their ``dt``) stamped with the ingest time."""
    return rows.withColumn(C.INGESTED_AT, F.current_timestamp())


def ingest(spark: SparkSession, settings: Settings, days: DayRange) -> DayFigures:
    """Replace the partitions of ``days`` in ``raw.events`` and ``raw.items`` with those days'
    input rows, both or neither (figures per day: ``raw_rows``, ``raw_item_rows``), with
    their checks in ``ops.quality_checks`` (:func:`ingest_checks`).

    Both inputs are read and checked before anything is written; a failed check records the
    checks and writes nothing else. A day without catalogue rows (the usual case: snapshots
    are weekly) empties its ``raw.items`` partition, so a rerun leaves the same table.
    Without a configured catalogue, ``raw.items`` is untouched and ``raw_item_rows`` is not
    reported.
    """
    roots = {RAW_EVENTS: settings.resolve(settings.input.events_path)}
    inputs = {RAW_EVENTS: load_events(spark, settings, days)}
    figures = {d: {"raw_rows": float(n)} for d, n in inputs[RAW_EVENTS].rows_per_day.items()}
    try:
        if settings.input.item_properties_path:
            roots[RAW_ITEMS] = settings.resolve(settings.input.item_properties_path)
            inputs[RAW_ITEMS] = load_item_properties(spark, roots[RAW_ITEMS], days)
            for day, n in inputs[RAW_ITEMS].rows_per_day.items():
                figures[day]["raw_item_rows"] = float(n)
        checks: dict[dt.date, list[quality.Check]] = {d: [] for d in days.days}
        for table, raw in inputs.items():
            drop = settings.input.drop_events if table is RAW_EVENTS else ()
            for day, found in ingest_checks(table, raw, days, drop, roots[table]).items():
                checks[day] += found
        outputs = [(table, to_raw(raw.rows)) for table, raw in inputs.items()]
        quality.write_checked_days(spark, settings, outputs, days, checks, contract=False)
    finally:
        # Cached input must not outlive the run: a later read of a changed file would match
        # the cached plan and see the old rows.
        for raw in inputs.values():
            raw.rows.unpersist()
    return figures


def ingest_checks(
    table: TableContract,
    raw: RawInput,
    days: DayRange,
    drop_events: tuple[str, ...] = (),
    root: str = "",
) -> dict[dt.date, list[quality.Check]]:
    """What ``ingest`` read and will write for each day, from one aggregate over the rows it
    writes: ``rows_read`` (what the input's files hold for the day, counted as they were
    read) against ``rows_written`` (``unreconciled_rows`` must be 0: no row lost or doubled
    by slicing the files into days), the rows of each file (``rows_written.<file>``), rows
    the reader could not read (``read_errors.<reason>``, kept for ``clean`` to reject) and
    rows ``clean`` will drop by their event name (``dropped_names.<name>``). A file is
    named by its path under the input's ``root``. Duplicates are ``clean``'s to count
    (``duplicate_rows`` of ``clean.events``), in the pass that removes them: counting exact
    copies here too took a shuffle of every row (docs/benchmarks.md, issue 40)."""
    name = table.name
    columns = raw.rows.columns
    measures = {"rows": F.count(F.lit(1))}
    if C.READ_ERROR in columns:
        for reason in C.READ_ERRORS:
            measures[f"read_errors.{reason}"] = F.count(F.when(F.col(C.READ_ERROR) == reason, 1))
    if C.RAW_EVENT in columns:
        event = F.trim(F.col(C.RAW_EVENT))
        for dropped in drop_events:
            measures[f"dropped_names.{dropped}"] = F.count(F.when(event == dropped, 1))
    per_file = (
        raw.rows.groupBy(C.DT, C.SOURCE_FILE)
        .agg(*[m.alias(k) for k, m in measures.items()])
        .collect()
    )
    checks: dict[dt.date, list[quality.Check]] = {}
    for day in days.days:
        mine = sorted((r for r in per_file if r[C.DT] == day), key=lambda r: r[C.SOURCE_FILE])
        written = sum(int(r["rows"]) for r in mine)
        read = raw.rows_per_day.get(day, 0)
        totals = {k: sum(int(r[k]) for r in mine) for k in measures if "." in k}
        checks[day] = [
            quality.measure(name, "rows_read", read),
            quality.measure(name, "rows_written", written),
            quality.equals(name, "unreconciled_rows", read - written, 0),
            quality.measure(name, "files", len(mine)),
            *[
                quality.measure(name, f"rows_written.{_under(root, r[C.SOURCE_FILE])}", r["rows"])
                for r in mine
            ],
            *[quality.measure(name, k, v) for k, v in sorted(totals.items())],
        ]
    return checks


def _under(root: str, spark_path: str) -> str:
    """A file's path under the input's root (its name when the root is the file)."""
    name = local_name(spark_path)
    base = local_name(root).rstrip("/")
    inside = name.removeprefix(base + "/") if name.startswith(base + "/") else name
    return inside if inside != name else name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class InputReport:
    """What ``ingest`` would read for some run dates and what ``clean`` would make of it
    (``recsys check-input``); nothing is written to get it."""

    days: DayRange
    source: str
    files: dict[str, FileFigures]
    rows_per_day: dict[dt.date, int]
    counts: CleanCounts  # summed over the days
    event_types: dict[str, int]
    first_event: dt.datetime | None
    last_event: dt.datetime | None
    unknown_events: dict[str, int]
    warnings: tuple[str, ...]
    max_rejected_share: float

    @property
    def rejected_share(self) -> float:
        n = self.counts.input_rows
        return self.counts.rejected_rows / n if n else 0.0

    @property
    def passes(self) -> bool:
        """Whether ``clean`` would accept every day (its rejected share within the limit)."""
        return self.rejected_share <= self.max_rejected_share

    def format(self) -> str:
        c = self.counts

        def share(n: int, total: int) -> str:
            return f"{n:,} ({n / total:.1%})" if total else f"{n:,}"

        def listed(counts: dict[str, int]) -> str:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            return ", ".join(f"{k} {v:,}" for k, v in ranked) or "none"

        lines = [f"input of {self.days} (source: {self.source or 'input.*'})", "files:"]
        for name, f in sorted(self.files.items()):
            span = f", times {f.first_day} .. {f.last_day}" if f.first_day else ""
            errors = f", read errors: {listed(f.read_errors)}" if f.read_errors else ""
            lines.append(f"  {name}: {f.rows:,} rows{span}{errors}")
        per_day = ", ".join(f"{d} {n:,}" for d, n in sorted(self.rows_per_day.items()))
        lines += [
            f"rows of the run dates: {c.input_rows:,} ({per_day})",
            f"  clean events      {share(c.clean_rows, c.input_rows)}",
            f"  duplicates        {share(c.duplicate_rows, c.input_rows)}",
            f"  dropped by name   {share(c.dropped_rows, c.input_rows)}"
            + (f": {listed(c.dropped_by_event)}" if c.dropped_rows else ""),
            f"  rejected          {share(c.rejected_rows, c.input_rows)}"
            + (f": {listed(c.rejected_by_reason)}" if c.rejected_rows else ""),
            "event types: "
            + ", ".join(f"{t} {n / c.clean_rows:.1%}" for t, n in sorted(self.event_types.items()))
            if c.clean_rows
            else "event types: no clean event",
        ]
        if self.first_event is not None:
            lines.append(f"time range (UTC): {self.first_event} .. {self.last_event}")
        verdict = "passes" if self.passes else "would FAIL"
        lines.append(
            f"rejected share {self.rejected_share:.2%} (clean.max_rejected_share "
            f"{self.max_rejected_share:.0%}): {verdict}"
        )
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)


def check_input(spark: SparkSession, settings: Settings, days: DayRange) -> InputReport:
    """Read the input of ``days`` as ``ingest`` does and judge it as ``clean`` does, without
    writing anything. Raises :class:`~recsys_lib.io.files.InputError` where ``ingest`` would
    fail; otherwise the report says what would be ingested, rejected (and why) and dropped,
    with warnings such as a unit of time that does not fit or unknown event names."""
    raw = load_events(spark, settings, days)
    try:
        # Counting needs no key: ids are hashed without one here, and the report holds none.
        result = clean_events(raw.rows, lambda c: F.sha2(c, 256), settings.input, days=days)
        counts = CleanCounts.summed(result.counts.values())
        types = {r[0]: int(r[1]) for r in result.events.groupBy(C.EVENT_TYPE).count().collect()}
        span = result.events.agg(F.min(C.EVENT_TS), F.max(C.EVENT_TS)).first()
        reason = F.col(C.REJECT_REASON)
        unknown = {
            str(r[0]): int(r[1])
            for r in result.rejected.filter(reason == "unknown_event")
            .groupBy(C.RAW_EVENT)
            .count()
            .orderBy(F.desc("count"), C.RAW_EVENT)
            .limit(10)
            .collect()
        }
        bad_times = [
            r[0]
            for r in result.rejected.filter(reason.isin("bad_timestamp", "implausible_timestamp"))
            .select(C.RAW_TIMESTAMP)
            .limit(20)
            .collect()
        ]
    finally:
        raw.rows.unpersist()
        spark.catalog.clearCache()
    warnings = list(raw.warnings) + _warnings(settings, counts, unknown, bad_times)
    return InputReport(
        days=days,
        source=settings.input.source,
        files={local_name(name): f for name, f in raw.files.items()},
        rows_per_day=raw.rows_per_day,
        counts=counts,
        event_types=types,
        first_event=span[0] if span else None,
        last_event=span[1] if span else None,
        unknown_events=unknown,
        warnings=tuple(warnings),
        max_rejected_share=settings.clean.max_rejected_share,
    )


def _warnings(
    settings: Settings, counts: CleanCounts, unknown: dict[str, int], bad_times: list[str]
) -> list[str]:
    warnings = []
    if unknown:
        names = ", ".join(f"{name!r} ({n:,})" for name, n in unknown.items())
        warnings.append(
            f"unknown event names: {names}: map them in input.event_types or list them in "
            "input.drop_events"
        )
    if bad_times:
        n = counts.rejected_by_reason.get("bad_timestamp", 0) + counts.rejected_by_reason.get(
            "implausible_timestamp", 0
        )
        # A unit is suggested only when many rows lack a time; a few are plain damage.
        known = [t for t in bad_times if t and kind_of(t) != "other"]
        many = n >= UNIT_HINT_SHARE * counts.input_rows
        hint = timestamp_hint(known, settings.input.timestamp) if known and many else None
        example = next((t for t in bad_times if t), "")
        warnings.append(
            f"{n:,} rows have no usable time (e.g. {example!r})" + (f"; {hint}" if hint else "")
        )
    for what, n in (("categories", counts.unparsed_categories), ("prices", counts.unparsed_prices)):
        if n:
            warnings.append(f"{n:,} {what} on clean rows do not parse and are left empty")
    if not counts.clean_rows:
        warnings.append("no row would be clean")
    return warnings
