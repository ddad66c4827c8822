"""The ``spark-submit`` application that ``recsys setup-jvm`` runs once to build the driver
JVM's class archive: a few small Delta writes and reads, joins, windows and a pandas UDF,
so that the classes every stage needs are loaded (and then archived). Argument: a scratch
directory. Not part of any run."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator

import pandas as pd
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F


def warm_up(spark: SparkSession, scratch: str) -> None:
    path = f"{scratch}/table"
    day = dt.date(2026, 1, 1)
    rows = (
        spark.range(0, 200)
        .withColumn("dt", F.lit(day))
        .withColumn("user_id", F.sha2(F.col("id").cast("string"), 256))
        .withColumn("score", F.rand(1))
    )
    for _ in range(2):
        rows.write.format("delta").mode("overwrite").partitionBy("dt").option(
            "replaceWhere", f"dt = DATE'{day}'"
        ).save(path)
    table = spark.read.format("delta").load(path).filter(F.col("dt") == F.lit(day)).cache()
    ranked = table.withColumn(
        "rank", F.row_number().over(Window.partitionBy("dt").orderBy(F.desc("score")))
    )
    joined = ranked.join(table.groupBy("user_id").agg(F.max("score").alias("best")), "user_id")

    def double(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield batch.assign(score=batch["score"] * 2)

    out = joined.select("user_id", "score").mapInPandas(double, "user_id string, score double")
    out.agg(
        F.count(F.lit(1)), F.countDistinct("user_id"), F.percentile_approx("score", 0.5)
    ).collect()
    spark.createDataFrame(pd.DataFrame({"a": [1, 2]})).toPandas()


def main(argv: list[str]) -> int:
    spark = SparkSession.builder.getOrCreate()
    warm_up(spark, argv[0])
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
