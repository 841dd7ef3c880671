"""The adapter conformance suite against the real Tryton server."""

from __future__ import annotations

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
