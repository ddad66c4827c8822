"""docker/ and conf/cluster.yaml hold together: the compose file is valid by the compose
specification's own schema, every name it uses is declared, each service gets only its
secrets, the image is built once from an allow-listed context, and the cluster configuration
points at its services. (tests/stack/ brings the file up on a real engine.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from recsys_lib.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def test_the_compose_file_is_valid_by_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(DOCKER / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    broken = DOCKER.parent / "tests" / "unit" / "__bad_compose__.yaml"
    broken.write_text("services:\n  a:\n    image: x\n    ports: 8080\n")
    try:  # the checker does fail on a broken file
        bad = subprocess.run(
            [str(checker), "--builtin-schema", "vendor.compose-spec", str(broken)],
            capture_output=True,
        )
    finally:
        broken.unlink()
    assert bad.returncode != 0


def test_every_name_the_services_use_is_declared(compose) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "object-store",
        "spark-master",
        "spark-worker",
        "mlflow",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
    } <= set(services)
    for name, service in services.items():
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: undeclared secret {secret}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for other in service.get("depends_on", {}):
            assert other in services, f"{name} depends on an unknown service {other}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is open beyond the host"
    assert services["spark-worker"]["deploy"]["replicas"] == 2
    executor = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    assert executor == "LocalExecutor"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")  # files, never values in the compose


def test_no_password_is_written_in_the_deployment_files() -> None:
    for path in [DOCKER / "compose.yaml", REPO / "conf" / "cluster.yaml"]:
        text = re.sub(r"#.*", "", path.read_text())  # values, not comments
        assert not re.search(r"://[^/@\s:]+:[^/@\s]+@", text), f"{path}: a URL with a password"
        assert not re.search(r"(?i)password:[ \t]+[^\s{]", text), path


def test_the_cluster_configuration_points_at_the_services(compose) -> None:
    settings = load_settings("cluster", conf_dir=REPO / "conf", home=REPO, environ={})
    services = compose["services"]
    master = urlparse(settings.spark.master)
    assert (master.scheme, master.hostname, master.port) == ("spark", "spark-master", 7077)
    assert urlparse(settings.mlflow.tracking_uri).hostname == "mlflow"
    endpoint = urlparse(settings.spark.conf["spark.hadoop.fs.s3a.endpoint"])
    assert endpoint.hostname == "object-store" and endpoint.port == 9000
    assert settings.warehouse.startswith("s3a://") and settings.uses_object_store
    assert settings.serving.enabled and urlparse(settings.serving.url).hostname == "postgres"
    buckets = services["buckets"]["command"][-1]
    assert urlparse(settings.warehouse).hostname in buckets  # the bucket is created
    databases = (DOCKER / "postgres-init.sql").read_text()
    assert urlparse(settings.serving.url).path.lstrip("/") in databases
    landing = [v for v in services["spark-worker"]["volumes"] if v.startswith("landing:")]
    assert landing and settings.input.events_path.startswith(landing[0].split(":")[1])


def test_the_image_is_built_from_files_that_exist() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)  # a mirror, a stand-in
    assert not re.search(r"^#\s*syntax=", dockerfile, re.M)  # no frontend from a registry
    assert "openjdk-17" in dockerfile
    assert "libgomp1" in dockerfile  # LightGBM's OpenMP runtime
    for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert (REPO / source).exists(), f"COPY {source}: no such file"
    assert "recsys setup-jars --object-store" in dockerfile  # runs offline: jars at build
    # The Airflow state volume starts owned by the service user.
    assert '"$AIRFLOW_HOME/state"' in dockerfile and "chown -R recsys" in dockerfile
    entrypoint = DOCKER / "entrypoint.sh"
    assert subprocess.run(["bash", "-n", str(entrypoint)]).returncode == 0


def test_the_entrypoint_passes_every_setting_to_the_command() -> None:
    """A Spark setting's override has a dot in its name: the entry point (and the image's
    recsys and airflow, which run through it) must hand it on."""
    setting = {"RECSYS__SPARK__CONF__spark.cores.max": "2", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(DOCKER / "entrypoint.sh"), "env"], env=setting, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "RECSYS__SPARK__CONF__spark.cores.max=2" in done.stdout.splitlines()


def test_one_service_builds_the_image_the_others_never_pull_it(compose) -> None:
    services = compose["services"]
    builders = [name for name, s in services.items() if "build" in s]
    assert builders == ["spark-master"]
    image = services["spark-master"]["image"]
    users = [name for name, s in services.items() if s.get("image") == image]
    assert len(users) >= 7
    for name in users:
        if name != "spark-master":
            assert services[name]["pull_policy"] == "never", name
            assert "spark-master" in _needs(services, name), name  # started after the build
    args = services["spark-master"]["build"]["args"]
    assert set(args) == {"BASE_IMAGE", "EXTRA_CA_CERTIFICATES"}
    for name in ("postgres", "object-store"):  # image variables, official by default
        assert re.fullmatch(r"\$\{[A-Z_]+_IMAGE:-[^}]+\}", services[name]["image"]), name


def _needs(services: dict[str, Any], name: str) -> set[str]:
    """The services ``name`` waits for, directly or through others."""
    direct = set(services[name].get("depends_on", {}))
    return direct.union(*(_needs(services, other) for other in direct))


def test_each_service_gets_only_the_secrets_it_reads(compose) -> None:
    secrets = {name: set(s.get("secrets", [])) for name, s in compose["services"].items()}
    airflow = {"postgres_password", "airflow_jwt_secret", "airflow_fernet_key",
               "airflow_api_secret"}  # fmt: skip
    s3 = {"s3_access_key", "s3_secret_key"}
    assert secrets == {
        "postgres": {"postgres_password"},
        "object-store": s3,
        "buckets": s3,
        "spark-master": set(),
        "spark-worker": s3 | {"pseudonym_key"},  # the executors hash ids, read and write S3
        "mlflow": s3 | {"postgres_password"},
        "airflow-init": airflow,
        "airflow-api-server": airflow,
        "airflow-scheduler": airflow | s3 | {"pseudonym_key"},  # the tasks are the drivers
        "airflow-dag-processor": airflow,
    }
    for name, service in compose["services"].items():  # every *_FILE names a secret it has
        environment = service.get("environment", {})
        for variable, value in environment.items():
            if variable.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in secrets[name], (name, variable)
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        environment = compose["services"][name]["environment"]
        # One [api] secret_key for all: the API server reads the task logs the tasks write.
        assert environment["AIRFLOW__API__SECRET_KEY_FILE"] == "/run/secrets/airflow_api_secret"


def test_no_secret_or_working_state_enters_git_or_the_build_context() -> None:
    for path in ("docker/secrets/postgres_password", "docker/recsys.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert ignored.returncode == 0, f"{path} is not ignored by git"
    rules = [
        line for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]  # fmt: skip
    assert rules[0] == "**"  # nothing but what is let in below
    allowed = {r.removeprefix("!").rstrip("/") for r in rules if r.startswith("!")}
    dockerfile = (DOCKER / "Dockerfile").read_text()
    copied = {s.rstrip("/") for c in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M)
              for s in c.split()}  # fmt: skip
    assert copied <= allowed
    for state in (".venv", ".cache", "warehouse", "mlflow", "docker/secrets", "docker"):
        assert state not in allowed


def test_the_docs_say_what_a_new_user_needs() -> None:
    docs = (REPO / "docs" / "deployment.md").read_text()
    assert "Compose v2" in docs and "docker-compose` 1.29" in docs
    assert "`user:role`" in docs and "passwords.json" in docs
    assert "python -c" not in docs  # the Fernet key needs no Python package on the host
    assert "chmod 600" not in docs  # unreadable to the services' users
    assert "Unpausing also schedules the latest complete day" in docs
