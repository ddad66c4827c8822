"""Pseudonymisation: user ids become an HMAC-SHA256 keyed hash before leaving ``raw.*``.

The key comes from the environment variable named by ``privacy.key_env``. A public demo key
is used only when ``privacy.allow_demo_key`` is true, with a loud warning.
The hash is computed by Spark itself (no Python UDF): HMAC is two SHA-256 passes over the
key XOR-ed with the inner and outer pads (RFC 2104), which Spark's ``sha2`` can do.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F

from recsys_lib.config import Settings

log = logging.getLogger(__name__)

DEMO_KEY = b"recsys-demo-key-not-secret"
_BLOCK = 64  # SHA-256 block size in bytes


class MissingKeyError(RuntimeError):
    """No pseudonymisation key is configured."""


def pseudonym_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from the environment, or the demo key if the configuration allows it."""
    environ = os.environ if environ is None else environ
    value = environ.get(settings.privacy.key_env, "")
    if value:
        return value.encode()
    if settings.privacy.allow_demo_key:
        log.warning(
            "!!! %s is not set: user ids are hashed with the PUBLIC DEMO KEY. "
            "Anyone can reverse them by brute force; never use this with real users. !!!",
            settings.privacy.key_env,
        )
        return DEMO_KEY
    raise MissingKeyError(
        f"set {settings.privacy.key_env} to a secret (e.g. `openssl rand -hex 32`); "
        "user ids are pseudonymised with it"
    )


def hmac_sha256_hex(key: bytes, message: str) -> str:
    """Reference implementation (Python's hmac), used by tests and small lookups."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def hmac_sha256_column(key: bytes, column: Column) -> Column:
    """Spark column with the hex HMAC-SHA256 of ``column`` (a string) under ``key``.

    Null stays null.
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in key)
    outer_pad = bytes(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.unhex(F.lit(inner_pad.hex())), column.cast("binary")), 256))
    return F.sha2(F.concat(F.unhex(F.lit(outer_pad.hex())), inner), 256)
