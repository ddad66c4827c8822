"""The ``recsys`` command: generate data, run stages and backfills, query tables, the demo."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from recsys_lib.config import Settings, load_settings
from recsys_lib.constants import HISTORY_STAGES, NIGHTLY_STAGES
from recsys_lib.logs import configure_logging

DEMO_DATA = "data/shop"


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` to ``last``, both included."""
    if last < first:
        raise ValueError(f"empty range: {first} .. {last}")
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.generator import generate_shop

    out = Path(settings.resolve(args.out))
    summary = generate_shop(
        out,
        args.profile,
        scale=args.scale,
        seed=args.seed,
        days=args.days,
        start=args.start,
        category_tree=Path(args.category_tree) if args.category_tree else None,
    )
    print(json.dumps(summary.manifest(), indent=2, default=str))
    return 0


def run_days(
    settings: Settings, stages: Sequence[str], run_dates: Sequence[dt.date]
) -> dict[tuple[dt.date, str], float]:
    """Run ``stages`` for each day in one Spark session; returns seconds per (day, stage)."""
    from recsys_lib.spark import get_spark
    from recsys_lib.stages import run_stage

    spark = get_spark(settings)
    seconds = {}
    for run_date in run_dates:
        for stage in stages:
            seconds[(run_date, stage)] = run_stage(spark, settings, stage, run_date)["seconds"]
    return seconds


def _stages(value: str) -> list[str]:
    from recsys_lib.stages import NIGHTLY, STAGES

    if value in ("all", "nightly"):
        return list(NIGHTLY)
    names = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)} or all")
    return names


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    run_days(settings, _stages(args.stage), [args.date])
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    timings = run_days(settings, _stages(args.stages), days(args.start, args.end))
    print(f"backfilled {len(timings)} stage runs in {sum(timings.values()):.0f}s")
    return 0


def query(settings: Settings, sql: str, limit: int) -> str:
    """Result of Spark SQL over the registered tables, as a text table."""
    from recsys_lib.spark import get_spark
    from recsys_lib.storage import register_tables

    spark = get_spark(settings)
    register_tables(spark, settings)
    frame = spark.sql(sql).limit(limit).toPandas()
    return frame.to_string(index=False, max_colwidth=40) if len(frame) else "(no rows)"


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    print(query(settings, args.sql, args.limit))
    return 0


