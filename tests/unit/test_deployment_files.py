"""docker/ and conf/cluster.yaml hold together: the compose file is valid by the compose
specification's own schema (this machine has a Docker client but no engine to run it), every
name it uses is declared, and the cluster configuration points at its services."""

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
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "openjdk-17" in dockerfile
    for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert (REPO / source).exists(), f"COPY {source}: no such file"
    assert "recsys setup-jars --object-store" in dockerfile  # runs offline: jars at build
    entrypoint = DOCKER / "entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(entrypoint)]).returncode == 0
