"""Claims: at most one run at a time of a stage for a day, and of the ranker's registration.

A run claims ``<stage>/<day>`` (every day of a range) before it reads anything and gives the
claim back when it ends, failed or not. A second run that wants the same stage and day fails
at once with a :class:`ClaimError` naming the holder (host, process, since when) instead of
overwriting the first run's slices. Runs of other stages or other days proceed (rule 10 of
docs/architecture.md; docs/operations.md, "Concurrent runs").

A claim is a small JSON file under ``<warehouse>/_claims/``, created only if absent (an
exclusive create on a local disk; a conditional ``PUT`` with ``If-None-Match`` on S3). Its
holder rewrites its heartbeat every ``concurrency.heartbeat_seconds``. A holder that was
killed leaves its claim behind; the claim lapses when its heartbeat is older than
``concurrency.stale_after_seconds``, or at once when the holder ran on this host and its
process is gone, so a rerun after a kill proceeds.

Some claims are waited for instead (:func:`waiting`): two nights' ``train_ranker`` may run
at once, but registering a version and moving the alias ``champion`` go one at a time.

One writer per table, on every store and across every DAG and command:

- each commit to a table holds that table's lock (:func:`table_lock`): a ``flock`` on a local
  disk, the waited-for claim ``tables/<table>`` on S3, where Delta's own log store keeps
  writers apart only within one JVM;
- a stage run holds a share of the warehouse (:func:`sharing`), and an erasure or a
  maintenance task holds it alone (:func:`alone`): it waits for the running stages to end,
  and stages that start meanwhile wait for it. So an erasure never meets a stage that has
  read a user's rows and not yet written them back.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from recsys_lib.config import S3_ENDPOINT, Settings

log = logging.getLogger(__name__)

CLAIMS_DIR = "_claims"


class ClaimError(RuntimeError):
    """Another live run holds the claim this run needs."""


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: the run's token, host and process, and when it started and last
    said it was alive (seconds since the epoch)."""

    token: str
    host: str
    pid: int
    what: str
    started_at: float
    heartbeat_at: float

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def decode(data: bytes) -> Holder | None:
        try:
            return Holder(**json.loads(data))
        except (ValueError, TypeError):
            return None  # half-written by a killed holder: treated as lapsed

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))
        return (
            f"{self.what} on {self.host}, process {self.pid}, since {started} "
            f"(last heartbeat {now - self.heartbeat_at:.0f}s ago)"
        )


class Store(Protocol):
    """Where claims live: create-if-absent, read, overwrite and delete of small objects."""

    def create(self, key: str, data: bytes) -> bool: ...
    def read(self, key: str) -> bytes | None: ...
    def write(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str) -> list[str]: ...
    def where(self, key: str) -> str: ...
    def exclusive(self, key: str) -> AbstractContextManager[None]: ...


class LocalStore:
    """Claims as files of a local directory: a claim appears whole or not at all (a hard
    link of a written file fails if the claim exists), and the read-check-change steps of a
    takeover, a heartbeat or a release hold a lock of their key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def where(self, key: str) -> str:
        return str(self.root / key)

    def create(self, key: str, data: bytes) -> bool:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        partial.write_bytes(data)
        try:
            os.link(partial, path)
        except FileExistsError:
            return False
        finally:
            partial.unlink()
        return True

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        with _flock(self.root / ".locks" / f"{key}.lock"):
            yield

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        partial.write_bytes(data)
        os.replace(partial, path)  # readers see the old or the new heartbeat, never half

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}" for p in folder.iterdir() if not p.name.startswith("."))


class S3Store:
    """Claims as objects of an S3 bucket (a conditional PUT is create-if-absent)."""

    def __init__(self, uri: str, endpoint: str | None) -> None:
        _, _, rest = uri.partition("://")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.rstrip("/")
        self.client = _s3_client(endpoint or None)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def create(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return bytes(body.read())

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def keys(self, prefix: str) -> list[str]:
        start = self._key(prefix) + "/"
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        ):
            found += [f"{prefix}/{o['Key'][len(start) :]}" for o in page.get("Contents", [])]
        return sorted(found)

    def exclusive(self, key: str) -> AbstractContextManager[None]:
        # No lock across machines: a takeover of a lapsed claim by two runs within the same
        # moment could let both through (docs/operations.md, "Concurrent runs", Limits).
        return nullcontext()


@functools.lru_cache(maxsize=8)
def _s3_client(endpoint: str | None) -> Any:
    """One client per endpoint and process (a claim per commit would make one each)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def _claims_root(settings: Settings) -> tuple[str, Path | None]:
    """The claims' folder as a URI, and as a local path when it is on a local disk."""
    root = f"{settings.warehouse}/{CLAIMS_DIR}"
    scheme, sep, _ = root.partition("://")
    return root, Path(root.removeprefix("file://")) if not sep or scheme == "file" else None


