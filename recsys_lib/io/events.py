"""The shop's event log, read as ``input`` describes it (docs/inputs.md): the raw rows of some
run dates, each stamped with the run date it belongs to (``dt``).

Every line of a file becomes a row; nothing is dropped here but header and blank lines. A
row that cannot be read as the source says keeps its fields as far as they were read and a
``read_error`` (``bad_encoding``, ``too_many_fields``, ``too_few_fields``,
``malformed_json``); ``clean`` rejects it with that reason, so the reconciliation counts it.
Columns are mapped by name (``input.columns``) onto the canonical fields of ``raw.events``.

Which run date a row belongs to depends on the layout:

- daily files (``input.daily_files``): the whole file of D is D's; a row stamped on another
  day reaches ``clean`` and is rejected there with a reason;
- one multi-day file, or a directory of parts: the UTC day of the row's time. A row whose
  time does not parse, or is implausible, has no day of its own: it is counted on the first
  day of its file (``clean`` rejects it), so each such row is counted once, by the run of
  that day, and a run of any day logs how many there are.

Before any row is kept, each file is checked (:mod:`recsys_lib.io.files`) and so are its
columns against the mapping; a file none of whose rows can be read, or none of whose times
parse, fails with what its rows look like instead (for example "timestamps look like epoch
seconds ... set input.timestamp.unit: s").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys_lib import constants as C
from recsys_lib.config import REQUIRED_FIELDS, InputSettings, Settings
from recsys_lib.dates import DayRange
from recsys_lib.io.files import (
    InputError,
    file_key,
    first_line,
    head_lines,
    input_files,
    is_remote,
    looks_like_data,
    read_error,
    remote_head_lines,
    split_line,
)
from recsys_lib.io.timestamps import parse_time, plausible, timestamp_hint, utc_day
from recsys_lib.runtime.logs import one_line

log = logging.getLogger(__name__)

_BOM = "\ufeff"
_CORRUPT = "_corrupt_record"
_DAY = "_day"
JSON_PROBE_LINES = 100  # the first JSON object among these lines gives a file's keys


@dataclass(frozen=True)
class FileFigures:
    """What one input file held: rows, rows per day of a usable time, read errors."""

    rows: int = 0
    days: dict[dt.date, int] = field(default_factory=dict)  # time parsed and plausible
    read_errors: dict[str, int] = field(default_factory=dict)

    @property
    def timed_rows(self) -> int:
        return sum(self.days.values())

    @property
    def first_day(self) -> dt.date | None:
        return min(self.days) if self.days else None

    @property
    def last_day(self) -> dt.date | None:
        return max(self.days) if self.days else None


@dataclass(frozen=True)
class RawInput:
    """Input rows of some run dates (``raw.events`` columns but ``ingested_at``, with
    ``dt``), cached; how many rows each run date has; figures per file; warnings."""

    rows: DataFrame
    rows_per_day: dict[dt.date, int]
    files: dict[str, FileFigures] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


# --- columns -------------------------------------------------------------------------------


def _head(path: str, n: int, spark: SparkSession | None) -> list[str]:
    if is_remote(path):
        assert spark is not None
        return remote_head_lines(spark, path, n)
    if n == 1:
        line = first_line(Path(path))
        return [] if line is None else [line]
    return head_lines(Path(path), n)


def file_columns(
    path: str, settings: InputSettings, spark: SparkSession | None = None
) -> tuple[tuple[str, ...], str | None]:
    """A text file's columns (its header, ``input.names`` or its first JSON object's keys)
    and the header line to drop from its rows (None without one)."""
    if settings.format == "jsonl":
        lines = _head(path, JSON_PROBE_LINES, spark)
        for text in lines:
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                return tuple(record), None
        if not lines:
            return (), None
        raise InputError(f"none of the first {len(lines)} lines is a JSON object", path)
    if not settings.header:
        return tuple(settings.names), None
    lines = _head(path, 1, spark)
    if not lines:
        raise InputError("the file is empty (no header line)", path)
    return tuple(split_line(lines[0], settings)), lines[0]


def check_columns(columns: Sequence[str], settings: InputSettings, path: Path | str) -> list[str]:
    """Raise :class:`InputError` if a mapped column is missing (for JSON lines: a required
    one), or an unknown column is present while ``input.extra_columns`` is ``fail``; the
    warnings to log otherwise."""
    mapped = {f: c for f, c in settings.columns.items() if c}
    needed = [c for f, c in mapped.items() if settings.format != "jsonl" or f in REQUIRED_FIELDS]
    found = list(columns)
    missing = [c for c in needed if c not in found]
    known = set(mapped.values()) | set(settings.names)
    extra = [c for c in found if c not in known]
    if missing:
        hint = ""
        if settings.format in ("csv", "tsv") and settings.header and looks_like_data(found):
            hint = "; the first line looks like data: set input.header: false and input.names"
        elif extra:
            hint = f"; columns the source does not know: {extra} (renamed?)"
        raise InputError(f"missing column(s) {missing} (the file has {found}){hint}", path)
    if len(set(found)) < len(found):
        raise InputError(f"a column name appears twice in {found}", path)
    if not extra:
        return []
    if settings.extra_columns == "fail":
        raise InputError(
            f"unexpected column(s) {extra}: list them in input.names, or set "
            "input.extra_columns: ignore to read past them",
            path,
        )
    return [f"{path}: ignoring the column(s) {extra} (input.extra_columns: ignore)"]


# --- reading -------------------------------------------------------------------------------


def _canonical(values: dict[str, Column], read_error: Column, source_file: Column) -> list[Column]:
    """The ``raw.events`` columns from the source's mapped values (by canonical field)."""
    return [
        *(
            values.get(f, F.lit(None).cast("string")).alias(c)
            for f, c in C.RAW_COLUMN_OF_FIELD.items()
        ),
        read_error.alias(C.READ_ERROR),
        source_file.alias(C.SOURCE_FILE),
    ]


