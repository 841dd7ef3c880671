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


# -- ERPNext -----------------------------------------------------------------------
ERPNEXT = {"api_key": "apikey", "api_secret": "apisecret"}


@pytest.fixture
def erpnext() -> Iterator[fake_erps.ERPNext]:
    erp = fake_erps.ERPNext()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        yield erp


def _erpnext_adapter(erp: fake_erps.ERPNext) -> RestAdapter:
    return RestAdapter(mapping.load("erpnext"), {"url": erp.base, **ERPNEXT})


def _cli(
    erp: Any, profile: str, settings: dict[str, Any], folder: Any, as_of: str = "2024-04-30"
) -> Any:
    """A ``run(*args)`` that runs the crm-bridge CLI on a config for ``erp``."""
    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from crm_bridge.plugin_manager import load_plugins

    lines = [f'adapter = "{profile}"', f'url = "{erp.base}"']
    lines += [f'{key} = "{value}"' for key, value in settings.items()]
    config = folder / "crm-bridge.toml"
    config.write_text(
        "[erp]\n" + "\n".join(lines) + f'\n[sync]\nas_of = "{as_of}"\n[state]\npath = "s.db"\n'
    )

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], obj=load_plugins())
        assert result.exit_code == 0, result.output
        return result

    return run


def test_erpnext_the_lines_of_a_paid_invoice_stay(
    erpnext: fake_erps.ERPNext, tmp_path: Any
) -> None:
    """A payment moves the invoice's modified, not its items': the incremental run
    re-reads the invoice, replaces its lines as a whole, and must find them again."""
    import json

    import polars as pl

    run = _cli(erpnext, "erpnext", ERPNEXT, tmp_path)
    run("fields", "provision")
    run("sync", "--json")
    cached = pl.read_parquet(tmp_path / "tables" / "invoice_lines.parquet")
    assert cached.height == 8
    erpnext.pay("ACC-SINV-2024-00002")
    second = json.loads(run("sync", "--json").stdout)
    lines = pl.read_parquet(tmp_path / "tables" / "invoice_lines.parquet")
    assert sorted(lines["line_id"]) == sorted(cached["line_id"])
    assert lines.filter(pl.col("invoice_id") == "ACC-SINV-2024-00002")["amount"].to_list() == [40.0]
    invoices = pl.read_parquet(tmp_path / "tables" / "invoices.parquet")
    paid = invoices.filter(pl.col("invoice_id") == "ACC-SINV-2024-00002")
    assert paid["state"].to_list() == ["paid"]
    assert second["counts"]["read"]["invoice_lines"] >= 1  # read since, not in full


def test_erpnext_a_long_text_value_fits_the_provisioned_field(
    erpnext: fake_erps.ERPNext,
) -> None:
    from crm_bridge.adapter import Batch
    from crm_bridge.fields import Field

    reason = "Gold: spend 12m 48,210.00 >= 25,000.00 and 14 invoices >= 10; " * 3
    assert len(reason) > 140  # loyalty_reason reaches this on real customer bases
    field = Field("loyalty_reason", "char", "Loyalty tier reason")
    _erpnext_adapter(erpnext).provision([field])
    result = _erpnext_adapter(erpnext).write([Batch(("CUST-00001",), {"loyalty_reason": reason})])
    assert list(result.written) == ["CUST-00001"], result
    assert erpnext.customer("CUST-00001")["custom_crm_loyalty_reason"] == reason  # type: ignore[index]


def test_erpnext_the_fake_refuses_more_than_140_characters_in_a_data_field(
    erpnext: fake_erps.ERPNext,
) -> None:
    import requests

    erpnext.docs["Custom Field"].append(
        {
            "name": "Customer-custom_x",
            "dt": "Customer",
            "fieldname": "custom_x",
            "fieldtype": "Data",
        }
    )
    erpnext.customer("CUST-00001")["custom_x"] = None  # type: ignore[index]
    answer = requests.put(
        f"{erpnext.base}/api/resource/Customer/CUST-00001",
        headers={"Authorization": erpnext.token},
        json={"custom_x": "x" * 141},
        timeout=5,
    )
    assert answer.status_code == 417 and "CharacterLengthExceeded" in answer.text
    assert erpnext.customer("CUST-00001")["custom_x"] is None  # type: ignore[index]


