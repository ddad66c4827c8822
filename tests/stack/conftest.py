"""The stack test's Docker engine: the host's own, or one installed and started for the
session and stopped after it (recsys_lib/devtools/container_engine.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from recsys_lib.devtools.container_engine import Engine
from recsys_lib.devtools.container_engine import engine as container_engine
from tests.conftest import REPO


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with container_engine(
        REPO / ".cache" / "stack", REPO / "docker" / "standins", sys.executable
    ) as running:
        yield running
