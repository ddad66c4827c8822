"""Fault injection: the process kills itself (SIGKILL) at a named point of a run.

Off unless ``RECSYS_FAULT_POINT`` names a point; the kill-safety tests set it in the
environment of a subprocess to prove that every table stays readable at that point and
that a rerun gives the rows of an uninterrupted run (docs/operations.md, "Kill recovery").
``RECSYS_FAULT_SKIP`` passes the point that many times first (a later chunk of a backfill).

The points:

- ``mid_write:<table>``: while ``table``'s data files are being written, before its commit;
- ``committed:<table>``: just after ``table``'s commit (a stage's other tables and its
  ``ops.stage_runs`` row not yet written);
- ``registered``: after the ranker's version is registered and the alias moved, before
  ``ops.model_evaluation`` is written;
- ``staged:<table>``: after the audited copy is staged, before it is published;
- ``serving_loaded``: the serving store's new table loaded, before the swap.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

FAULT_ENV = "RECSYS_FAULT_POINT"
SKIP_ENV = "RECSYS_FAULT_SKIP"
_passed: dict[str, int] = {}
_lock = threading.Lock()


def armed(point: str) -> bool:
    """Whether this run is to be killed at ``point`` now (counting the passes to skip)."""
    if os.environ.get(FAULT_ENV) != point:
        return False
    with _lock:
        passes = _passed.get(point, 0)
        _passed[point] = passes + 1
    return passes >= int(os.environ.get(SKIP_ENV, "0"))


def kill(point: str) -> None:
    log.error("fault injection: killed at %s", point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def fault_point(point: str) -> None:
    """SIGKILL this process if the fault-injection point ``point`` is armed."""
    if armed(point):
        kill(point)


def kill_on_new_file(point: str, directory: str) -> None:
    """If ``point`` is armed, watch ``directory`` (local) and SIGKILL this process as soon as
    a data file appears in it that was not there before: a write killed half-way, its files
    on disk and its commit never made."""
    if not armed(point):
        return
    root = Path(directory.removeprefix("file:"))
    before = set(root.rglob("*.parquet")) if root.exists() else set()

    def watch() -> None:
        while True:
            if root.exists() and set(root.rglob("*.parquet")) - before:
                kill(point)
            time.sleep(0.005)

    threading.Thread(target=watch, name="recsys-fault", daemon=True).start()