def test_erpnext_quotes_are_read_from_quotations(erpnext: fake_erps.ERPNext) -> None:
    rows = _rows(_erpnext_adapter(erpnext), "sale_orders")
    states = {r["order_id"]: (r["customer_id"], r["state"]) for r in rows}
    assert states == {
        "SAL-QTN-2024-00001": ("CUST-00003", "quotation"),
        "SAL-QTN-2024-00002": ("CUST-00001", "confirmed"),
        "SAL-QTN-2024-00003": ("CUST-00002", "cancelled"),
    }  # the draft Sales Order SAL-ORD-2024-00001 is not a quote
    lines = _rows(_erpnext_adapter(erpnext), "sale_order_lines")
    assert sorted((r["order_id"], r["customer_id"], r["product_id"]) for r in lines) == [
        ("SAL-QTN-2024-00001", "CUST-00003", "P-C"),
        ("SAL-QTN-2024-00002", "CUST-00001", "P-A"),
        ("SAL-QTN-2024-00003", "CUST-00002", "P-C"),
    ]


def test_erpnext_a_write_moves_the_customers_modified(erpnext: fake_erps.ERPNext) -> None:
    from crm_bridge.adapter import Batch
    from crm_bridge.testing import CONFORMANCE_FIELDS

    _erpnext_adapter(erpnext).provision(CONFORMANCE_FIELDS)
    before = erpnext.customer("CUST-00002")["modified"]  # type: ignore[index]
    _erpnext_adapter(erpnext).write([Batch(("CUST-00002",), {"conf_score": 7})])
    after = erpnext.customer("CUST-00002")["modified"]  # type: ignore[index]
    assert after > before


