"""Rows of a table in a form two runs can be compared by: the rerun tests' snapshot and
``bench/snapshot.py``'s fingerprints both use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def comparable(value: Any, skip_key: Callable[[str], bool] | None = None) -> Any:
    """``value`` with floats to 12 significant digits (Spark may sum in another order on a
    rerun) and nested rows, lists and maps as sorted tuples; map keys for which
    ``skip_key`` is true are left out."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list | tuple):
        return tuple(comparable(v, skip_key) for v in value)
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if skip_key is None or not skip_key(str(k))}
        return tuple(sorted((k, comparable(v, skip_key)) for k, v in kept.items()))
    return value
