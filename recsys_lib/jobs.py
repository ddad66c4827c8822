"""Entry point shared by the ``spark-submit`` applications in ``jobs/``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable

from recsys_lib.config import load_settings
from recsys_lib.pipeline import StageError, check_ready, run_stage, warm_up
from recsys_lib.runtime.logs import configure_logging, one_line
from recsys_lib.runtime.spark import get_spark

log = logging.getLogger(__name__)
VERBOSE_ENV = "RECSYS_VERBOSE"


def main(stage: str, argv: list[str] | None = None) -> int:
    """Parse ``--date`` (and ``--env``), run ``stage`` for that day; 0 on success, 1 on failure."""
    parser = argparse.ArgumentParser(prog=f"jobs/{stage}.py")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--env", default=None, help="configuration environment (conf/ENV.yaml)")
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=bool(os.environ.get(VERBOSE_ENV)),
        help=f"on a failure, log the traceback too (or set {VERBOSE_ENV}=1)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.env)
        check_ready(settings, [stage])
        warm_up(settings, stage)  # MLflow opens while the JVM starts
        spark = get_spark(settings, app_name=f"recsys-{stage}-{args.date}")
        run_stage(spark, settings, stage, args.date)
    except Exception as exc:
        if args.verbose:
            log.exception("stage %s for %s failed", stage, args.date)
        message = one_line(exc)
        if not isinstance(exc, StageError):
            message = f"{stage} {args.date}: {message}"
        print(f"recsys: {message}", file=sys.stderr)
        return 1
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--env", default=None, help="configuration environment (conf/ENV.yaml)")
    return parser


def _run(what: str, day: dt.date, work: Callable[[], object]) -> int:
    """Run ``work``; on a failure print ``recsys: <what> <day>: <problem>`` (the traceback
    too with ``RECSYS_VERBOSE``) and return 1."""
    try:
        work()
    except Exception as exc:
        if os.environ.get(VERBOSE_ENV):
            log.exception("%s for %s failed", what, day)
        print(f"recsys: {what} {day}: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def maintain(argv: list[str] | None = None) -> int:
    """``jobs/maintenance.py --task T --date D``: one task of the ``recsys_maintenance`` DAG."""
    from recsys_lib.stages.maintenance import SPARK_TASKS, TASKS

    parser = _parser("jobs/maintenance.py")
    parser.add_argument("--task", required=True, choices=list(TASKS))
    args = parser.parse_args(argv)
    configure_logging()

    def work() -> None:
        settings = load_settings(args.env)
        spark = None
        if args.task in SPARK_TASKS:
            spark = get_spark(settings, app_name=f"recsys-{args.task}-{args.date}")
        figures = TASKS[args.task](spark, settings, args.date)
        log.info("maintenance %s for %s: %s", args.task, args.date, figures)

    return _run(args.task, args.date, work)


def erase(argv: list[str] | None = None) -> int:
    """``jobs/erase_user.py --ids-file F --date D``: the ``recsys_erase_user`` DAG's task."""
    from pathlib import Path

    from recsys_lib.stages.erase_user import STAGE, erase_users, read_ids
    from recsys_lib.transforms.privacy import require_key

    parser = _parser("jobs/erase_user.py")
    parser.add_argument("--ids-file", required=True, help="raw user ids, one a line")
    args = parser.parse_args(argv)
    configure_logging()

    def work() -> None:
        settings = load_settings(args.env)
        require_key(settings)
        ids = read_ids(Path(args.ids_file))
        spark = get_spark(settings, app_name=f"recsys-{STAGE}-{args.date}")
        erase_users(spark, settings, ids, args.date)

    return _run(STAGE, args.date, work)