# -- NAV ---------------------------------------------------------------------------
def test_nav_posted_credit_memos_deduct() -> None:
    """Credit memos are their own pages in NAV; without them revenue is overstated."""
    from crm_bridge.adapters.soap import SoapAdapter

    from . import fake_nav

    nav = fake_nav.Nav()
    settings = {
        "url": fake_nav.BASE,
        "company": fake_nav.COMPANY,
        "username": fake_nav.USER,
        "password": fake_nav.PASSWORD,
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        nav.install(rsps)
        adapter = SoapAdapter(mapping.load("nav"), settings)
        invoices = {r["invoice_id"]: r for r in _rows(adapter, "invoices")}
        lines = _rows(adapter, "invoice_lines")
    memo = invoices["104004"]  # fake_erps.INVOICES 4: Globex, 1 Anvil at 10.00, 2024-03-20
    assert (memo["kind"], memo["state"], memo["customer_id"]) == ("credit_note", "posted", "C00002")
    assert memo["amount"] == -10.0 and str(memo["date"]) == "2024-03-20"
    assert {i: r["kind"] for i, r in invoices.items()} == {
        "103001": "invoice",
        "103002": "invoice",
        "103003": "invoice",
        "104004": "credit_note",
    }
    deducted = [r for r in lines if r["invoice_id"] == "104004"]
    assert [(r["customer_id"], r["quantity"], r["amount"], r["cost"]) for r in deducted] == [
        ("C00002", -1.0, -10.0, -6.0)
    ]
    globex = sum(r["amount"] for r in invoices.values() if r["customer_id"] == "C00002")
    assert globex == 5 * 10.0 + 2 * 40.0 - 10.0


# -- every REST fake: stamps move on writes, a change is exactly one cell, paid lines stay
def _erpnext_case(zone: str = "UTC") -> tuple[Any, str, dict[str, Any], Any, Any, str]:
    """ERPNext's site in ``zone``: its ``modified`` stamps are local time."""
    from zoneinfo import ZoneInfo

    erp = fake_erps.ERPNext(ZoneInfo(zone))

    def edit(field: str, value: Any) -> None:  # a user edits the customer through the API
        status, _, _ = erp.handle(
            "PUT",
            "/api/resource/Customer/CUST-00001",
            {},
            {field: value},
            {"Authorization": erp.token},
        )
        assert status == 200

    def held() -> dict[str, Any]:
        return dict(erp.customer("CUST-00001") or {})

    return erp, "erpnext", ERPNEXT, edit, held, "custom_crm_"


def _odoo_case(kind: type[fake_erps.Odoo]) -> tuple[Any, str, dict[str, Any], Any, Any, str]:
    erp = kind()

    def edit(field: str, value: Any) -> None:
        status, _, _ = erp._write(
            "res.partner", erp.models["res.partner"], {"ids": [1], "vals": {field: value}}
        )
        assert status == 200

    def held() -> dict[str, Any]:
        return dict(erp.models["res.partner"][1])

    if kind is fake_erps.OdooJsonRpc:
        settings = {"database": erp.database, "username": erp.username, "password": erp.password}
        return erp, "odoo_jsonrpc", settings, edit, held, "x_crm_"
    settings = {"api_key": erp.api_key, "database": erp.database}
    return erp, "odoo", settings, edit, held, "x_crm_"


def _dolibarr_case(zone: str) -> tuple[Any, str, dict[str, Any], Any, Any, str]:
    """The golden company in a Dolibarr whose PHP and database run in ``zone``
    (named by /status: not production)."""
    from zoneinfo import ZoneInfo

    from .test_golden_erps import dolibarr_with_the_golden_company

    erp = dolibarr_with_the_golden_company(ZoneInfo(zone), production=False)

    def edit(field: str, value: Any) -> None:  # the card's save: a PUT of the extrafield
        status, _, _ = erp.handle(
            "PUT", "/thirdparties/1", {}, {"array_options": {field: value}}, {"DOLAPIKEY": erp.key}
        )
        assert status == 200

    def held() -> dict[str, Any]:
        party = erp.thirdparties["1"]
        return {**party, **(party["array_options"] or {})}

    return erp, "dolibarr", {"api_key": erp.key}, edit, held, "options_crm_"


def _nav_case() -> tuple[Any, str, dict[str, Any], Any, Any, str]:
    """The golden company in NAV (posted documents; every CRM field published)."""
    from . import fake_nav
    from .test_golden_erps import nav_with_the_golden_company

    erp = nav_with_the_golden_company(dt.UTC)
    row = next(r for r in erp.pages["Customer"] if r["No"] == "C01")

    def edit(field: str, value: Any) -> None:  # a user edits the value on the card
        erp.modify("Customer", row, {field: str(value)})

    def held() -> dict[str, Any]:  # decimals as numbers, as the card shows them
        numeric = {k: float(v) for k, v in row.items() if k.startswith("CRM_kpi_") and v}
        return {**row, **numeric}

    settings = {"company": fake_nav.COMPANY, "username": fake_nav.USER}
    return erp, "nav", {**settings, "password": fake_nav.PASSWORD}, edit, held, "CRM_"


CASES = {
    "erpnext": _erpnext_case,
    "erpnext-Europe/Riga": lambda: _erpnext_case("Europe/Riga"),
    "erpnext-America/New_York": lambda: _erpnext_case("America/New_York"),
    "odoo": lambda: _odoo_case(fake_erps.Odoo),
    "odoo_jsonrpc": lambda: _odoo_case(fake_erps.OdooJsonRpc),
    "dolibarr-UTC": lambda: _dolibarr_case("UTC"),
    "dolibarr-Europe/Riga": lambda: _dolibarr_case("Europe/Riga"),
    "dolibarr-America/New_York": lambda: _dolibarr_case("America/New_York"),
    "nav": _nav_case,
}


def _as_of(name: str) -> str:
    """The analysis date of a case's data: the golden company's, or the small one's."""
    return "2026-06-30" if name.startswith(("dolibarr", "nav")) else "2024-04-30"


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_value_changed_in_the_erp_is_exactly_one_cell(name: str, tmp_path: Any) -> None:
    """Someone edits one of crm-bridge's values on a customer in the ERP (its stamp
    moves): the next incremental run plans that one cell back, and nothing else.
    Two runs before the edit: the second one's watermark is the stamps of the first
    one's writes, seconds before the edit (not the data's older stamps)."""
    import json

    erp, profile, settings, edit, held, prefix = CASES[name]()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        run = _cli(erp, profile, settings, tmp_path, _as_of(name))
        run("fields", "provision")
        run("sync", "--json")
        assert json.loads(run("sync", "--json").stdout)["counts"]["planned_cells"] == 0
        before = held()
        stamps = ("modified", "write_date", "date_modification", "Last_Date_Modified")
        stamp = next(k for k in stamps if k in before)
        field, value = next(
            (k, v)
            for k, v in sorted(before.items())
            if k.startswith(prefix + "kpi_") and isinstance(v, int | float) and v
        )
        edit(field, value + 1000)
        assert held()[stamp] >= before[stamp]  # Odoo's stamp has whole seconds
        counts = json.loads(run("sync", "--json").stdout)["counts"]
        assert counts["planned_cells"] == 1, counts
        assert counts["per_field"] == {field.removeprefix(prefix): 1}, counts
        assert held()[field] == value
        assert json.loads(run("sync", "--json").stdout)["counts"]["planned_cells"] == 0


def _pay(name: str, erp: Any) -> str:
    """Pay one posted invoice in the ERP as a payment does (its lines untouched);
    return its canonical id."""
    if name == "erpnext":
        erp.pay("ACC-SINV-2024-00002")
        return "ACC-SINV-2024-00002"
    if name == "odoo":
        erp.pay(2)
        return "2"
    if name == "nav":  # documented: applying the payment closes the invoice's ledger entry
        row = next(r for r in erp.pages["PostedSalesInvoices"] if r["No"] == "I204")
        erp.modify("PostedSalesInvoices", row, {"Closed": "true"})
        return "I204"
    invoice = next(i for i in erp.invoices if i["ref"] == "I204")  # Dolibarr
    erp.pay(invoice["id"], dt.date(2026, 6, 28))
    return str(invoice["id"])


@pytest.mark.parametrize(
    "name", ["erpnext", "odoo", "dolibarr-UTC", "dolibarr-America/New_York", "nav"]
)
def test_an_invoice_paid_with_its_lines_untouched_keeps_its_lines(name: str, tmp_path: Any) -> None:
    import polars as pl

    erp, profile, settings, _, _, _ = CASES[name]()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        run = _cli(erp, profile, settings, tmp_path, _as_of(name))
        run("fields", "provision")
        run("sync", "--json")
        cached = pl.read_parquet(tmp_path / "tables" / "invoice_lines.parquet")
        invoice = _pay(name.split("-")[0], erp)
        run("sync", "--json")
    lines = pl.read_parquet(tmp_path / "tables" / "invoice_lines.parquet")
    assert lines.sort("line_id").equals(cached.sort("line_id"))
    invoices = pl.read_parquet(tmp_path / "tables" / "invoices.parquet")
    assert invoices.filter(pl.col("invoice_id") == invoice)["state"].to_list() == ["paid"]


def test_odoo_a_write_moves_the_partners_write_date(odoo: fake_erps.Odoo) -> None:
    from crm_bridge.adapter import Batch
    from crm_bridge.testing import CONFORMANCE_FIELDS

    _odoo_adapter(odoo).provision(CONFORMANCE_FIELDS)
    before = odoo.models["res.partner"][2]["write_date"]
    _odoo_adapter(odoo).write([Batch(("2",), {"conf_score": 7})])
    after = odoo.models["res.partner"][2]["write_date"]
    assert after > before and len(after) == len("2024-02-01 10:00:00")
