"""The adapter conformance suite against the real Tryton server."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import pytest
from crm_bridge.adapters.tryton.adapter import TrytonAdapter
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD

from crm_bridge.testing import AdapterConformance

from .conftest import Tryton


class TestTryton(AdapterConformance):
    @pytest.fixture(autouse=True)
    def _server(self, tryton: Tryton) -> None:
        self.server = tryton

    def make_adapter(self) -> TrytonAdapter:
        server = self.server.server
        settings = {
            "url": server.url,
            "database": server.database,
            "username": "admin",
            "password": ADMIN_PASSWORD,
        }
        return TrytonAdapter(settings)

    def foreign(self, customer_id: str) -> dict[str, Any]:
        fields = ["name", "code", "active", "categories"]
        (row,) = self.server.rpc("model.party.party.read", [int(customer_id)], fields)
        return row

    def raw_values(self) -> dict[str, dict[str, Any]]:
        rows = self.server.rpc("model.party.party.search_read", [], 0, None, None, ["crm"])
        return {str(r["id"]): dict(r["crm"] or {}) for r in rows}

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        """The record's write_date set in the database (Tryton keeps UTC); a line's
        own only, as a write on account.invoice.line leaves its invoice's."""
        sql_table = {
            "customers": "party_party",
            "invoices": "account_invoice",
            "invoice_lines": "account_invoice_line",
        }[table]
        stamp = at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        with sqlite3.connect(self.server.directory / "test.sqlite") as db:
            db.execute(
                f"UPDATE {sql_table} SET write_date = ? WHERE id = ?", (stamp, int(record_id))
            )
