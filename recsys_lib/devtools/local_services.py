"""The deployment's servers, started on 127.0.0.1 for the tests: an MLflow tracking server
over PostgreSQL, and Airflow's scheduler, DAG processor and API server (LocalExecutor) over
PostgreSQL. Each runs as its own process, as on a real host, with its log in a folder, and
stops when the ``with`` block ends. docker/compose.yaml runs the same commands in containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_lib.devtools.local_postgres import HOST, free_port

BIN = Path(sys.executable).parent


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Status and body of an HTTP GET (an error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def wait_until(
    ready: Callable[[], bool], processes: list[subprocess.Popen[bytes]], log: Path, timeout: float
) -> None:
    """Poll ``ready`` until it is true; fail with the log's tail if a process exits or time
    runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{log.name}: exited ({process.returncode}): {_tail(log)}")
        try:
            if ready():
                return
        except OSError:
            pass  # not listening yet
        time.sleep(1.0)
    raise TimeoutError(f"{log.name}: not ready after {timeout:.0f}s: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


@dataclass(frozen=True)
class MlflowServer:
    url: str


@contextmanager
def mlflow_server(folder: Path, backend_uri: str, env: dict[str, str]) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free port of 127.0.0.1 with ``backend_uri`` (PostgreSQL) as its
    store and ``folder/artifacts`` as its artifact store (clients upload through it)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "mlflow-server.log"
    process = _start(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            HOST,
            "--port",
            str(port),
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            (folder / "artifacts").as_uri(),
            "--workers",
            "1",
        ],  # fmt: skip
        log,
        env,
    )
    server = MlflowServer(f"http://{HOST}:{port}")
    try:
        wait_until(lambda: get(f"{server.url}/health")[0] == 200, [process], log, 120)
        yield server
    finally:
        _stop(process)


@dataclass(frozen=True)
class AirflowServices:
    """Airflow 3 on 127.0.0.1: the API server's URL and the environment its CLI needs."""

    url: str
    env: dict[str, str]
    logs: Path

    def api(self, path: str) -> Any:
        """GET ``/api/v2/<path>`` as JSON (the test's user is an admin, see below)."""
        status, body = get(f"{self.url}/api/v2/{path}")
        if status != 200:
            raise RuntimeError(f"GET /api/v2/{path}: {status} {body[:500]!r}")
        return json.loads(body)

    def cli(self, *args: str) -> str:
        """Run ``airflow <args>`` against the same database; its output."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {done.stderr[-3000:]}")
        return done.stdout


@contextmanager
def airflow_services(
    folder: Path, database_uri: str, env: dict[str, str]
) -> Iterator[AirflowServices]:
    """``airflow db migrate``, then the scheduler (LocalExecutor), the DAG processor and the
    API server, each a process of its own over ``database_uri``; stopped on exit.

    The API server lets every request in as an admin (simple auth manager,
    ``all_admins``): this is a test's server on 127.0.0.1. A deployment sets users
    (docker/compose.yaml)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_uri,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    }
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
    )
    services = AirflowServices(url, env, folder)
    with ExitStack() as stack:
        processes = []
        for name, args in (
            ("api-server", ["api-server", "--host", HOST, "--port", str(port)]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            process = _start([str(BIN / "airflow"), *args], folder / f"{name}.log", env)
            stack.callback(_stop, process)
            processes.append(process)
        wait_until(
            lambda: get(f"{url}/api/v2/monitor/health")[0] == 200,
            processes,
            folder / "api-server.log",
            180,
        )
        yield services
