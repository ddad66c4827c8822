"""Logging set-up for the command line and the jobs."""

from __future__ import annotations

import logging


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    for noisy in ("py4j", "alembic", "mlflow", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def one_line(exc: BaseException) -> str:
    """The message of an exception on one line: for an error raised in the JVM, the Java
    exception's own message rather than Py4J's wrapper and the stack trace."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("An error occurred while calling") and len(lines) > 1:
        cause = lines[1].removeprefix(": ")
        return cause.split(". SQLSTATE")[0].split("  SQLSTATE")[0]
    return lines[0] if len(lines[0]) > 20 or len(lines) == 1 else " ".join(lines[:2])
