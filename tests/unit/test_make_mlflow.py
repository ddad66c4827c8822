"""`make mlflow` starts a UI that answers HTTP on the port it says."""

from __future__ import annotations

import os
import signal
import subprocess

from recsys_lib.devtools.local_postgres import free_port
from recsys_lib.devtools.local_services import get, wait_until
from tests.conftest import REPO


def test_make_mlflow_answers(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "RECSYS__MLFLOW__TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    log = tmp_path / "make-mlflow.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "-s", "mlflow", f"MLFLOW_PORT={port}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: get(f"{url}/health")[0] == 200, [process], log, 120)
        status, page = get(url)
        assert status == 200 and b"MLflow" in page
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
