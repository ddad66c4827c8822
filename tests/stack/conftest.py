"""The stack test's Docker engine: the host's own, or one installed and started for the
session and stopped after it (recsys_lib/devtools/container_engine.py)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from types import FrameType

import pytest

from recsys_lib.devtools.container_engine import Engine
from recsys_lib.devtools.container_engine import engine as container_engine
from tests.conftest import REPO


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine; a SIGTERM (a CI timeout, a kill) still takes the stack down and stops the
    daemon, as pytest's teardown runs on an interrupt (a background job ignores SIGINT)."""
    signal.signal(signal.SIGTERM, _interrupted)
    with container_engine(
        REPO / ".cache" / "stack", REPO / "docker" / "standins", sys.executable
    ) as running:
        yield running