def _field_count(text: Column, settings: InputSettings) -> Column:
    """Fields of a csv/tsv line: separators outside quoted parts, plus one."""
    stripped = text
    if settings.quote:
        q = "\\" + settings.quote
        stripped = F.regexp_replace(text, f"{q}[^{q}]*{q}", "")
    sep = settings.separator
    removed = F.length(stripped) - F.length(F.replace(stripped, F.lit(sep), F.lit("")))
    return (removed / len(sep)).cast("int") + 1


def read_text_files(
    spark: SparkSession,
    settings: InputSettings,
    paths: Sequence[str],
    columns: Sequence[str],
    header_line: str | None,
) -> DataFrame:
    """``raw.events`` rows of csv/tsv/jsonl files that share their columns."""
    lines = spark.read.text(list(paths))
    value = F.col("value")
    if settings.encoding.lower() == "utf-8":
        valid = F.is_valid_utf8(value)
        text = F.regexp_replace(value, f"^{_BOM}", "")
    else:
        valid = F.lit(True)
        text = F.decode(value.cast("binary"), "ISO-8859-1")
    lines = lines.select(
        text.alias("_text"), valid.alias("_valid"), F.col("_metadata.file_path").alias("_file")
    ).filter(F.trim("_text") != "")
    if header_line is not None:
        lines = lines.filter(F.col("_text") != F.lit(header_line.lstrip(_BOM)))
    text, valid, file = F.col("_text"), F.col("_valid"), F.col("_file")
    wanted = {f: c for f, c in settings.columns.items() if c}
    if settings.format == "jsonl":
        schema = T.StructType(
            [T.StructField(c, T.StringType()) for c in dict.fromkeys(wanted.values())]
            + [T.StructField(_CORRUPT, T.StringType())]
        )
        parsed = F.from_json(text, schema, {"columnNameOfCorruptRecord": _CORRUPT})
        error = F.when(~valid, C.BAD_ENCODING).when(
            parsed.isNull() | parsed.getField(_CORRUPT).isNotNull(), C.MALFORMED_JSON
        )
        values = {f: parsed.getField(c) for f, c in wanted.items()}
        return lines.select(*_canonical(values, error, file))
    n = len(columns)
    ddl = ", ".join(f"_c{i} STRING" for i in range(n))
    options = {"sep": settings.separator, "quote": settings.quote or "\u0000"}
    parsed = F.from_csv(text, ddl, options)
    count = _field_count(text, settings)
    error = (
        F.when(~valid, C.BAD_ENCODING)
        .when(count > n, C.TOO_MANY_FIELDS)
        .when(count < n, C.TOO_FEW_FIELDS)
    )
    index = {c: i for i, c in enumerate(columns)}
    values = {f: parsed.getField(f"_c{index[c]}") for f, c in wanted.items()}
    return lines.select(*_canonical(values, error, file))