def store_of(settings: Settings) -> Store:
    """The claims' store beside the warehouse: a local directory or an S3 prefix."""
    root, local = _claims_root(settings)
    if local is not None:
        return LocalStore(local)
    scheme = root.partition("://")[0]
    if scheme in ("s3a", "s3"):
        return S3Store(root, settings.spark.conf.get(S3_ENDPOINT))
    raise ClaimError(
        f"claims are kept on a local disk or S3, not {scheme}://; set "
        "concurrency.claims: false and make sure no two runs of a stage and day overlap"
    )


def _alive_here(holder: Holder) -> bool:
    """False only when the holder ran on this host and its process is gone."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lapsed(holder: Holder | None, now: float, stale_after: float) -> bool:
    """Whether a claim no longer holds: unreadable, its heartbeat too old, or its process
    dead on this host."""
    if holder is None:
        return True
    return now - holder.heartbeat_at > stale_after or not _alive_here(holder)


class Claim:
    """The claims of one run on some keys; taken by :meth:`take`, kept alive by a heartbeat
    thread, given back by :meth:`release`."""

    def __init__(self, settings: Settings, keys: Sequence[str], what: str) -> None:
        self.store = store_of(settings)
        self.limits = settings.concurrency
        self.keys = tuple(dict.fromkeys(keys))
        now = time.time()
        self.holder = Holder(uuid.uuid4().hex, socket.gethostname(), os.getpid(), what, now, now)
        self.taken: list[str] = []
        self.lost: list[str] = []
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _take_one(self, key: str) -> Holder | None:
        """Take ``key``; None when taken, else its live holder."""
        data = self.holder.encode()
        for _ in range(3):
            if self.store.create(key, data):
                return None
            with self.store.exclusive(key):
                raw = self.store.read(key)
                if raw is None:
                    continue  # given back meanwhile: try again
                current = Holder.decode(raw)
                if current is not None and current.token == self.holder.token:
                    return None  # our own create, whose answer was lost and retried
                if not lapsed(current, time.time(), self.limits.stale_after_seconds):
                    return current
                log.warning(
                    "claim %s lapsed (%s): taking it over",
                    key,
                    current.describe(time.time()) if current else "unreadable",
                )
                self.store.delete(key)
                if self.store.create(key, data):
                    return None
        raise ClaimError(f"claim {self.store.where(key)} keeps changing hands; try again")

    def take(self) -> None:
        """Take every key or none: on a held key (or an error), give back those taken and
        raise :class:`ClaimError` naming the holder."""
        held = self.try_take()
        if held is not None:
            key, holder = held
            raise ClaimError(
                f"{self.holder.what}: {key} is being run by {holder.describe(time.time())}. "
                "Two runs of one stage and day would overwrite each other's rows; wait for "
                "it to end. If that run is dead, its claim lapses "
                f"{self.limits.stale_after_seconds:.0f}s after its last heartbeat "
                f"(concurrency.stale_after_seconds), or delete {self.store.where(key)}."
            )

    def try_take(self) -> tuple[str, Holder] | None:
        """Take every key and keep them alive, or none: then the first held key and its
        live holder (the keys taken are given back)."""
        try:
            held = self._take_all()
        except BaseException:
            self.release()
            raise
        if held is not None:
            self.release()
            return held
        self._beat = threading.Thread(target=self._heartbeat, name="recsys-claim", daemon=True)
        self._beat.start()
        return None

    def _take_all(self) -> tuple[str, Holder] | None:
        """Take the keys in order; the first held one and its holder, if any."""
        for key in self.keys:
            holder = self._take_one(key)
            if holder is not None:
                return key, holder
            self.taken.append(key)
        return None

    def _still_mine(self, key: str) -> bool:
        current = Holder.decode(self.store.read(key) or b"")
        return current is not None and current.token == self.holder.token

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.limits.heartbeat_seconds):
            beat = Holder(**{**asdict(self.holder), "heartbeat_at": time.time()})
            for key in list(self.taken):
                try:
                    with self.store.exclusive(key):
                        if not self._still_mine(key):
                            log.error("claim %s was taken over by another run", key)
                            self.lost.append(key)
                            self.taken.remove(key)
                            continue
                        self.store.write(key, beat.encode())
                except Exception:  # noqa: BLE001 - a missed heartbeat is retried next time
                    log.warning("heartbeat of claim %s failed", key, exc_info=True)

    def release(self) -> None:
        """Give back the keys taken (those still this run's)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        for key in reversed(self.taken):
            try:
                with self.store.exclusive(key):
                    if self._still_mine(key):
                        self.store.delete(key)
            except Exception:  # noqa: BLE001 - the claim lapses on its own
                log.warning("could not give back claim %s", key, exc_info=True)
        self.taken.clear()


def _lost(claim: Claim) -> ClaimError:
    return ClaimError(
        f"{claim.holder.what}: lost {', '.join(claim.lost)} to another run while running "
        "(no heartbeat for concurrency.stale_after_seconds); its writes may have met this "
        "run's: rerun it"
    )


@contextmanager
def claimed(settings: Settings, keys: Sequence[str], what: str) -> Iterator[None]:
    """Hold the claims ``keys`` for the block; :class:`ClaimError` at once if one is held."""
    if not settings.concurrency.claims:
        yield
        return
    claim = Claim(settings, keys, what)
    claim.take()
    with _holding(claim):
        yield


@contextmanager
def _holding(claim: Claim) -> Iterator[None]:
    """The block under a claim taken: given back at its end; :class:`ClaimError` after it if
    another run took the claim over meanwhile."""
    try:
        yield
    finally:
        claim.release()
    if claim.lost:
        raise _lost(claim)


POLL_SECONDS = 1.0  # how often a waiting run looks again


@contextmanager
def waiting(
    settings: Settings, key: str, what: str, wait_seconds: float | None = None
) -> Iterator[None]:
    """Hold the claim ``key`` for the block, waiting (up to ``wait_seconds``, by default
    ``concurrency.wait_seconds``) while another run holds it."""
    if not settings.concurrency.claims:
        yield
        return
    with _holding(_take_waiting(settings, key, what, wait_seconds)):
        yield


def _take_waiting(settings: Settings, key: str, what: str, wait_seconds: float | None) -> Claim:
    limit = settings.concurrency.wait_seconds if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + limit
    told = False
    while True:
        claim = Claim(settings, [key], what)
        held = claim.try_take()
        if held is None:
            return claim
        taken_by = f"{claim.store.where(key)} is held by {held[1].describe(time.time())}"
        if time.monotonic() >= deadline:
            raise ClaimError(f"{what}: waited {limit:.0f}s for its turn; {taken_by}")
        if not told:
            log.info("%s waits for its turn: %s", what, taken_by)
            told = True
        time.sleep(POLL_SECONDS)


WAREHOUSE_ALONE = "warehouse/alone"  # held by a run that needs the warehouse to itself
WAREHOUSE_SHARES = "warehouse/shares"  # one claim per stage run that writes beside others


def _alone_holder(store: Store, settings: Settings) -> Holder | None:
    """The live holder of the warehouse alone, if any."""
    raw = store.read(WAREHOUSE_ALONE)
    if raw is None:
        return None
    holder = Holder.decode(raw)
    if lapsed(holder, time.time(), settings.concurrency.stale_after_seconds):
        return None
    return holder


@contextmanager
def sharing(settings: Settings, what: str) -> Iterator[None]:
    """Hold a share of the warehouse for the block: a stage run, which writes its own slices
    beside other stage runs. While an erasure or a maintenance task holds the warehouse
    :func:`alone`, wait (up to ``concurrency.turn_wait_seconds``) for it to end."""
    if not settings.concurrency.claims:
        yield
        return
    store = store_of(settings)
    limit = settings.concurrency.turn_wait_seconds
    deadline = time.monotonic() + limit
    told = False
    while True:
        holder = _alone_holder(store, settings)
        if holder is None:
            share = Claim(settings, [f"{WAREHOUSE_SHARES}/{uuid.uuid4().hex}"], what)
            share.take()
            # Taken first, then looked again: a run that took the warehouse alone meanwhile
            # is waiting for this share to go, so give it back and wait for that run.
            holder = _alone_holder(store, settings)
            if holder is None:
                break
            share.release()
        if time.monotonic() >= deadline:
            raise ClaimError(
                f"{what}: the warehouse was held alone by {holder.describe(time.time())} "
                f"for longer than concurrency.turn_wait_seconds ({limit:.0f}s)"
            )
        if not told:
            log.info("%s waits while %s holds the warehouse alone", what, holder.what)
            told = True
        time.sleep(POLL_SECONDS)
    with _holding(share):
        yield


@contextmanager
def alone(settings: Settings, what: str) -> Iterator[None]:
    """Hold the warehouse alone for the block (an erasure, a maintenance task): take the
    claim ``warehouse/alone`` (waiting for another such run), then wait for every running
    stage's share to be given back; stage runs that start meanwhile wait for this one.
    Waits at most ``concurrency.turn_wait_seconds`` in all."""
    if not settings.concurrency.claims:
        yield
        return
    limit = settings.concurrency.turn_wait_seconds
    started = time.monotonic()
    with _holding(_take_waiting(settings, WAREHOUSE_ALONE, what, limit)):
        _wait_for_shares(store_of(settings), settings, what, started + limit)
        yield


def _wait_for_shares(store: Store, settings: Settings, what: str, deadline: float) -> None:
    """Return once no live share of the warehouse is left (a lapsed one, of a killed run, is
    deleted); :class:`ClaimError` at ``deadline``."""
    told = False
    while True:
        live = []
        for key in store.keys(WAREHOUSE_SHARES):
            holder = Holder.decode(store.read(key) or b"")
            if lapsed(holder, time.time(), settings.concurrency.stale_after_seconds):
                store.delete(key)
            elif holder is not None:
                live.append(holder)
        if not live:
            return
        if time.monotonic() >= deadline:
            raise ClaimError(
                f"{what}: {live[0].describe(time.time())} still writes after "
                f"concurrency.turn_wait_seconds ({settings.concurrency.turn_wait_seconds:.0f}s)"
            )
        if not told:
            log.info("%s waits for %d running stage(s): %s", what, len(live), live[0].what)
            told = True
        time.sleep(POLL_SECONDS)


def stage_keys(stage: str, days: Sequence[Any]) -> list[str]:
    """The claim keys of ``stage`` on each of ``days`` (dates)."""
    return [f"{stage}/{day.isoformat()}" for day in days]


@contextmanager
def table_lock(settings: Settings, table: str) -> Iterator[None]:
    """Hold the commit lock of ``table`` for the block, waiting for it.

    Delta's log stores for local paths and for S3 (``S3SingleDriverLogStore``) keep two
    writers of one table apart only within one JVM: two processes committing the same
    version at once can leave a log file of one and a checksum of the other, or on S3 one
    commit written over the other. Every write of a table therefore holds this lock, so the
    commits of all processes and hosts follow each other and Delta's conflict checks see
    every earlier commit: a ``flock`` of ``<warehouse>/_claims/.locks/tables/<table>.lock``
    on a local disk, the claim ``tables/<table>`` (waited for up to
    ``concurrency.wait_seconds``) on S3."""
    _, local = _claims_root(settings)
    if local is None:
        with waiting(settings, f"tables/{table}", f"a write of {table}"):
            yield
        return
    with _flock(local / ".locks" / "tables" / f"{table}.lock"):
        yield


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` of ``path`` (created if missing) for the block, waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
