"""Pseudonymisation: user ids become an HMAC-SHA256 keyed hash before leaving ``raw.*``.

The key comes from the environment variable named by ``privacy.key_env``, and every run that
hashes ids needs it: without it a run fails at once (:func:`require_key`). The public demo
key is only set by ``recsys demo``, the benchmarks and the tests (:func:`use_demo_key`).

The key is read where the hash is computed, never passed to Spark: the column
:func:`pseudonym_column` is a vectorised (Arrow) Python function that reads the key from the
environment of the process it runs in, an executor's Python worker (which inherits the
executor's environment; in local mode, the driver's). So neither the key nor anything
derived from it is a literal of a plan, a Spark setting or a task's closure: the Spark UI,
the event log and ``EXPLAIN`` show the function's name and its input column only. Its cost
against Spark's own ``sha2`` is measured in docs/benchmarks.md ("The pseudonym key").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import pyarrow as pa
from pyspark.sql import Column

from recsys_lib.config import Settings

log = logging.getLogger(__name__)

DEMO_KEY = "recsys-demo-key-not-secret"
MAKE_A_KEY = "openssl rand -hex 32"


class MissingKeyError(RuntimeError):
    """No pseudonymisation key is configured."""


def _missing(variable: str) -> MissingKeyError:
    return MissingKeyError(
        f"{variable} is not set: user ids are pseudonymised with a secret key. Make one with "
        f"`{MAKE_A_KEY}`, keep it in a secret store and export {variable}=<key> "
        "(the same key every night: a new key gives every user a new pseudonym)"
    )


def pseudonym_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from the environment; :class:`MissingKeyError` if it is not set. The
    public demo key is taken (it is set explicitly by the demo and the tests) with a loud
    warning."""
    environ = os.environ if environ is None else environ
    variable = settings.privacy.key_env
    value = environ.get(variable, "")
    if not value:
        raise _missing(variable)
    if value == DEMO_KEY:
        log.warning(
            "!!! %s holds the PUBLIC DEMO KEY: anyone can reverse these pseudonyms by brute "
            "force. It is for generated shops only; never use it with real users. !!!",
            variable,
        )
    return value.encode()


def require_key(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Fail at once, before any work, where a run will hash ids without a key."""
    pseudonym_key(settings, environ)


def use_demo_key(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Set the public demo key for a generated shop (``recsys demo``, benchmarks), unless
    a key is set already. Before the Spark session starts, so its workers inherit it."""
    environ = os.environ if environ is None else environ
    environ.setdefault(settings.privacy.key_env, DEMO_KEY)


def hmac_sha256_hex(key: bytes, message: str) -> str:
    """HMAC-SHA256 of ``message`` (UTF-8) under ``key``, in hex."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def hmac_sha256_many(key: bytes, messages: Iterable[str | None]) -> list[str | None]:
    """:func:`hmac_sha256_hex` of each message (None stays None), each distinct one hashed
    once: a user's events arrive together."""
    done: dict[str, str] = {}
    out: list[str | None] = []
    for message in messages:
        if message is None:
            out.append(None)
            continue
        digest = done.get(message)
        if digest is None:
            digest = done[message] = hmac_sha256_hex(key, message)
        out.append(digest)
    return out


def executor_key(variable: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The key as the process computing the hash sees it (an executor's Python worker)."""
    environ = os.environ if environ is None else environ
    value = environ.get(variable, "")
    if not value:
        raise MissingKeyError(
            f"{variable} is not set on the executor ({socket.gethostname()}): the workers "
            "hash the user ids, so they need the key in their environment "
            "(docs/deployment.md, 'Secrets')"
        )
    return value.encode()


def pseudonym_column(column: Column, key_variable: str) -> Column:
    """The hex HMAC-SHA256 of ``column`` (a string) under the key in the environment
    variable ``key_variable`` of the worker that computes it. Null stays null."""
    from pyspark.sql import functions as F

    def pseudonym(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        key = executor_key(key_variable)
        for values in batches:
            yield pa.array(hmac_sha256_many(key, values.to_pylist()), pa.string())

    # An iterator of Arrow batches (its type hints say so): the key is read once a task.
    udf: Any = F.arrow_udf(pseudonym, "string")  # type: ignore[call-overload]
    return udf(column)
