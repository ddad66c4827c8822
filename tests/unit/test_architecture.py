"""The layout of docs/architecture.md holds: the import contracts, no import cycle, and one
name per stage (DAG task id = jobs/<stage>.py = recsys_lib/stages/<stage>.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from recsys_lib import constants as C
from recsys_lib.pipeline import STAGES

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    # The layers, the stages' independence and "only stages touch tables" (pyproject.toml).
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_recsys_lib_has_no_import_cycle() -> None:
    graph = grimp.build_graph("recsys_lib")
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            assert imported not in path, "import cycle: " + " -> ".join(
                path[path.index(imported) :] + [imported]
            )
            if imported not in done:
                visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph.modules):
        if module not in done:
            visit(module)
    assert len(done) == len(graph.modules) > 40


def test_one_name_per_stage() -> None:
    assert tuple(STAGES) == C.NIGHTLY_STAGES
    for name, stage in STAGES.items():
        assert (REPO / "jobs" / f"{name}.py").is_file(), name
        assert (REPO / "recsys_lib" / "stages" / f"{name}.py").is_file(), name
        assert stage.function.startswith(f"recsys_lib.stages.{name}:"), stage.function
        assert callable(stage.load())
