"""The profile defects of issue 15, each shown on a fake that behaves as the ERP does:
an Odoo invoice cancelled while unpaid, ERPNext lines of a paid invoice, ERPNext's
140-character Data fields, ERPNext quotations, NAV credit memos."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from crm_bridge.adapters.rest import RestAdapter

from crm_bridge import mapping

from . import fake_erps


def _rows(adapter: Any, table: str, since: dt.datetime | None = None) -> list[dict[str, Any]]:
    pages = adapter.extract(table, since) if since else adapter.extract(table)
    return [r for page in pages for r in page]


# -- Odoo --------------------------------------------------------------------------
@pytest.fixture
def odoo() -> Iterator[fake_erps.Odoo]:
    erp = fake_erps.Odoo()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        yield erp


def _odoo_adapter(erp: fake_erps.Odoo) -> RestAdapter:
    settings = {"url": erp.base, "api_key": erp.api_key, "database": erp.database}
    return RestAdapter(mapping.load("odoo"), settings)


def test_odoo_a_cancelled_unpaid_invoice_is_cancelled_not_posted(odoo: fake_erps.Odoo) -> None:
    # Odoo keeps payment_state "not_paid" on a cancelled move; only state says "cancel"
    odoo.models["account.move"][2].update(state="cancel", payment_state="not_paid")
    states = {r["invoice_id"]: r["state"] for r in _rows(_odoo_adapter(odoo), "invoices")}
    assert states == {"1": "paid", "2": "cancelled", "3": "paid", "4": "posted"}
    # and its lines are no longer read (the line domain follows move_id.state)
    lines = _rows(_odoo_adapter(odoo), "invoice_lines")
    assert {r["invoice_id"] for r in lines} == {"1", "3", "4"}


def test_odoo_the_fake_refuses_a_filter_on_a_field_it_does_not_hold(
    odoo: fake_erps.Odoo,
) -> None:
    import json

    import requests

    answer = requests.post(
        f"{odoo.base}/json/2/account.move.line/search_read",
        headers={"Authorization": f"bearer {odoo.api_key}", "X-Odoo-Database": odoo.database},
        json={"domain": [["move_id.no_such_field", "=", 1]], "fields": ["id"]},
        timeout=5,
    )
    assert answer.status_code == 422
    assert "no_such_field" in json.loads(answer.text)["message"]
    answer = requests.post(
        f"{odoo.base}/json/2/account.move/search_read",
        headers={"Authorization": f"bearer {odoo.api_key}", "X-Odoo-Database": odoo.database},
        json={"domain": [["no_such_field", "=", 1]], "fields": ["id"]},
        timeout=5,
    )
    assert answer.status_code == 422


def test_odoo_lines_follow_their_move_through_the_dotted_filter(odoo: fake_erps.Odoo) -> None:
    """The incremental line read asks for move_id.write_date: only the lines of the
    move written since come back (the fake follows the many2one, no flat copy)."""
    odoo.models["account.move"][3]["write_date"] = "2024-04-10 09:00:00"
    since = dt.datetime(2024, 4, 1)
    lines = _rows(_odoo_adapter(odoo), "invoice_lines", since)
    assert sorted(r["invoice_id"] for r in lines) == ["3", "3"]
