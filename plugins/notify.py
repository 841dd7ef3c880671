"""Alerts when a run fails or is partial: a mail (SMTP) and/or a webhook.

A built-in plugin on the ``after_sync`` hook, configured by the ``[notify]``
table (schemas/config.schema.json)::

    [notify]
    on = ["failed", "partial"]                 # the default
    webhook_url = "${CRM_BRIDGE_WEBHOOK}"      # Slack, Teams, Mattermost...
    smtp_host = "mail.example.com"
    smtp_port = 587
    smtp_starttls = true
    smtp_username = "crm-bridge"
    smtp_password = "${CRM_BRIDGE_SMTP_PASSWORD}"
    mail_from = "crm-bridge@example.com"
    mail_to = ["it@example.com"]

The webhook receives ``{"text": summary, "run": {...}}`` as JSON: incoming
webhooks that read ``text`` show the summary.  Every secret of the config is
redacted from what is sent.  Dry runs never alert.  An alert that cannot be
sent is a warning: it never changes the run's outcome.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import warnings
from email.message import EmailMessage
from typing import Any

import requests

from crm_bridge import hookimpl
from crm_bridge.config import Config
from crm_bridge.errors import CrmBridgeWarning
from crm_bridge.sync import RunResult

DEFAULT_ON = ("failed", "partial")


def summary(result: RunResult, config: Config) -> tuple[str, dict[str, Any]]:
    """(one-paragraph text, a JSON-able digest) of the run, secrets redacted."""
    counts = result.counts
    run = f"run {result.run_id}" if result.run_id is not None else "a run"
    lines = [f"crm-bridge {run} on {socket.gethostname()}: {result.status}"]
    if result.error:
        lines.append(f"error: {result.error}")
    read = counts.get("read", {})
    if read:
        lines.append(
            f"read {read.get('customers', 0)} customers, {read.get('invoices', 0)} invoices; "
            f"planned {counts.get('planned_cells', 0)} cells on "
            f"{counts.get('planned_customers', 0)} customers; "
            f"written {counts.get('written', 0)} customers"
        )
    for r in result.rejections:
        lines.append(f"plugin {r.plugin} rejected: {r.reason}")
    refused = result.applied.rejected if result.applied else {}
    if refused:
        cid, reason = next(iter(refused.items()))
        lines.append(f"{len(refused)} customer(s) refused by the ERP, e.g. {cid}: {reason}")
    quarantined = sum(
        info.get("count", 0)
        for reasons in counts.get("quarantined", {}).values()
        for info in reasons.values()
    )
    if quarantined:
        lines.append(f"{quarantined} ERP record(s) set aside as implausible")
    if counts.get("unprovisioned"):
        lines.append(
            "fields not provisioned, left out: " + ", ".join(sorted(counts["unprovisioned"]))
        )
    if result.run_id is not None:
        lines.append(f"details: crm-bridge runs show {result.run_id}")
    text = config.redact("\n".join(lines))
    digest = {
        "run_id": result.run_id,
        "status": result.status,
        "error": result.error,
        "host": socket.gethostname(),
        "rejected_plugins": [r.as_dict() for r in result.rejections],
        "rejected_records": len(refused),
        "quarantined": quarantined,
        "written": counts.get("written", 0),
        "seconds": counts.get("seconds"),
    }
    return text, _redacted(digest, config)


def _redacted(value: Any, config: Config) -> Any:
    if isinstance(value, str):
        return config.redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v, config) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, config) for v in value]
    return value


def send_mail(settings: dict[str, Any], subject: str, text: str) -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings["mail_from"]
    message["To"] = ", ".join(settings["mail_to"])
    message.set_content(text)
    host, port = settings["smtp_host"], int(settings.get("smtp_port", 25))
    smtp_class = smtplib.SMTP_SSL if settings.get("smtp_ssl") else smtplib.SMTP
    with smtp_class(host, port, timeout=30) as smtp:
        if settings.get("smtp_starttls"):
            smtp.starttls(context=ssl.create_default_context())
        if settings.get("smtp_username"):
            smtp.login(settings["smtp_username"], settings.get("smtp_password", ""))
        smtp.send_message(message)


def post_webhook(settings: dict[str, Any], text: str, digest: dict[str, Any]) -> None:
    response = requests.post(
        settings["webhook_url"],
        json={"text": text, "run": digest},
        timeout=float(settings.get("webhook_timeout", 10)),
    )
    response.raise_for_status()


def _warn(what: str, exc: BaseException, config: Config) -> None:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.RequestException):
        detail = type(exc).__name__  # its text holds the URL, a secret
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status:
            detail += f" (HTTP {status})"
    warnings.warn(
        f"notify: the {what} could not be sent: {config.redact(detail)}",
        CrmBridgeWarning,
        stacklevel=2,
    )


@hookimpl
def after_sync(result: RunResult, config: Config) -> None:
    settings = config.notify
    if result.dry_run or not settings:
        return
    if result.status not in settings.get("on", DEFAULT_ON):
        return
    text, digest = summary(result, config)
    subject = config.redact(
        f"{settings.get('subject_prefix', '[crm-bridge]')} run "
        f"{result.run_id if result.run_id is not None else ''} {result.status}".replace("  ", " ")
    )
    if settings.get("smtp_host"):
        try:
            send_mail(settings, subject, text)
        except (OSError, smtplib.SMTPException) as exc:
            _warn(f"mail to {settings['smtp_host']}", exc, config)
    if settings.get("webhook_url"):
        try:
            post_webhook(settings, text, digest)
        except requests.RequestException as exc:
            _warn("webhook (notify.webhook_url)", exc, config)
