"""SparkSession factory with Delta Lake, using jars from the project's local Ivy cache.

``make setup`` calls :func:`resolve_jars` once (it needs Maven Central); afterwards every
session, ``spark-submit`` and test run uses the cached jars and needs no network. The same
code serves ``local[*]`` and a ``spark://`` (or YARN/Kubernetes) master: the jars are
shipped to executors with ``spark.jars``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_lib.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class MissingJarsError(RuntimeError):
    """The Delta Lake jars have not been resolved into the local cache."""


def _artifact_name(jar_file: str, *, ivy: bool) -> str:
    """``org.foo_bar-baz-1.2.3.jar`` (Ivy) or ``bar-baz-1.2.3.jar`` (Spark) -> ``bar-baz``."""
    stem = jar_file.removesuffix(".jar")
    if ivy:
        stem = stem.split("_", 1)[1]
    return re.sub(r"-\d[^-]*(-\d+)?$", "", stem)


def _spark_provided_artifacts() -> set[str]:
    import pyspark

    # Under spark-submit, pyspark is imported from a zip inside SPARK_HOME; SPARK_HOME is set.
    spark_home = os.environ.get("SPARK_HOME") or str(Path(pyspark.__file__).parent)
    jars_dir = Path(spark_home) / "jars"
    return {_artifact_name(p.name, ivy=False) for p in jars_dir.glob("*.jar")}


def _cache_jars(cache: str, packages: tuple[str, ...]) -> list[str]:
    jars_dir = Path(cache) / "jars"
    provided = _spark_provided_artifacts()
    jars = sorted(
        str(p) for p in jars_dir.glob("*.jar") if _artifact_name(p.name, ivy=True) not in provided
    )
    if not jars:
        raise MissingJarsError(
            f"no jars in {jars_dir}; run `make setup` once (it resolves "
            f"{', '.join(packages)} from Maven Central)"
        )
    return jars


def cached_jars(settings: Settings) -> list[str]:
    """Jars from the local Ivy caches that Spark does not already ship; raises if not
    resolved: Delta Lake's, and the object store's when a path is ``s3a://``.

    Ivy also brings Delta's transitive dependencies that Spark itself provides (Hadoop,
    Parquet, Jackson, log4j) in older versions; those are left out to keep one copy of each.
    """
    jars = _cache_jars(settings.jars_cache, settings.spark.packages)
    if settings.uses_object_store:
        jars += _cache_jars(settings.object_store_jars_cache, settings.spark.object_store_packages)
    return jars


def session_conf(settings: Settings, *, with_jars: bool = True) -> dict[str, str]:
    """Spark configuration for a recsys session; also used for ``spark-submit --conf``."""
    conf = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # Delta rebuilds table state from its log with this many tasks (default 50): on a
        # small machine that overhead dominated every write (27 s -> 2 s per overwrite).
        "spark.databricks.delta.snapshotPartitions": str(settings.spark.shuffle_partitions),
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.executor.memory": settings.spark.executor_memory,
        "spark.executor.cores": str(settings.spark.executor_cores),
        # The session catalog's own folder (schemas, managed tables; recsys has none of the
        # latter): local scratch, so that registering names never writes into the warehouse.
        "spark.sql.warehouse.dir": str(settings.home / ".cache" / "spark" / "catalog"),
        "spark.ui.showConsoleProgress": "false",
        # Executors run the same interpreter (and so the installed recsys_lib) as the driver.
        "spark.pyspark.python": sys.executable,
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "static",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if with_jars:
        conf["spark.jars"] = ",".join(cached_jars(settings))
    archive = class_archive(settings)
    if archive is not None:
        conf["spark.driver.extraJavaOptions"] = f"-XX:SharedArchiveFile={archive}"
    conf.update({k: str(v) for k, v in settings.spark.conf.items()})
    return conf


def class_archive(settings: Settings) -> Path | None:
    """The driver JVM's class-data archive (``paths.jvm_archive``) if ``make setup`` built it.

    A JVM that maps it loads Spark's and Delta's classes already parsed and verified: a
    ``spark-submit`` starts about 3 s sooner on this project's machine. A JVM whose version
    does not match the archive says so in one warning line and starts without it.
    """
    if not settings.paths.jvm_archive:
        return None
    archive = Path(settings.resolve(settings.paths.jvm_archive))
    return archive if archive.is_file() else None


def build_class_archive(settings: Settings) -> Path:
    """Run :mod:`recsys_lib.runtime.jvm_warmup` as a ``spark-submit`` and keep the classes its
    driver JVM loaded in ``paths.jvm_archive`` (a dynamic CDS archive); returns its path."""
    import subprocess
    import tempfile

    from recsys_lib.runtime import jvm_warmup

    if not settings.paths.jvm_archive:
        raise ValueError("paths.jvm_archive is empty: no class archive is wanted")
    target = Path(settings.resolve(settings.paths.jvm_archive))
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    building.unlink(missing_ok=True)
    properties = submit_properties(settings, archive=False)
    dump = f"-XX:ArchiveClassesAtExit={building}"
    java_options = properties.get("spark.driver.extraJavaOptions", "")
    properties["spark.driver.extraJavaOptions"] = f"{java_options} {dump}".strip()
    spark_submit = Path(sys.executable).parent / "spark-submit"
    with tempfile.TemporaryDirectory() as tmp:
        props = Path(tmp) / "warmup.properties"
        props.write_text("".join(f"{k} {v}\n" for k, v in sorted(properties.items())))
        # spark-submit finds its Spark home through the interpreter on PATH.
        env = {**os.environ, "PATH": f"{spark_submit.parent}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run(
            [
                str(spark_submit),
                "--master",
                "local[2]",
                "--properties-file",
                str(props),
                jvm_warmup.__file__,
                tmp,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
    if result.returncode != 0 or not building.is_file():
        raise RuntimeError(
            f"the class archive was not built (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    building.replace(target)
    return target


def get_spark(settings: Settings, app_name: str | None = None) -> SparkSession:
    """The session for this process: created once, Delta-enabled, jars from the cache."""
    from pyspark.sql import SparkSession

    # In local mode PySpark starts workers with $PYSPARK_PYTHON (default: python3 on PATH),
    # not with spark.pyspark.python; point it at this interpreter and its recsys_lib.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name or settings.spark.app_name)
    builder = builder.master(settings.spark.master)
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    global _max_concurrent_actions
    _max_concurrent_actions = max(1, settings.spark.concurrent_actions)
    return spark


_max_concurrent_actions = 4  # spark.concurrent_actions of the session (get_spark sets it)


def concurrently(
    calls: Sequence[Callable[[], Any]], *, return_exceptions: bool = False
) -> list[Any]:
    """Run independent Spark actions (``calls``) from threads of the driver; their results in
    order. Each thread inherits the caller's job group and local properties.

    On small data a Spark action is mostly scheduling latency, so two to four of them side
    by side finish in little more than the time of one; on large data they share the
    executors as Spark's scheduler decides. Every call runs to its end; then the first
    exception is raised, or, with ``return_exceptions``, exceptions take their place in the
    results.
    """
    from pyspark import SparkContext

    if len(calls) <= 1 or _max_concurrent_actions == 1:
        outcomes: list[Any] = []
        for call in calls:
            try:
                outcomes.append(call())
            except BaseException as exc:  # noqa: BLE001 - re-raised below unless collected
                if not return_exceptions:
                    raise
                outcomes.append(exc)
        return outcomes

    context = SparkContext._active_spark_context
    properties = context._jsc.sc().getLocalProperties().clone() if context else None

    def guarded(call: Callable[[], Any]) -> Any:
        if context is not None:
            context._jsc.sc().setLocalProperties(properties)  # job group, description, pool
        try:
            return call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            return exc

    workers = min(len(calls), _max_concurrent_actions)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recsys-action") as pool:
        results = list(pool.map(guarded, calls))
    if not return_exceptions:
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return results


def resolve_jars(settings: Settings, *, object_store: bool = False) -> list[str]:
    """Download the configured Maven packages into the local cache (needs the network once):
    ``spark.packages``, or with ``object_store`` ``spark.object_store_packages`` into their
    own cache."""
    from pyspark.sql import SparkSession

    if object_store:
        cache, packages = settings.object_store_jars_cache, settings.spark.object_store_packages
        excludes = settings.spark.object_store_excludes
    else:
        cache, packages, excludes = settings.jars_cache, settings.spark.packages, ()
    ivy = Path(cache)
    ivy.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master("local[1]")
        .appName("recsys-resolve-jars")
        .config("spark.jars.packages", ",".join(packages))
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
    )
    if excludes:
        builder = builder.config("spark.jars.excludes", ",".join(excludes))
    builder.getOrCreate().stop()
    jars = _cache_jars(cache, packages)
    log.info("resolved %d jars into %s", len(jars), ivy / "jars")
    return jars


def submit_properties(settings: Settings, *, archive: bool = True) -> dict[str, str]:
    """Properties for ``spark-submit``: jars, memory, the interpreter fixed at launch, and the
    driver JVM's options (``spark.submit_java_options``, then the class archive if built and
    ``archive``)."""
    properties = session_conf(settings)
    properties["spark.pyspark.python"] = sys.executable
    properties["spark.pyspark.driver.python"] = sys.executable
    options = [settings.spark.submit_java_options] if settings.spark.submit_java_options else []
    in_session = properties.pop("spark.driver.extraJavaOptions", "")
    if archive and in_session:
        options.append(in_session)
    if options:
        properties["spark.driver.extraJavaOptions"] = " ".join(options)
    return properties
