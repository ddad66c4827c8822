"""docker/compose.yaml brought up for real and run through the commands of
docs/deployment.md, as a new user on a Docker host would: the secrets made, the image built
once, the stack up, an example shop in the landing volume, history backfilled, two nights
through the scheduler in date order, the tables read back from the object store with
delta-rs, the serving table in PostgreSQL, the champion in MLflow's registry, the Airflow
API healthy and a task's log readable; then everything taken down.

Every command below is quoted from docs/deployment.md (the test fails if the docs lose
one), and runs in a copy of the checkout (its tracked and untracked, not ignored files:
what a clone holds). The engine (``tests/stack/conftest.py``) is the host's own or one the
test installs and starts, with stand-in images made without a registry."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from recsys_lib.devtools.container_engine import Engine
from recsys_lib.devtools.local_services import get
from recsys_lib.pipeline import NIGHTLY
from tests.conftest import REPO
from tests.integration.helpers import SMALL_MODELS, assert_days_in_order, wait_for_runs

DOCS = REPO / "docs" / "deployment.md"
COMPOSE = "docker compose -f docker/compose.yaml"
SECRETS = """\
mkdir -p docker/secrets && cd docker/secrets
openssl rand -hex 24 > postgres_password
echo recsys > s3_access_key && openssl rand -hex 24 > s3_secret_key
openssl rand -hex 32 > pseudonym_key
openssl rand -hex 32 > airflow_jwt_secret
openssl rand -hex 32 > airflow_api_secret
openssl rand -base64 32 | tr '+/' '-_' > airflow_fernet_key
chmod 700 . && chmod 644 * && cd ../..
"""
BUILD = f"{COMPOSE} build"
UP = f"{COMPOSE} up -d --wait"
EXEC = f"{COMPOSE} exec airflow-scheduler"
GENERATE = f"{EXEC} recsys generate --scale 0.5 --days 6 --out /data/shop"
HISTORY = (
    f"{EXEC} recsys backfill --start 2026-10-01 --end 2026-10-02 --stages ingest,clean,aggregate",
    f"{EXEC} recsys backfill --start 2026-10-03 --end 2026-10-04",
)
UNPAUSE = f"{EXEC} airflow dags unpause recsys_nightly"
NIGHTS = (
    f"{EXEC} airflow backfill create --dag-id recsys_nightly"
    " --from-date 2026-10-05 --to-date 2026-10-06 --reprocess-behavior failed"
)
QUERY = (
    f'{EXEC} recsys query "SELECT dt, count(DISTINCT user_id) AS users, count(*) AS rows'
    ' FROM recs.user_recommendations GROUP BY dt ORDER BY dt" --format json'
)
SERVED = (
    f"{COMPOSE} exec postgres psql --username=recsys --dbname=serving"
    ' -c "SELECT count(*) FROM recsys.user_recommendations"'
)
PASSWORDS = f"{COMPOSE} exec airflow-api-server cat /opt/airflow/state/passwords.json"
DOWN = f"{COMPOSE} down --volumes"
BACKFILLED = [dt.date(2026, 10, 5), dt.date(2026, 10, 6)]
# The test's own settings (docker/recsys.env, as the docs describe): small models, few
# partitions, no retries, and only the backfill's runs (no scheduled run of today's).
RECSYS_ENV = {
    **SMALL_MODELS,
    "RECSYS__SPARK__SHUFFLE_PARTITIONS": "4",
    "RECSYS_DAG_RETRIES": "0",
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    # The two runs share the cluster, one worker each, rather than one job waiting for the
    # executors the other holds until it ends.
    "RECSYS__SPARK__CONF__spark.cores.max": "2",
}
# Sized for a 2-core, 24 GiB host: two workers of 3g, executors and drivers of 2g.
MEMORY = {"SPARK_WORKER_MEMORY": "3g", "SPARK_EXECUTOR_MEMORY": "2g", "SPARK_DRIVER_MEMORY": "2g"}
RUNS_TIMEOUT = 3600  # two nights of 22 tasks: 2,327 s by hand, before spark.cores.max
AIRFLOW = "http://127.0.0.1:8080"
MLFLOW = "http://127.0.0.1:5000"


def test_every_command_run_here_is_in_the_deployment_docs() -> None:
    text = DOCS.read_text()
    for command in (SECRETS, BUILD, UP, GENERATE, *HISTORY, UNPAUSE, NIGHTS, QUERY, SERVED,
                    PASSWORDS, DOWN):  # fmt: skip
        assert " ".join(command.split()) in " ".join(text.replace("\\\n", " ").split()), command


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree as a clone holds it (no .venv, .cache, secrets)."""
    folder = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return folder


