"""Event times as a source writes them (``input.timestamp``), parsed to UTC timestamps.

Units: ``s``, ``ms``, ``us``, ``ns`` (epoch numbers; seconds may have decimals), ``iso``
(ISO-8601 text such as ``2019-10-01 00:00:00 UTC`` or ``2019-10-01T02:00:00+02:00``) and
``pattern`` (a Spark datetime pattern in ``input.timestamp.format``). Text without an offset
or zone is read in ``input.timestamp.timezone``. A time that parses but falls outside
[``earliest``, ``latest``) is implausible: the usual sign of a wrong unit (seconds read as
milliseconds land in January 1970).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable

from pyspark.sql import Column
from pyspark.sql import functions as F

from recsys_lib.config import TimestampSettings

_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}
_EPOCH = r"^\s*\d{1,20}(\.\d{1,9})?\s*$"
_ISO_START = r"^\s*\d{4}-\d{2}-\d{2}"
# An offset or a zone name at the end: Z, +02, +02:00, +0200, " UTC", " Europe/Berlin".
_HAS_ZONE = r"(Z|[+-]\d{2}(:?\d{2})?|\s[A-Za-z][A-Za-z_/+-]*)\s*$"
_ZONE_LETTERS = re.compile(r"[XxZzVO]")
UNIT_NAMES = {
    "s": "epoch seconds",
    "ms": "epoch milliseconds",
    "us": "epoch microseconds",
    "ns": "epoch nanoseconds",
    "iso": "ISO-8601 text",
    "pattern": "text",
}


def parse_time(text: Column, settings: TimestampSettings) -> Column:
    """The UTC timestamp a text column holds in the configured unit; null if it does not
    parse."""
    unit = settings.unit
    if unit in _MICROS_PER:
        value = F.when(text.rlike(_EPOCH), F.trim(text).try_cast("decimal(38,9)"))
        micros = (value * F.lit(_MICROS_PER[unit])).try_cast("long")
        return F.timestamp_micros(micros)
    trimmed = F.trim(text)
    if unit == "iso":
        parsed = F.when(text.rlike(_ISO_START), F.try_to_timestamp(trimmed))
        naive = ~text.rlike(_HAS_ZONE)
    else:
        parsed = F.try_to_timestamp(trimmed, F.lit(settings.format))
        naive = F.lit(not _ZONE_LETTERS.search(_unquoted(settings.format)))
    if settings.timezone in ("UTC", "Z", "+00:00"):
        return parsed
    return F.when(naive, F.to_utc_timestamp(parsed, settings.timezone)).otherwise(parsed)


def _unquoted(pattern: str) -> str:
    """A datetime pattern without its quoted literals ('T', 'UTC')."""
    return re.sub(r"'[^']*'", "", pattern)


def plausible(ts: Column, settings: TimestampSettings) -> Column:
    """Whether a parsed time lies in [earliest, latest) (null stays null)."""
    earliest = dt.datetime.fromisoformat(settings.earliest)
    latest = dt.datetime.fromisoformat(settings.latest)
    return (ts >= F.lit(earliest)) & (ts < F.lit(latest))


def utc_day(ts: Column) -> Column:
    """The UTC calendar day of a timestamp (the session time zone is UTC)."""
    return F.to_date(ts)


def kind_of(text: str) -> str:
    """What a timestamp text looks like: a unit of :data:`UNIT_NAMES`, or ``other``."""
    value = text.strip()
    digits = re.fullmatch(r"(\d+)(\.\d+)?", value)
    if digits:
        n = len(digits.group(1))
        for unit, (low, high) in {
            "s": (9, 10),
            "ms": (12, 13),
            "us": (15, 16),
            "ns": (18, 19),
        }.items():
            if low <= n <= high:
                return unit
        return "other"
    if re.match(_ISO_START, value):
        return "iso"
    return "other"


def timestamp_hint(samples: Iterable[str], settings: TimestampSettings) -> str | None:
    """What the sampled timestamp texts look like, when that disagrees with the configured
    unit, e.g. ``timestamps look like epoch seconds (e.g. '1511544070'), not epoch
    milliseconds: set input.timestamp.unit: s``; None if they agree or say nothing."""
    texts = [s for s in samples if s is not None and s.strip()]
    if not texts:
        return "the timestamp column is empty"
    kinds = Counter(kind_of(t) for t in texts)
    kind, _ = kinds.most_common(1)[0]
    example = next(t for t in texts if kind_of(t) == kind).strip()
    configured = UNIT_NAMES[settings.unit]
    if kind == "other":
        return (
            f"timestamps look like no known unit (e.g. {example!r}); the source says {configured}"
        )
    if kind == settings.unit or (settings.unit == "pattern" and kind == "iso"):
        return None
    return (
        f"timestamps look like {UNIT_NAMES[kind]} (e.g. {example!r}), not {configured}: "
        f"set input.timestamp.unit: {kind}"
    )
