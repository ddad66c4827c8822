"""A Spark standalone cluster on 127.0.0.1: one master and one worker, each its own JVM.

The deployment tests run a night on it (its executors are JVMs of their own, launched by the
worker, as on a real cluster); ``recsys local-cluster`` starts one for a user to try
``spark.master: spark://127.0.0.1:7077``. The programs are pyspark's own
(``spark-class org.apache.spark.deploy.master.Master`` and ``...worker.Worker``): nothing to
install beyond the project's environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalCluster:
    master_url: str  # spark://127.0.0.1:PORT
    ui_url: str  # the master's web UI (and its /json/ state)
    work_dir: Path  # the worker's folder: one app-*/EXECUTOR_ID/ per executor it launched

    def state(self) -> dict[str, Any]:
        """The master's state: workers, active and completed applications."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=10) as answer:
            state: dict[str, Any] = json.load(answer)
        return state

    def executor_logs(self) -> list[Path]:
        """The stderr files of the executors the worker has launched."""
        return sorted(self.work_dir.glob("app-*/*/stderr"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stopped with its children
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def local_cluster(
    folder: Path,
    *,
    cores: int = 2,
    memory: str = "3g",
    port: int | None = None,
    timeout: float = 120.0,
    environ: dict[str, str] | None = None,
) -> Iterator[LocalCluster]:
    """Start a master and a worker (``cores``, ``memory`` for its executors) with their logs
    and work in ``folder``; yield once the worker has registered; stop both on exit.
    ``environ`` adds variables to the worker's environment, which its executors inherit (an
    object store's credentials, as a deployment gives its workers)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    ui_port = free_port()
    env = {
        **os.environ,
        **(environ or {}),
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOG_DIR": str(folder / "logs"),
    }
    master_url = f"spark://{HOST}:{port}"
    cluster = LocalCluster(master_url, f"http://{HOST}:{ui_port}", folder / "work")
    master = _start(
        [
            "org.apache.spark.deploy.master.Master",
            *("--host", HOST, "--port", str(port), "--webui-port", str(ui_port)),
        ],
        folder / "master.log",
        env,
    )
    worker = None
    try:
        _wait(lambda: cluster.state() is not None, master, folder / "master.log", timeout)
        worker = _start(
            [
                "org.apache.spark.deploy.worker.Worker",
                *("--host", HOST, "--cores", str(cores), "--memory", memory),
                *("--work-dir", str(cluster.work_dir), "--webui-port", str(free_port())),
                master_url,
            ],
            folder / "worker.log",
            env,
        )
        _wait(lambda: cluster.state()["aliveworkers"] >= 1, worker, folder / "worker.log", timeout)
        yield cluster
    finally:
        if worker is not None:
            _stop(worker)
        _stop(master)


def _wait(ready: Any, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{log.stem} exited ({process.returncode}): {log.read_text()[-2000:]}"
            )
        try:
            if ready():
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise TimeoutError(f"{log.stem} not ready after {timeout:.0f}s: {log.read_text()[-2000:]}")
