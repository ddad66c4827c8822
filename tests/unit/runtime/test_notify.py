"""The notifier: a log line always, and a webhook and e-mail by configuration, each tested
against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from recsys_lib.runtime.notify import (
    CHAMPION_NOT_PROMOTED,
    QUALITY_CHECK_FAILED,
    TASK_FAILED,
    notify,
)
from tests.conftest import make_settings


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP receiver: its URL and the JSON bodies it was sent."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/recsys", received
    server.shutdown()
    server.server_close()


@pytest.fixture()
def smtp() -> Iterator[tuple[int, list[bytes]]]:
    """A minimal SMTP receiver (enough of RFC 5321 for smtplib): its port and the messages."""
    messages: list[bytes] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 test ESMTP\r\n")
            while line := self.rfile.readline():
                command = line.strip().upper()
                if command.startswith((b"EHLO", b"HELO")):
                    self.wfile.write(b"250 test\r\n")
                elif command == b"DATA":
                    self.wfile.write(b"354 go on\r\n")
                    body = b""
                    while (part := self.rfile.readline()) not in (b".\r\n", b""):
                        body += part
                    messages.append(body)
                    self.wfile.write(b"250 queued\r\n")
                elif command == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:  # MAIL FROM, RCPT TO, RSET, NOOP
                    self.wfile.write(b"250 ok\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], messages
    server.shutdown()
    server.server_close()


def test_an_alert_is_always_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path)
    with caplog.at_level(logging.WARNING, logger="recsys.alert"):
        alert = notify(
            settings, TASK_FAILED, "recsys_nightly.ingest failed: no input", "2026-10-14"
        )
        notify(settings, CHAMPION_NOT_PROMOTED, "kept recsys-ranker/3")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            logging.ERROR,
            "recsys alert [task_failed] 2026-10-14: recsys_nightly.ingest failed: no input",
        ),
        (logging.WARNING, "recsys alert [champion_not_promoted]: kept recsys-ranker/3"),
    ]
    assert alert.env == "local"
    with pytest.raises(ValueError, match="unknown alert kind"):
        notify(settings, "disk_full", "no")


def test_the_webhook_and_the_mail_get_the_alert(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]], smtp: tuple[int, list[bytes]]
) -> None:
    url, posted = webhook
    port, mails = smtp
    settings = make_settings(
        tmp_path,
        alerts__webhook_url=url,
        alerts__smtp_host="127.0.0.1",
        alerts__smtp_port=str(port),
        alerts__email_to="oncall@shop.example,data@shop.example",
    )
    notify(
        settings,
        QUALITY_CHECK_FAILED,
        "features.user_portrait not published",
        "2026-10-14",
        tables="features.user_portrait",
    )
    assert len(posted) == 1
    body = posted[0]
    assert body["kind"] == QUALITY_CHECK_FAILED and body["run_date"] == "2026-10-14"
    assert body["summary"] == "features.user_portrait not published"
    assert body["details"] == {"tables": "features.user_portrait"} and body["env"] == "local"
    assert len(mails) == 1
    mail = message_from_bytes(mails[0], policy=policy.default)
    assert mail["To"] == "oncall@shop.example, data@shop.example"
    assert mail["Subject"] == (
        "recsys alert [quality_check_failed] 2026-10-14: features.user_portrait not published"
    )
    assert "tables: features.user_portrait" in mail.get_content()


def test_the_webhook_url_may_come_from_the_environment_and_a_dead_receiver_only_logs(
    tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, posted = webhook
    monkeypatch.setenv("RECSYS_ALERT_WEBHOOK_URL", url)
    notify(make_settings(tmp_path), TASK_FAILED, "from the environment")
    assert [b["summary"] for b in posted] == ["from the environment"]

    monkeypatch.setenv("RECSYS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/nobody")
    with caplog.at_level(logging.ERROR, logger="recsys.alert"):
        notify(make_settings(tmp_path), TASK_FAILED, "nobody listens")
    assert any("the webhook did not take task_failed" in r.getMessage() for r in caplog.records)


def test_airflow_s_failure_callback_reports_the_task(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from recsys_lib.runtime import airflow_support

    url, posted = webhook
    settings = make_settings(tmp_path, alerts__webhook_url=url)
    monkeypatch.setattr(airflow_support, "load_settings", lambda: settings)
    task = SimpleNamespace(task_id="ingest", dag_id="recsys_nightly", try_number=3, log_url="u")
    error = RuntimeError("ingest 2026-10-14: no input for 2026-10-14: expected 2026-10-14.csv")
    airflow_support.report_failure({"task_instance": task, "ds": "2026-10-14", "exception": error})
    assert posted[0]["kind"] == TASK_FAILED
    assert posted[0]["summary"] == f"recsys_nightly.ingest failed: {error}"
    assert posted[0]["details"]["try_number"] == "3"
