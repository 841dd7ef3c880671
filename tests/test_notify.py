"""The notify plugin: a failed or partial run sends one mail to a real SMTP server
(aiosmtpd on loopback) and one webhook to a real HTTP receiver, secrets redacted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from crm_bridge.adapters.tryton.sandbox import free_port

from crm_bridge import hookimpl
from crm_bridge.errors import ErpError
from crm_bridge.sync import sync

from .test_pipeline import Crashing, setup

SECRET = "s3cret-erp-password-42"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@contextmanager
def http_receiver(status: int = 200) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)}
            )
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def notify_table(smtp_port: int, http_port: int) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "mail_from": "crm-bridge@example.com",
        "mail_to": ["it@example.com", "ops@example.com"],
        "webhook_url": f"http://127.0.0.1:{http_port}/hooks/T000/{SECRET}",
    }


class Unreachable:
    """An ERP that fails the run with a message holding the secret."""

    @hookimpl
    def register_adapters(self, register: Any) -> None:
        from crm_bridge import AdapterSpec

        def factory(settings: Any) -> Any:
            raise ErpError(f"cannot log in with password {SECRET}")

        register(AdapterSpec("down", factory, {"type": "object"}, "an ERP that is down"))


def test_a_failed_run_sends_one_mail_and_one_webhook_secrets_redacted(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path, (Unreachable(), "down"))
    with smtp_server() as (smtp_port, inbox), http_receiver() as (http_port, received):
        cfg.data["erp"] = {"adapter": "down", "password": SECRET}
        cfg.secrets.add(SECRET)
        cfg.data["notify"] = notify_table(smtp_port, http_port)
        with pytest.raises(ErpError):
            sync(cfg, plugins)
    assert len(inbox.mails) == 1 and len(received) == 1
    rcpt, mail = inbox.mails[0]
    assert rcpt == ["it@example.com", "ops@example.com"]
    assert mail["Subject"].startswith("[crm-bridge] run") and "failed" in mail["Subject"]
    body = mail.get_payload()
    assert "failed" in body and "cannot log in with password ***" in body
    hook = received[0]
    assert hook["type"] == "application/json"
    assert hook["body"]["run"]["status"] == "failed"
    assert "cannot log in with password ***" in hook["body"]["text"]
    everything = body + json.dumps(hook["body"]) + str(mail)
    assert SECRET not in everything


def test_a_partial_run_alerts_an_ok_run_and_a_dry_run_do_not(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path, (Crashing(), "crashing"))
    with smtp_server() as (smtp_port, inbox), http_receiver() as (http_port, received):
        cfg.data["notify"] = notify_table(smtp_port, http_port)
        sync(cfg, plugins, dry_run=True)
        assert inbox.mails == [] and received == []
        result = sync(cfg, plugins)
        assert result.status == "partial"
        assert len(inbox.mails) == 1 and len(received) == 1
        text = received[0]["body"]["text"]
        assert f"run {result.run_id}" in text
        assert "plugin crashing rejected: raised ZeroDivisionError: division by zero" in text
        assert f"crm-bridge runs show {result.run_id}" in inbox.mails[0][1].get_payload()
        cfg.data["notify"]["on"] = ["failed"]  # partial runs no longer alert
        sync(cfg, plugins)
        assert len(inbox.mails) == 1 and len(received) == 1


def test_an_alert_that_cannot_be_sent_is_a_warning_without_the_url(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path, (Crashing(), "crashing"))
    with http_receiver(status=500) as (http_port, received):
        cfg.data["notify"] = {"webhook_url": f"http://127.0.0.1:{http_port}/x/{SECRET}"}
        with pytest.warns(Warning) as caught:
            result = sync(cfg, plugins)
    assert result.status == "partial" and len(received) == 1
    (warning,) = [w for w in caught if "notify" in str(w.message)]
    assert "HTTP 500" in str(warning.message) and SECRET not in str(warning.message)
