"""The notifier: one way for the pipeline to tell someone that a night needs attention.

Every alert is a log line (logger ``recsys.alert``, level ERROR or WARNING); with
``alerts.webhook_url`` (or its environment variable) it is also POSTed as JSON, and with
``alerts.smtp_host`` and ``alerts.email_to`` e-mailed. A delivery that fails is logged and
never fails the stage that raised the alert.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage

from recsys_lib.config import AlertSettings, Settings

log = logging.getLogger("recsys.alert")

# What an alert is about.
TASK_FAILED = "task_failed"
QUALITY_CHECK_FAILED = "quality_check_failed"
CHAMPION_NOT_PROMOTED = "champion_not_promoted"
KINDS = (TASK_FAILED, QUALITY_CHECK_FAILED, CHAMPION_NOT_PROMOTED)
_WARNINGS = (CHAMPION_NOT_PROMOTED,)  # the night still serves; the rest stopped something


@dataclass(frozen=True)
class Alert:
    """One alert: its kind, a one-line summary, the day it concerns and details."""

    kind: str
    summary: str
    run_date: str = ""
    env: str = ""
    details: Mapping[str, str] = field(default_factory=dict)
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def line(self) -> str:
        day = f" {self.run_date}" if self.run_date else ""
        return f"recsys alert [{self.kind}]{day}: {self.summary}"


def webhook_url(alerts: AlertSettings) -> str:
    return alerts.webhook_url or os.environ.get(alerts.webhook_url_env, "")


def _post(url: str, alert: Alert, timeout: float) -> None:
    body = json.dumps(asdict(alert), default=str).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured
        response.read()


def _mail(alerts: AlertSettings, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"] = alert.line()
    message["From"] = alerts.email_from
    message["To"] = ", ".join(alerts.email_to)
    details = "\n".join(f"{k}: {v}" for k, v in alert.details.items())
    message.set_content(f"{alert.summary}\n\n{details}\n\nenv: {alert.env}\nat: {alert.at}\n")
    with smtplib.SMTP(alerts.smtp_host, alerts.smtp_port, timeout=alerts.timeout_seconds) as smtp:
        if alerts.smtp_starttls:
            smtp.starttls()
        if alerts.smtp_user:
            smtp.login(alerts.smtp_user, os.environ.get(alerts.smtp_password_env, ""))
        smtp.send_message(message)


def notify(
    settings: Settings,
    kind: str,
    summary: str,
    run_date: dt.date | str | None = None,
    **details: object,
) -> Alert:
    """Report ``summary`` as an alert of ``kind`` (one of :data:`KINDS`): always to the log,
    and to the configured webhook and e-mail. Returns the alert."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; kinds: {', '.join(KINDS)}")
    alert = Alert(
        kind,
        summary,
        str(run_date or ""),
        settings.env,
        {k: str(v) for k, v in details.items()},
    )
    log.log(logging.WARNING if kind in _WARNINGS else logging.ERROR, alert.line())
    alerts = settings.alerts
    url = webhook_url(alerts)
    if url:
        try:
            _post(url, alert, alerts.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - an alert never fails the night
            log.error("recsys alert: the webhook did not take %s: %s", kind, exc)
    if alerts.smtp_host and alerts.email_to:
        try:
            _mail(alerts, alert)
        except Exception as exc:  # noqa: BLE001
            log.error("recsys alert: e-mail to %s failed: %s", ",".join(alerts.email_to), exc)
    return alert
