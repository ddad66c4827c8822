import json
from pathlib import Path

from recsys_lib.config import load_settings
from recsys_lib.runtime.airflow_support import spark_connection
from recsys_lib.runtime.spark import session_conf, submit_properties
from tests.conftest import REPO, TEST_KEY, make_settings


def test_spark_connection_carries_the_configured_master(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, SPARK__MASTER="spark://127.0.0.1:7077")
    assert json.loads(spark_connection(settings)) == {
        "conn_type": "spark",
        "host": "spark://127.0.0.1:7077",
    }


def test_submit_properties_ship_delta_and_the_interpreter(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    properties = submit_properties(settings)
    jars = properties["spark.jars"].split(",")
    assert any("delta-spark_4.2_2.13" in j for j in jars)
    assert not any("hadoop-client" in j or "jackson-core" in j for j in jars)  # Spark has them
    assert properties["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert properties["spark.pyspark.python"].endswith("python")
    java_options = properties["spark.driver.extraJavaOptions"]
    assert java_options.startswith(settings.spark.submit_java_options)
    # C1-only mode shrinks the JIT code cache to 48 MB, which the demo shop fills.
    assert "-XX:TieredStopAtLevel=1" in java_options
    assert "-XX:ReservedCodeCacheSize=240m" in java_options
    # A short-lived JVM compiles early and collects with the parallel collector (local.yaml).
    assert "-XX:+UseParallelGC" in java_options
    assert properties["spark.sql.warehouse.dir"].startswith(str(tmp_path))
    # Delta rebuilds the small tables' state in one task (local.yaml), not one a partition.
    assert properties["spark.databricks.delta.snapshotPartitions"] == "1"
    assert properties["spark.sql.shuffle.partitions"] == "2"


def test_outside_local_delta_state_takes_the_shuffle_partitions(tmp_path: Path) -> None:
    settings = load_settings(
        "base",
        conf_dir=REPO / "conf",
        home=tmp_path,
        environ={"RECSYS__SPARK__SHUFFLE_PARTITIONS": "64", "RECSYS_PSEUDONYM_KEY": TEST_KEY},
    )
    conf = session_conf(settings, with_jars=False)
    assert conf["spark.databricks.delta.snapshotPartitions"] == "64"


def test_the_class_archive_is_used_once_built(tmp_path: Path) -> None:
    archive = tmp_path / "jvm" / "recsys.jsa"
    settings = make_settings(tmp_path, PATHS__JVM_ARCHIVE=str(archive))
    assert "SharedArchiveFile" not in submit_properties(settings)["spark.driver.extraJavaOptions"]
    archive.parent.mkdir()
    archive.write_bytes(b"")
    options = submit_properties(settings)["spark.driver.extraJavaOptions"].split()
    assert options[-1] == f"-XX:SharedArchiveFile={archive}"
    assert options[:-1] == settings.spark.submit_java_options.split()
    building = submit_properties(settings, archive=False)["spark.driver.extraJavaOptions"]
    assert "SharedArchiveFile" not in building