def _as_text(column: Column, dtype: T.DataType) -> Column:
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return F.date_format(column, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
    return column.cast("string")


def read_parquet_files(
    spark: SparkSession, settings: InputSettings, paths: Sequence[str]
) -> tuple[DataFrame, list[str]]:
    """``raw.events`` rows of Parquet files (values as text; a timestamp type as ISO-8601
    text with its offset), and the warnings of their columns' check."""
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(*paths)
    except AnalysisException as exc:
        raise InputError(
            f"Spark cannot read these Parquet files: {one_line(exc)}", paths[0]
        ) from exc
    warnings = check_columns(frame.columns, settings, paths[0].rsplit("/", 1)[0])
    types = {f.name: f.dataType for f in frame.schema.fields}
    values = {f: _as_text(F.col(f"`{c}`"), types[c]) for f, c in settings.columns.items() if c}
    rows = frame.select(
        *_canonical(values, F.lit(None).cast("string"), F.col("_metadata.file_path"))
    )
    return rows, warnings


def read_files(
    spark: SparkSession, settings: InputSettings, paths: Sequence[str]
) -> tuple[DataFrame, list[str]]:
    """The rows of ``paths`` in ``raw.events`` columns (no ``dt``), and warnings. Files are
    grouped by their columns, so that files whose headers differ in order read right."""
    if settings.format == "parquet":
        return read_parquet_files(spark, settings, paths)
    groups: dict[tuple[tuple[str, ...], str | None], list[str]] = defaultdict(list)
    warnings: list[str] = []
    for path in paths:
        columns, header = file_columns(path, settings, spark)
        if columns or settings.format != "jsonl":
            warnings += check_columns(columns, settings, path)
        groups[(columns, header)].append(path)
    frames = [
        read_text_files(spark, settings, group, columns, header)
        for (columns, header), group in groups.items()
    ]
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows, warnings


# --- run dates -----------------------------------------------------------------------------


def local_name(spark_path: str) -> str:
    """A file as Spark names it, as the readers name it (:func:`io.files.file_key`)."""
    return file_key(spark_path)


def file_figures(rows: DataFrame, settings: InputSettings) -> dict[str, FileFigures]:
    """Per file (Spark's name of it): rows, rows per day of a usable time, read errors; one
    pass."""
    ts = parse_time(F.col(C.RAW_TIMESTAMP), settings.timestamp)
    day = F.when(plausible(ts, settings.timestamp), utc_day(ts))
    counted = rows.groupBy(C.SOURCE_FILE, day.alias(_DAY), C.READ_ERROR).count().collect()
    totals: dict[str, int] = defaultdict(int)
    days: dict[str, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
    errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in counted:
        name, n = r[C.SOURCE_FILE], int(r["count"])
        totals[name] += n
        if r[_DAY] is not None:
            days[name][r[_DAY]] += n
        if r[C.READ_ERROR] is not None:
            errors[name][r[C.READ_ERROR]] += n
    return {
        name: FileFigures(total, dict(days[name]), dict(errors[name]))
        for name, total in totals.items()
    }


def refuse_unreadable_files(
    rows: DataFrame, settings: InputSettings, files: dict[str, FileFigures]
) -> None:
    """Raise :class:`InputError` for a file none of whose rows can be read, or none of whose
    times parse as configured and plausibly, with what its rows look like."""
    for name, f in sorted(files.items()):
        path = local_name(name)
        errors = sum(f.read_errors.values())
        if f.rows and errors == f.rows:
            error, n = max(f.read_errors.items(), key=lambda kv: kv[1])
            described = {
                C.BAD_ENCODING: f"bytes that are not {settings.encoding}",
                C.TOO_MANY_FIELDS: "more fields than the source's columns",
                C.TOO_FEW_FIELDS: "fewer fields than the source's columns",
                C.MALFORMED_JSON: "text that is not a JSON object",
            }[error]
            raise InputError(
                f"no row can be read: {n} of {f.rows} rows hold {described} ({error})", path
            )
        if f.rows and not f.timed_rows:
            samples = [
                r[0]
                for r in rows.filter(F.col(C.SOURCE_FILE) == name)
                .select(C.RAW_TIMESTAMP)
                .limit(20)
                .collect()
            ]
            t = settings.timestamp
            hint = timestamp_hint(samples, t) or (
                f"they parse, but fall outside [{t.earliest}, {t.latest})"
            )
            raise InputError(f"no row has a usable timestamp: {hint}", path)


def load_events(spark: SparkSession, settings: Settings, days: dt.date | DayRange) -> RawInput:
    """Raw rows of the run dates ``days`` with ``dt`` (module docstring), cached. Fails
    before any write if an input file is missing or bad, its columns do not match the
    source, a file has no readable row or usable time, or a day holds no row."""
    source = settings.input
    span = DayRange.of(days)
    root = settings.resolve(source.events_path)
    found = input_files(source, root, span, spark)
    rows, warnings = read_files(spark, source, found.paths)
    if found.layout == "daily":
        rows = rows.cache()
    try:
        files = file_figures(rows, source)
    except Exception as exc:
        named = read_error(exc)
        if named is None:
            raise
        raise named from exc
    refuse_unreadable_files(rows, source, files)
    by_path = {local_name(name): name for name in files}
    if found.layout == "daily":
        day_of = {by_path[p]: d for p, d in found.day_of.items() if p in by_path}
        rows_per_day = {d: 0 for d in span.days}
        for name, d in day_of.items():
            rows_per_day[d] += files[name].rows
        dated = rows.withColumn(C.DT, _lookup(day_of, F.col(C.SOURCE_FILE)))
    else:
        rows_per_day, first_days, messages = _days_of_multi_day_files(source, files, span)
        warnings += messages
        ts = parse_time(F.col(C.RAW_TIMESTAMP), source.timestamp)
        own_day = F.when(plausible(ts, source.timestamp), utc_day(ts))
        dated = rows.withColumn(
            C.DT, F.coalesce(own_day, _lookup(first_days, F.col(C.SOURCE_FILE)))
        ).filter(F.col(C.DT).between(F.lit(span.first), F.lit(span.last)))
        dated = dated.cache()
    for message in warnings:
        log.warning("%s", message)
    empty = [d for d, n in rows_per_day.items() if n == 0]
    if empty:
        rows.unpersist()
        dated.unpersist()
        shown = ", ".join(str(d) for d in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise InputError(f"no events for {shown}: refusing to publish an empty day", root)
    return RawInput(dated, rows_per_day, files, tuple(warnings))


def _lookup(mapping: dict[str, dt.date], key: Column) -> Column:
    """``mapping[key]`` as a column (null for another key)."""
    if not mapping:
        return F.lit(None).cast("date")
    pairs = [x for k, v in sorted(mapping.items()) for x in (F.lit(k), F.lit(v))]
    return F.create_map(*pairs)[key]


def _days_of_multi_day_files(
    settings: InputSettings, files: dict[str, FileFigures], span: DayRange
) -> tuple[dict[dt.date, int], dict[str, dt.date], list[str]]:
    """Rows per run date of ``span`` from multi-day files, the first day of each file (where
    its rows without a usable time are counted), and a warning per file that has such rows."""
    rows_per_day = {d: 0 for d in span.days}
    first_days: dict[str, dt.date] = {}
    warnings = []
    for name, f in sorted(files.items()):
        assert f.first_day is not None and f.last_day is not None  # refuse_unreadable_files
        first_days[name] = f.first_day
        untimed = f.rows - f.timed_rows
        overlaps = f.first_day <= span.last and f.last_day >= span.first
        if untimed:
            t = settings.timestamp
            warnings.append(
                f"{local_name(name)}: {untimed} rows have no {t.unit} time in "
                f"[{t.earliest}, {t.latest}); they are counted (and rejected) on the "
                f"file's first day, {f.first_day}"
            )
            if span.first <= f.first_day <= span.last:
                rows_per_day[f.first_day] += untimed
        if overlaps:
            for day, n in f.days.items():
                if day in rows_per_day:
                    rows_per_day[day] += n
    return rows_per_day, first_days, warnings