class Step:
    """Runs the documented commands in the checkout and keeps each one's seconds."""

    def __init__(self, engine: Engine, checkout: Path) -> None:
        self.env = {**engine.env, **MEMORY}
        self.checkout = checkout
        self.timings = dict(engine.timings)

    def __call__(self, name: str, command: str, timeout: float = 1800) -> str:
        started = time.perf_counter()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command], cwd=self.checkout, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def scheduler_log(self) -> str:
        """The scheduler's last lines (its tasks' failures)."""
        return self("logs", f"{COMPOSE} logs --tail 200 airflow-scheduler")[-5000:]


@pytest.fixture(scope="module")
def stack(engine: Engine, checkout: Path):
    """The stack up, from the documented commands; taken down (with its volumes) after."""
    step = Step(engine, checkout)
    step("secrets", SECRETS)
    (checkout / "docker" / "recsys.env").write_text(
        "".join(f"{k}={v}\n" for k, v in RECSYS_ENV.items())
    )
    try:
        step("build", BUILD)
        step("up", UP, timeout=600)
        yield step
    finally:
        subprocess.run(["bash", "-c", f"{COMPOSE} logs --no-color > compose.log 2>&1"],
                       cwd=checkout, env=step.env)  # fmt: skip
        step("down", DOWN, timeout=300)
        project = ["--filter", "label=com.docker.compose.project=recsys"]
        assert not engine.run(["docker", "ps", "-aq", *project]).stdout.split()
        assert not engine.run(["docker", "volume", "ls", "-q", *project]).stdout.split()
        print("stack timings (s):", {k: round(v) for k, v in step.timings.items()})


class Api:
    """Airflow's REST API as the documented admin user (its password from the volume)."""

    def __init__(self, password: str) -> None:
        request = urllib.request.Request(
            f"{AIRFLOW}/auth/token",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            self.token = json.load(answer)["access_token"]

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{AIRFLOW}/api/v2/{path}",
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.load(answer)


@pytest.mark.slow
@pytest.mark.stack
def test_the_stack_runs_history_and_two_nights_from_the_documented_commands(stack) -> None:
    step = stack
    step("example shop", GENERATE)
    for command in HISTORY:
        step("history backfill", command)

    passwords = json.loads(step("password", PASSWORDS))
    api = Api(passwords["admin"])
    step("unpause", UNPAUSE)
    step("nights", NIGHTS)
    started = time.perf_counter()
    runs = wait_for_runs(api.get, BACKFILLED, RUNS_TIMEOUT, step.scheduler_log)
    step.timings["nights"] += time.perf_counter() - started
    assert_days_in_order(api.get, runs, ("wait_for_input", *NIGHTLY))

    # A task's log, through the API server (written by the scheduler's task).
    run_id = urllib.parse.quote(runs[BACKFILLED[-1]]["dag_run_id"], safe="")
    path = f"dags/recsys_nightly/dagRuns/{run_id}/taskInstances/recommend/logs/1"
    events = " ".join(
        str(e.get("event", "")) for e in api.get(f"{path}?full_content=true")["content"]
    )
    assert f"stage recommend for {BACKFILLED[-1]}: done in" in events, events[-2000:]
    status, health = get(f"{AIRFLOW}/api/v2/monitor/health")
    assert status == 200 and json.loads(health)["scheduler"]["status"] == "healthy"

    # The published lists, read from the object store with delta-rs (no JVM).
    per_day = {r["dt"]: r for r in json.loads(step("query", QUERY))}
    last = per_day[BACKFILLED[-1].isoformat()]
    assert last["users"] > 0 and last["rows"] >= last["users"]
    # The serving table holds the last night's lists, as published.
    served = int(re.findall(r"^\s*(\d+)\s*$", step("serving", SERVED), re.M)[0])
    assert served == last["rows"]
    # The champion is in the tracking server's registry.
    status, body = get(f"{MLFLOW}/api/2.0/mlflow/registered-models/get?name=recsys-ranker")
    assert status == 200 and b"champion" in body