def cmd_setup_jars(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.spark import resolve_jars

    for jar in resolve_jars(settings):
        print(jar)
    return 0


def cmd_spark_connection(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.airflow_support import spark_connection

    print(spark_connection(settings))
    return 0


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Environment for Airflow commands: project home, DAGs folder, Spark connection."""
    from recsys_lib.airflow_support import spark_connection

    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(settings.home / "airflow_home"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(settings.home / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", spark_connection(settings))
    env["RECSYS_HOME"] = str(settings.home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def airflow_dags_test(settings: Settings, run_date: dt.date) -> None:
    """``airflow dags test recsys_nightly run_date``, logged to a file; raises if it fails."""
    env = airflow_environment(settings)
    env.setdefault("RECSYS_DAG_RETRIES", "0")  # a failure shows now, not after retry delays
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    log_file = Path(env["AIRFLOW_HOME"]) / f"dags_test_{run_date.isoformat()}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        result = subprocess.run(
            [airflow, "dags", "test", "recsys_nightly", run_date.isoformat()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    output = log_file.read_text()
    if result.returncode != 0 or "state=failed" in output or "DagRunState.FAILED" in output:
        tail = "\n".join(output.splitlines()[-40:])
        raise RuntimeError(f"airflow dags test failed (log: {log_file}):\n{tail}")


def cmd_dags_test(args: argparse.Namespace, settings: Settings) -> int:
    airflow_dags_test(settings, args.date)
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.summary import summary

    print(summary(settings, args.date))
    return 0


DEMO_NIGHTS = 3


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate a shop, backfill its history, run three nights in-process and the DAG for its
    last day, summarise."""
    from recsys_lib.generator import generate_shop
    from recsys_lib.summary import summary

    started = time.perf_counter()
    out = Path(settings.resolve(DEMO_DATA))
    shop = generate_shop(out, "default", scale=args.scale, days=args.days, seed=args.seed)
    print(f"[demo] generated {shop.total_rows} event rows, {shop.days} days -> {out}/")
    first, last = shop.first_day, shop.last_day
    # Whole nights for the three days before the last: the Airflow night then has samples
    # of three label days (training, validation, holdout) and trains the first ranker.
    nights = days(last - dt.timedelta(days=DEMO_NIGHTS), last - dt.timedelta(days=1))
    history = days(first, nights[0] - dt.timedelta(days=1))
    print(f"[demo] backfilling {'+'.join(HISTORY_STAGES)} for {history[0]} .. {history[-1]}")
    run_days(settings, HISTORY_STAGES, history)
    print(f"[demo] nightly stages in-process for {nights[0]} .. {nights[-1]}")
    run_days(settings, NIGHTLY_STAGES, nights)
    print(f"[demo] airflow dags test recsys_nightly {last}")
    airflow_dags_test(settings, last)
    print(summary(settings, last))
    print(f"[demo] done in {time.perf_counter() - started:.0f}s")
    return 0


def cmd_docs_tables(args: argparse.Namespace, settings: Settings) -> int:
    from recsys_lib.docs import tables_markdown

    target = settings.home / "docs" / "tables.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(tables_markdown())
    print(f"wrote {target}")
    return 0


def cmd_benchmark(args: argparse.Namespace, settings: Settings) -> int:
    """Run a published benchmark's protocol on our algorithms and print its table."""
    from recsys_lib.movielens import format_report, run_benchmark
    from recsys_lib.spark import get_spark

    spark = get_spark(settings)
    result = run_benchmark(spark, settings, Path(args.data), k=args.k, seed=args.seed)
    print(format_report(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__)
    parser.add_argument("--env", default=None, help="configuration environment (conf/ENV.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a generated shop in RetailRocket's formats")
    p.add_argument("--profile", default="default", help="default | retailrocket")
    p.add_argument("--scale", type=float, default=1.0, help="retailrocket: 1.0 = the real log")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--days", type=int, default=None)
    p.add_argument("--start", type=_date, default=None)
    p.add_argument("--category-tree", default=None, help="category_tree.csv[.gz] to use")
    p.add_argument("--out", default=DEMO_DATA)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run one stage (or all) for one day, without Airflow")
    p.add_argument("stage", help=f"{' | '.join(NIGHTLY_STAGES)} | all")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="run stages for each day of a range in one session")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--stages", default="all", help="comma-separated, or all")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("query", help="Spark SQL over the registered Delta tables")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("dags-test", help="airflow dags test recsys_nightly DATE, project env")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_dags_test)

    p = sub.add_parser("summary", help="tables, sample recommendations, MLflow run, timings")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("demo", help="generate a shop and run the nightly pipeline on it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--days", type=int, default=10, help="days of history to generate")
    p.add_argument("--scale", type=float, default=0.5, help="size of the default shop")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("benchmark", help="a published benchmark's protocol on our algorithms")
    p.add_argument("dataset", choices=["movielens-100k"])
    p.add_argument("--data", required=True, help="folder with u.data[.gz], u.user, u.item ...")
    p.add_argument("--k", type=int, default=10, help="length of the recommendation lists")
    p.add_argument("--seed", type=int, default=42, help="seed of the stratified split")
    p.set_defaults(func=cmd_benchmark)

    sub.add_parser("setup-jars", help="resolve the Delta jars into the local cache").set_defaults(
        func=cmd_setup_jars
    )
    sub.add_parser("docs-tables", help="regenerate docs/tables.md").set_defaults(
        func=cmd_docs_tables
    )
    sub.add_parser(
        "spark-connection", help="AIRFLOW_CONN_SPARK_DEFAULT for the configured master"
    ).set_defaults(func=cmd_spark_connection)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    settings = load_settings(args.env)
    return int(args.func(args, settings))


if __name__ == "__main__":
    raise SystemExit(main())
