"""The files behind a configured input, found and checked on the driver before Spark reads
them, so that a bad file fails with its name and its problem instead of a Java stack trace.

Checks, in order, for each local file: it exists and is a regular, readable file; its first
bytes agree with its name (a gzip file named ``.csv`` is refused, so is a ``.gz`` that is
not gzip); a compressed file decompresses to its end (a truncated or corrupt archive is
found here); a text source holds no NUL byte in its first block (a binary file); a Parquet
file starts with Parquet's magic bytes.

A remote input (``s3a://``, ``hdfs://``...) is listed through Spark (file names and sizes,
without reading the files) and its first lines are read by Spark; a remote file that turns
out to be corrupt fails when Spark reads it, and :func:`read_error` names it.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from recsys_lib.config import InputSettings
from recsys_lib.dates import DayRange

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2"}
_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh"}
PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 8192
_CHUNK = 1 << 20


class InputError(RuntimeError):
    """An input is missing, unreadable or not what its configuration says.

    ``str()`` is ``problem (path)``: the one line ``recsys`` prints for it.
    """

    def __init__(self, problem: str, path: Path | str | None = None) -> None:
        self.problem = problem
        self.path = str(path) if path is not None else None
        super().__init__(f"{problem} ({self.path})" if self.path else problem)


def is_remote(path: str) -> bool:
    """A URI of a file system other than the local one (``s3a://``, ``hdfs://``...)."""
    return "://" in path and not path.startswith("file:")


def file_key(spark_path: str) -> str:
    """A file as Spark names it (``file:/a%20b.csv``, ``s3a://bucket/k``) in the form this
    module names it: a plain local path, or the remote URI as it is."""
    parts = urlparse(spark_path)
    if parts.scheme in ("", "file"):
        return unquote(parts.path)
    return unquote(spark_path)


_READ_FAILURE = re.compile(r"Encountered error while reading file (\S+?)\.?\s")


def read_error(exc: BaseException) -> InputError | None:
    """The :class:`InputError` naming the file of a Spark read failure (``FAILED_READ_FILE``),
    with the Java cause's message; None for another error."""
    text = str(exc)
    found = _READ_FAILURE.search(text)
    if not found:
        return None
    causes = re.findall(r"Caused by: ([\w.$]+(?:Exception|Error)): ?([^\n]*)", text)
    cause = f"{causes[-1][0].rsplit('.', 1)[-1]}: {causes[-1][1]}" if causes else "read failed"
    return InputError(f"Spark could not read the file ({cause.strip()})", file_key(found[1]))


def local_path(path: str) -> Path:
    return Path(path.removeprefix("file://").removeprefix("file:"))


def compression_of(path: Path) -> str:
    """``gzip``, ``bzip2`` or ``none``, by the file's suffix (as Spark decides it too)."""
    return COMPRESSED_SUFFIXES.get(path.suffix.lower(), "none")


def _opener(compression: str) -> Callable[..., IO[bytes]]:
    openers: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bzip2": bz2.open, "none": open}
    return openers[compression]  # type: ignore[no-any-return]


def head(path: Path, size: int = _SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of the file's content (decompressed)."""
    with _opener(compression_of(path))(path, "rb") as handle:
        return handle.read(size)


def first_line(path: Path) -> str | None:
    """The first line of a text file (decompressed; a UTF-8 byte-order mark removed; None for
    an empty file), undecodable bytes replaced."""
    with _opener(compression_of(path))(path, "rb") as handle:
        line = handle.readline()
    if not line:
        return None
    return line.decode("utf-8-sig", errors="replace").rstrip("\r\n")


def head_lines(path: Path, n: int) -> list[str]:
    """The first ``n`` non-blank lines of a text file (decompressed), undecodable bytes
    replaced."""
    lines: list[str] = []
    with _opener(compression_of(path))(path, "rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8-sig", errors="replace").strip()
            if line:
                lines.append(line)
            if len(lines) >= n:
                break
    return lines


def _decompresses(path: Path, compression: str) -> None:
    """Read a compressed file to its end; raise :class:`InputError` if it is cut short or
    corrupt."""
    try:
        with _opener(compression)(path, "rb") as handle:
            while handle.read(_CHUNK):
                pass
    except EOFError:
        raise InputError(
            f"truncated {compression} file: it ends before its last block", path
        ) from None
    except (OSError, zlib.error, ValueError) as exc:
        raise InputError(f"corrupt {compression} file: {exc}", path) from None


def check_file(path: Path, settings: InputSettings) -> None:
    """Raise :class:`InputError` naming ``path`` unless it is a readable file of the
    configured kind (see the module's docstring)."""
    if not path.exists():
        raise InputError("the file does not exist", path)
    if not path.is_file():
        raise InputError("not a regular file", path)
    compression = compression_of(path)
    if settings.compression not in ("auto", compression):
        raise InputError(
            f"input.compression is {settings.compression} but the file's name says {compression}",
            path,
        )
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", path) from None
    for kind, magic in _MAGIC.items():
        if compression == kind and not start.startswith(magic):
            raise InputError(f"named as {kind} but it is not {kind}-compressed", path)
        if compression == "none" and start.startswith(magic) and kind == "gzip":
            raise InputError(
                "gzip-compressed, but its name does not end in .gz (Spark decompresses by "
                "the name): rename it",
                path,
            )
    if compression != "none":
        _decompresses(path, compression)
    if settings.format == "parquet":
        if start != PARQUET_MAGIC:
            raise InputError("not a Parquet file (input.format is parquet)", path)
        return
    sniff = head(path)
    if sniff.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("UTF-16 text; input.encoding reads utf-8 or iso-8859-1", path)
    if b"\x00" in sniff:
        raise InputError(f"a binary file, not {settings.format} text", path)


def daily_name(pattern: str, day: dt.date) -> str:
    """A daily file's name: ``{date}`` -> ``2026-10-01``, ``{date:%Y%m%d}`` -> ``20261001``."""
    return pattern.format(date=_IsoDate(day.year, day.month, day.day))


class _IsoDate(dt.date):
    def __format__(self, spec: str) -> str:
        return self.isoformat() if not spec else self.strftime(spec)


def daily_file(directory: Path, settings: InputSettings, day: dt.date) -> Path:
    """The file of ``day`` in a directory of daily files; its compressed variants (``.gz``,
    ``.bz2``) are found too unless ``input.compression`` says otherwise."""
    name = daily_name(settings.daily_files, day)
    if compression_of(Path(name)) != "none" or settings.compression == "none":
        suffixes = [""]
    elif settings.compression == "auto":
        suffixes = ["", ".gz", ".bz2"]
    else:
        suffixes = [".gz" if settings.compression == "gzip" else ".bz2"]
    for suffix in suffixes:
        candidate = directory / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    shown = name + (f"[{'|'.join(s for s in suffixes if s)}]" if len(suffixes) > 1 else "")
    raise InputError(f"no input for {day}: expected {shown}", directory)


@dataclass(frozen=True)
class InputFiles:
    """The files a run reads (local paths or remote URIs), and the run date of each in a
    daily layout."""

    layout: str  # file | daily | parts
    paths: tuple[str, ...]
    day_of: dict[str, dt.date]


def layout_of(settings: InputSettings, path: Path) -> str:
    """``input.layout``, with ``auto`` resolved: a file is one file, a directory daily files."""
    if settings.layout != "auto":
        return settings.layout
    return "daily" if path.is_dir() else "file"


def input_files(
    settings: InputSettings, root: str, days: DayRange, spark: SparkSession | None = None
) -> InputFiles:
    """The files holding ``days`` under the configured events path, each checked (local
    files with :func:`check_file`; remote ones are listed through ``spark``). Raises
    :class:`InputError` for a missing or bad file."""
    if is_remote(root):
        if spark is None:
            raise InputError("a remote input is listed through Spark: no session given", root)
        return _remote_files(spark, settings, root, days)
    path = local_path(root)
    layout = layout_of(settings, path)
    if not path.exists():
        raise InputError(f"no input for {days}: the path does not exist", path)
    if layout == "daily":
        if not path.is_dir():
            raise InputError("input.layout daily needs a directory of daily files", path)
        day_of = {daily_file(path, settings, day): day for day in days.days}
        paths = tuple(day_of)
    elif layout == "parts":
        if not path.is_dir():
            raise InputError("input.layout parts needs a directory of part files", path)
        paths = tuple(sorted(p for p in path.glob(settings.parts) if p.is_file()))
        paths = tuple(p for p in paths if not p.name.startswith(("_", ".")))
        if not paths:
            raise InputError(f"no part file matches {settings.parts!r}", path)
        day_of = {}
    else:
        if path.is_dir():
            raise InputError("input.layout file needs a file, not a directory", path)
        paths, day_of = (path,), {}
    for file in paths:
        check_file(file, settings)
    return InputFiles(layout, tuple(map(str, paths)), {str(p): d for p, d in day_of.items()})


def list_remote(spark: SparkSession, root: str) -> dict[str, int]:
    """The files at a remote path (itself, or those in the folder) with their sizes, listed
    by Spark without reading them: ``{uri: bytes}``."""
    from pyspark.errors import AnalysisException

    try:
        listing = spark.read.format("binaryFile").load(root).select("path", "length").collect()
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            return {}
        raise
    return {file_key(r["path"]): int(r["length"]) for r in listing}


def list_s3(uri: str, endpoint: str | None = None) -> dict[str, int]:
    """The objects at an ``s3a://`` or ``s3://`` path (the object itself, or those under it
    as a folder) with their sizes, listed with boto3 (no Spark): ``{uri: bytes}``."""
    import boto3

    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    client = boto3.client("s3", endpoint_url=endpoint or None)
    found: dict[str, int] = {}
    for prefix in (key, key.rstrip("/") + "/"):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"]
                if name == key or name.startswith(key.rstrip("/") + "/"):
                    found[f"{scheme}://{bucket}/{name}"] = int(item["Size"])
    return found


def _remote_files(
    spark: SparkSession, settings: InputSettings, root: str, days: DayRange
) -> InputFiles:
    return remote_input_files(list_remote(spark, root.rstrip("/")), settings, root, days)


def remote_input_files(
    listing: dict[str, int], settings: InputSettings, root: str, days: DayRange
) -> InputFiles:
    """:func:`input_files` of a remote path, from its ``listing`` (``{uri: bytes}``)."""
    if not listing:
        raise InputError(f"no input for {days}: nothing at the path", root)
    is_file = list(listing) == [unquote(root)]
    layout = settings.layout if settings.layout != "auto" else ("file" if is_file else "daily")
    by_name = {uri.rsplit("/", 1)[-1]: uri for uri in listing}
    if layout == "daily":
        day_of = {}
        for day in days.days:
            name = daily_name(settings.daily_files, day)
            found = [by_name[n] for n in (name, name + ".gz", name + ".bz2") if n in by_name]
            if not found:
                raise InputError(f"no input for {day}: expected {name}[.gz|.bz2]", root)
            day_of[found[0]] = day
        paths = tuple(day_of)
    elif layout == "parts":
        names = sorted(n for n in by_name if fnmatch(n, settings.parts) and n[0] not in "_.")
        if not names:
            raise InputError(f"no part file matches {settings.parts!r}", root)
        paths, day_of = tuple(by_name[n] for n in names), {}
    else:
        if not is_file:
            raise InputError("input.layout file needs a file, not a folder", root)
        paths, day_of = (unquote(root),), {}
    for uri in paths:
        if listing[uri] == 0:
            raise InputError("the file is empty", uri)
    return InputFiles(layout, paths, day_of)


def remote_head_lines(spark: SparkSession, uri: str, n: int) -> list[str]:
    """The first ``n`` non-blank lines of a remote text file (decompressed by Spark)."""
    from pyspark.sql import functions as F

    rows = spark.read.text(uri).filter(F.trim("value") != "").limit(n).collect()
    return [str(r[0]).removeprefix("\ufeff") for r in rows]


def split_line(line: str, settings: InputSettings) -> list[str]:
    """One line of a csv/tsv source split into fields the way Spark splits it."""
    import csv

    if settings.quote:
        reader = csv.reader([line], delimiter=settings.separator, quotechar=settings.quote)
    else:
        reader = csv.reader([line], delimiter=settings.separator, quoting=csv.QUOTE_NONE)
    return [field.strip() for field in next(reader, [])]


_NUMBER = re.compile(r"^-?\d+([.,]\d+)?$")


def looks_like_data(names: list[str]) -> bool:
    """A header whose names include numbers is more likely a first row of data."""
    return any(_NUMBER.match(n) for n in names)


def input_arrived(
    settings: InputSettings,
    root: str,
    day: dt.date,
    list_files: Callable[[str], dict[str, int]] | None = None,
) -> str | None:
    """None once the input holding ``day`` is at ``root`` and readable (a local file is fully
    checked, so a file still being copied is not yet there); otherwise what is missing. A
    remote path is listed with ``list_files`` (``{uri: bytes}``)."""
    try:
        if is_remote(root):
            if list_files is None:
                raise InputError("a remote input needs a way to list it", root)
            remote_input_files(list_files(root.rstrip("/")), settings, root, DayRange.of(day))
        else:
            input_files(settings, root, DayRange.of(day))
    except InputError as exc:
        return str(exc)
    return None
