"""The golden company loaded into the Dolibarr, ERPNext, Odoo and NAV fakes, synced
through the CLI, and read back raw (plain HTTP/SOAP, never the adapter): the values
equal the hand-computed table, but for what the profiles do not read, listed here
with the reason.  Each fake runs in UTC, Europe/Riga and America/New_York: its dates
and modification stamps are the ones an ERP in that zone sends."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from click.testing import CliRunner
from crm_bridge.cli import cli

from crm_bridge.plugin_manager import load_plugins

from . import fake_erps, fake_nav
from .golden import data
from .golden.expected import EXPECTED
from .test_golden import assert_golden

STAMP = "2026-06-30 08:00:00.000000"
ZONES = ("UTC", "Europe/Riga", "America/New_York")


def erpnext_with_the_golden_company(zone: dt.tzinfo = dt.UTC) -> fake_erps.ERPNext:
    """The golden rows as ERPNext documents (Sales Invoice status as ERPNext sets it
    at the analysis date: Paid, Unpaid, Overdue, Return, Cancelled, Draft); stamps are
    the site's local time whatever ``zone`` is, dates carry no zone."""
    erp = fake_erps.ERPNext(zone)
    rows = data.tables()
    docs: dict[str, list[dict[str, Any]]] = {k: [] for k in erp.docs}
    for c in rows["customers"]:
        docs["Customer"].append(
            {
                "name": c["customer_id"],
                "customer_name": c["name"],
                "disabled": 0,
                "industry": c["industry"],
                "creation": "2024-01-01 09:00:00.000000",
                "modified": STAMP,
            }
        )
    for p in rows["products"]:
        docs["Item"].append(
            {
                "name": p["code"],
                "item_code": p["code"],
                "item_name": p["name"],
                "item_group": "Products",
                "standard_rate": p["list_price"],
                "valuation_rate": p["cost_price"],
            }
        )
    for i in rows["invoices"]:
        if i["kind"] == "credit_note":
            status = "Return"
        elif i["state"] in ("draft", "cancelled"):
            status = i["state"].title()
        elif i["state"] == "paid":
            status = "Paid"
        else:
            status = "Overdue" if i["due_date"] < data.AS_OF else "Unpaid"
        docs["Sales Invoice"].append(
            {
                "name": i["invoice_id"],
                "customer": i["customer_id"],
                "docstatus": {"draft": 0, "cancelled": 2}.get(i["state"], 1),
                "status": status,
                "is_return": int(i["kind"] == "credit_note"),
                "posting_date": i["date"].isoformat(),
                "due_date": i["due_date"].isoformat(),
                "currency": "EUR",
                "base_net_total": i["amount"],
                "modified": STAMP,
            }
        )
    for n in rows["invoice_lines"]:
        docs["Sales Invoice Item"].append(
            {
                "name": n["line_id"],
                "parent": n["invoice_id"],
                "item_code": n["product_id"],
                "qty": n["quantity"],
                "base_net_rate": n["unit_price"],
                "base_net_amount": n["amount"],
                "incoming_rate": n["cost"] / n["quantity"],
                "modified": STAMP,
            }
        )
    for y in rows["payments"]:
        docs["Payment Entry"].append(
            {
                "name": y["payment_id"],
                "party": y["customer_id"],
                "party_type": "Customer",
                "payment_type": "Receive",
                "docstatus": 1,
                "posting_date": y["date"].isoformat(),
                "base_received_amount": y["amount"],
            }
        )
    for q in rows["sale_orders"]:
        docs["Quotation"].append(
            {
                "name": q["order_id"],
                "quotation_to": "Customer",
                "party_name": q["customer_id"],
                "docstatus": 1,
                "status": {"quotation": "Open", "confirmed": "Ordered"}.get(q["state"], "Lost"),
                "transaction_date": q["date"].isoformat(),
                "base_net_total": q["amount"],
            }
        )
    for o in rows["opportunities"]:
        docs["Opportunity"].append(
            {
                "name": o["opportunity_id"],
                "party_name": o["customer_id"],
                "opportunity_from": "Customer",
                "transaction_date": o["date"].isoformat(),
                "status": {"won": "Converted", "lost": "Lost"}[o["state"]],
                "opportunity_amount": o["amount"],
                "order_lost_reason": o["lost_reason"],
            }
        )
    erp.docs = docs
    return erp


def expected_without_payment_dates_and_complaints() -> dict[str, dict[str, Any]]:
    """The golden table as an ERPNext or Odoo customer sees it: neither profile reads a
    payment date (the invoice says paid, not when), so days late and the share paid
    late are unknown; neither reads complaints (no complaint model is mapped), so
    every customer has 0 complaints in 12 months."""
    out = {}
    for cid, values in EXPECTED.items():
        seen = {
            k: v for k, v in values.items() if k not in ("kpi_avg_days_late", "kpi_paid_late_share")
        }
        if "kpi_complaints_12m" in seen:
            seen["kpi_complaints_12m"] = 0
        out[cid] = seen
    return out


def _utc(day: dt.date, time: str, zone: dt.tzinfo) -> str:
    """A local date and time as the UTC "YYYY-MM-DD HH:MM:SS" Odoo stores and sends."""
    local = dt.datetime.combine(day, dt.time.fromisoformat(time), zone)
    return local.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def odoo_with_the_golden_company(zone: dt.tzinfo = dt.UTC) -> fake_erps.Odoo:
    """The golden rows as Odoo records: ids are numbers (C01 is partner 1, P-A product
    1), refunds carry positive quantities and subtotals and a negative signed amount,
    a cancelled move keeps payment_state not_paid.  Dates are plain; date-times are
    UTC (documented: Odoo stores Datetime fields in UTC and the client shows them in
    the user's zone, ``zone`` here): quotes made at 21:00 and opportunities at 01:00
    there, another UTC day in New York and in Riga."""
    erp = fake_erps.Odoo(zone)
    rows = data.tables()
    pid = {c["customer_id"]: n for n, c in enumerate(rows["customers"], 1)}
    partner = {c["customer_id"]: [pid[c["customer_id"]], c["name"]] for c in rows["customers"]}
    prod = {p["code"]: [n, p["name"]] for n, p in enumerate(rows["products"], 1)}
    m: dict[str, dict[int, dict[str, Any]]] = {
        k: {} for k in (*erp.models, "account.payment", "sale.order", "crm.lead")
    }
    m["ir.model"] = erp.models["ir.model"]
    for c in rows["customers"]:
        n = pid[c["customer_id"]]
        m["res.partner"][n] = {
            "id": n,
            "name": c["name"],
            "ref": c["customer_id"],
            "active": True,
            "industry_id": False,
            "create_date": "2024-01-01 09:00:00",
            "write_date": STAMP[:19],
        }
    for p in rows["products"]:
        n = prod[p["code"]][0]
        m["product.product"][n] = {
            "id": n,
            "default_code": p["code"],
            "name": p["name"],
            "categ_id": [1, "All"],
            "list_price": p["list_price"],
            "standard_price": p["cost_price"],
            "active": True,
        }
    move_id = {}
    for n, i in enumerate(rows["invoices"], 1):
        move_id[i["invoice_id"]] = n
        refund = i["kind"] == "credit_note"
        m["account.move"][n] = {
            "id": n,
            "partner_id": partner[i["customer_id"]],
            "name": i["invoice_id"],
            "move_type": "out_refund" if refund else "out_invoice",
            "state": {"cancelled": "cancel", "draft": "draft"}.get(i["state"], "posted"),
            "payment_state": "paid" if i["state"] == "paid" else "not_paid",
            "invoice_date": i["date"].isoformat(),
            "invoice_date_due": i["due_date"].isoformat(),
            "currency_id": [1, "EUR"],
            "amount_untaxed_signed": i["amount"],
            "write_date": STAMP[:19],
        }
    invoice_of = {i["invoice_id"]: i for i in rows["invoices"]}
    for n, line in enumerate(rows["invoice_lines"], 1):
        i = invoice_of[line["invoice_id"]]
        m["account.move.line"][n] = {
            "id": n,
            "move_id": [move_id[i["invoice_id"]], i["invoice_id"]],
            "partner_id": partner[i["customer_id"]],
            "product_id": prod[line["product_id"]],
            "quantity": abs(line["quantity"]),
            "price_unit": line["unit_price"],
            "price_subtotal": abs(line["amount"]),
            "move_type": "out_refund" if i["kind"] == "credit_note" else "out_invoice",
            "display_type": "product",
        }
    for n, y in enumerate(rows["payments"], 1):
        m["account.payment"][n] = {
            "id": n,
            "partner_id": partner[y["customer_id"]],
            "partner_type": "customer",
            "payment_type": "inbound",
            "state": "paid",
            "date": y["date"].isoformat(),
            "amount_company_currency_signed": y["amount"],
        }
    for n, q in enumerate(rows["sale_orders"], 1):
        m["sale.order"][n] = {
            "id": n,
            "partner_id": partner[q["customer_id"]],
            "date_order": _utc(q["date"], "21:00", zone),
            "state": {"quotation": "sent", "confirmed": "sale"}.get(q["state"], "cancel"),
            "amount_untaxed": q["amount"],
        }
    for n, o in enumerate(rows["opportunities"], 1):
        m["crm.lead"][n] = {
            "id": n,
            "partner_id": partner[o["customer_id"]],
            "active": o["state"] != "lost",  # Odoo archives a lost lead
            "create_date": _utc(o["date"], "01:00", zone),
            "type": "opportunity",
            "won_status": o["state"],
            "expected_revenue": o["amount"],
            "lost_reason_id": [1, o["lost_reason"]] if o["lost_reason"] else False,
        }
    erp.models = m
    return erp


def _raw_erpnext(erp: Any) -> dict[str, dict[str, Any]]:
    answer = requests.get(
        f"{erp.base}/api/resource/Customer",
        params={"fields": '["*"]', "limit_page_length": "0"},
        headers={"Authorization": erp.token},
        timeout=5,
    )
    assert answer.status_code == 200
    return {
        doc["name"]: {
            k.removeprefix("custom_crm_"): v
            for k, v in doc.items()
            if k.startswith("custom_crm_") and v is not None
        }
        for doc in answer.json()["data"]
    }


def _raw_odoo(erp: Any) -> dict[str, dict[str, Any]]:
    answer = requests.post(
        f"{erp.base}/json/2/res.partner/search_read",
        headers={"Authorization": f"bearer {erp.api_key}", "X-Odoo-Database": erp.database},
        json={"domain": [], "fields": []},  # documented: no fields, every field
        timeout=5,
    )
    assert answer.status_code == 200
    return {
        record["ref"]: {
            k.removeprefix("x_crm_"): v
            for k, v in record.items()
            if k.startswith("x_crm_") and v is not False
        }
        for record in answer.json()
    }


def _midnight(day: dt.date, zone: dt.tzinfo) -> int:
    return int(dt.datetime.combine(day, dt.time(), zone).timestamp())


def dolibarr_with_the_golden_company(zone: dt.tzinfo, production: bool) -> fake_erps.Dolibarr:
    """The golden rows as Dolibarr objects: ids are numbers (C01 is third party 1),
    dates unix midnights in ``zone`` (where PHP runs), numbers strings; a credit note
    (type 2) has positive quantities and negative totals; I302 abandoned (status 3),
    I303 a draft (0); payments dated as local text, I701's in two parts; quotes are
    proposals (1 open, 2 signed, 3 refused) without lines."""
    erp = fake_erps.Dolibarr(zone, production)
    rows = data.tables()
    stamp = int(dt.datetime.fromisoformat(STAMP).replace(tzinfo=zone).timestamp())
    pid = {c["customer_id"]: str(n) for n, c in enumerate(rows["customers"], 1)}
    erp.thirdparties = {
        pid[c["customer_id"]]: {
            "id": pid[c["customer_id"]],
            "name": c["name"],
            "code_client": c["customer_id"],
            "status": "1",
            "date_creation": stamp - 86400 * 400,
            "date_modification": stamp,
            "array_options": [],
        }
        for c in rows["customers"]
    }
    prod = {p["code"]: str(n) for n, p in enumerate(rows["products"], 1)}
    erp.products = [
        {
            "id": prod[p["code"]],
            "ref": p["code"],
            "label": p["name"],
            "price": f"{p['list_price']:.8f}",
            "cost_price": f"{p['cost_price']:.8f}",
        }
        for p in rows["products"]
    ]
    lines: dict[str, list[dict[str, Any]]] = {}
    for n, line in enumerate(rows["invoice_lines"], 1):
        lines.setdefault(line["invoice_id"], []).append(
            {
                "id": str(n),
                "fk_product": prod[line["product_id"]],
                "qty": str(abs(line["quantity"])),
                "subprice": f"{line['unit_price']:.8f}",
                "total_ht": f"{line['amount']:.8f}",
                "pa_ht": f"{abs(line['cost'] / line['quantity']):.8f}",
            }
        )
    status = {"draft": "0", "posted": "1", "paid": "2", "cancelled": "3"}
    erp.invoices = [
        {
            "id": str(n),
            "socid": pid[i["customer_id"]],
            "ref": i["invoice_id"],
            "type": "2" if i["kind"] == "credit_note" else "0",
            "status": status[i["state"]],
            "date": _midnight(i["date"], zone),
            "date_lim_reglement": _midnight(i["due_date"], zone),
            "date_closing": None,
            "total_ht": f"{i['amount']:.8f}",
            "multicurrency_code": "EUR",
            "date_modification": stamp,
            "lines": lines[i["invoice_id"]],
        }
        for n, i in enumerate(rows["invoices"], 1)
    ]
    number = {i["invoice_id"]: str(n) for n, i in enumerate(rows["invoices"], 1)}
    erp.payments = {}
    paid_in_parts = {y["invoice_id"] for y in rows["payments"]}
    for y in rows["payments"]:
        erp.payments.setdefault(number[y["invoice_id"]], []).append(
            {
                "amount": f"{y['amount']:.8f}",
                "type": "VIR",
                "date": f"{y['date'].isoformat()} 12:00:00",
                "ref": y["payment_id"],
            }
        )
    for i in rows["invoices"]:
        if i["state"] == "paid" and i["invoice_id"] not in paid_in_parts:
            erp.payments[number[i["invoice_id"]]] = [
                {
                    "amount": f"{i['amount']:.8f}",
                    "type": "VIR",
                    "date": f"{i['paid_date'].isoformat()} 12:00:00",
                    "ref": f"PAY-{i['invoice_id']}",
                }
            ]
    erp.proposals = [
        {
            "id": str(n),
            "socid": pid[q["customer_id"]],
            "ref": q["order_id"],
            "date": _midnight(q["date"], zone),
            "status": {"quotation": "1", "confirmed": "2", "cancelled": "3"}[q["state"]],
            "total_ht": f"{q['amount']:.8f}",
            "lines": [],
        }
        for n, q in enumerate(rows["sale_orders"], 1)
    ]
    return erp


def expected_without_opportunities_and_complaints() -> dict[str, dict[str, Any]]:
    """The golden table as a Dolibarr customer sees it: the profile reads no
    opportunities and no complaints (Dolibarr's are in modules it does not map), so
    every count of them is 0, and C06's latest refusal is its refused quote Q2."""
    out = {}
    for cid, values in EXPECTED.items():
        seen = dict(values)
        for name in ("kpi_opportunities_won", "kpi_opportunities_lost", "kpi_complaints_12m"):
            if name in seen:
                seen[name] = 0
        out[cid] = seen
    out["C06"]["kpi_last_refusal"] = "2026-02-10 quote refused"
    return out


def _raw_dolibarr(erp: Any) -> dict[str, dict[str, Any]]:
    """Third parties over plain HTTP; extrafields as Dolibarr shows them on the card:
    a date is the day of the stored midnight where PHP runs (the fake's zone)."""
    answer = requests.get(
        f"{erp.base}/api/index.php/thirdparties",
        params={"limit": "100", "page": "0"},
        headers={"DOLAPIKEY": erp.key},
        timeout=5,
    )
    assert answer.status_code == 200
    kinds = {f"options_{k}": v["type"] for k, v in erp.extrafields.items()}
    out: dict[str, dict[str, Any]] = {}
    for party in answer.json():
        values: dict[str, Any] = {}
        for key, value in (party["array_options"] or {}).items():
            if value is None or not key.startswith("options_crm_"):
                continue
            if kinds[key] == "date":
                day = dt.datetime.fromtimestamp(int(value), erp.zone)
                assert day.time() == dt.time(), (key, value)  # a midnight there
                value = day.date().isoformat()
            elif kinds[key] == "int":
                value = int(value)
            elif kinds[key] == "double":
                value = float(value)
            values[key.removeprefix("options_crm_")] = value
        out[party["code_client"]] = values
    return out


XSD = {
    "char": "string",
    "selection": "string",
    "integer": "int",
    "numeric": "decimal",
    "date": "date",
    "boolean": "boolean",
}


def nav_with_the_golden_company(zone: dt.tzinfo) -> fake_nav.Nav:
    """The golden rows as NAV's posted documents: only posted invoices exist (I302
    cancelled and I303 a draft never reach the posted tables), a paid one is Closed,
    the credit note is a posted credit memo with positive quantities and amounts;
    dates carry no zone.  The Customer page publishes every built-in field."""
    fields = {name: XSD[f.type] for name, f in load_plugins().fields().items()}
    erp = fake_nav.Nav(zone, crm_fields=fields)
    rows = data.tables()
    pages: dict[str, list[dict[str, Any]]] = {page: [] for page in erp.pages}
    pages["Customer"] = [
        {
            "No": c["customer_id"],
            "Name": c["name"],
            "Blocked": "_blank_",
            "Customer_Posting_Group": "DOMESTIC",
            "Last_Date_Modified": "2026-06-30",
        }
        for c in rows["customers"]
    ]
    pages["Item"] = [
        {
            "No": p["code"],
            "Description": p["name"],
            "Unit_Price": f"{p['list_price']:.2f}",
            "Unit_Cost": f"{p['cost_price']:.2f}",
        }
        for p in rows["products"]
    ]
    lines: dict[str, list[dict[str, Any]]] = {}
    for line in rows["invoice_lines"]:
        lines.setdefault(line["invoice_id"], []).append(line)
    for i in rows["invoices"]:
        if i["state"] not in ("posted", "paid"):
            continue
        memo = i["kind"] == "credit_note"
        header, body = (
            ("PostedSalesCreditMemos", "PostedSalesCrMemoLines")
            if memo
            else ("PostedSalesInvoices", "PostedSalesInvLines")
        )
        pages[header].append(
            {
                "No": i["invoice_id"],
                "Sell_to_Customer_No": i["customer_id"],
                "Posting_Date": i["date"].isoformat(),
                "Due_Date": i["due_date"].isoformat(),
                "Amount": f"{abs(i['amount']):.2f}",
                **({} if memo else {"Closed": "true" if i["state"] == "paid" else "false"}),
            }
        )
        for n, line in enumerate(lines[i["invoice_id"]], 1):
            pages[body].append(
                {
                    "Document_No": i["invoice_id"],
                    "Line_No": str(n * 10000),
                    "Type": "Item",
                    "No": line["product_id"],
                    "Quantity": str(abs(line["quantity"])),
                    "Unit_Price": f"{line['unit_price']:.2f}",
                    "Line_Amount": f"{abs(line['amount']):.2f}",
                    "Unit_Cost_LCY": f"{abs(line['cost'] / line['quantity']):.2f}",
                }
            )
    erp.pages = pages
    erp.rekey()
    return erp


def expected_of_posted_documents_only() -> dict[str, dict[str, Any]]:
    """The golden table as a NAV customer sees it: the profile reads the posted
    invoices and credit memos only; a paid invoice is Closed without a date (no days
    late, no share paid late), and no quote, opportunity or complaint is read (no
    quote conversion or refusal; their counts 0), so C06, who never bought, has no
    value at all."""
    out = {}
    for cid, values in expected_without_payment_dates_and_complaints().items():
        seen = {
            k: v for k, v in values.items() if k not in ("kpi_quote_conversion", "kpi_last_refusal")
        }
        for name in ("kpi_opportunities_won", "kpi_opportunities_lost"):
            if name in seen:
                seen[name] = 0
        if cid != "C06":
            out[cid] = seen
    return out


def _raw_nav(erp: Any) -> dict[str, dict[str, Any]]:
    """Customers over a hand-written SOAP ReadMultiple (plain requests)."""
    from lxml import etree

    ns = "urn:microsoft-dynamics-schemas/page/customer"
    envelope = (
        f'<s:Envelope xmlns:s="{fake_nav.SOAP}"><s:Body><ReadMultiple xmlns="{ns}">'
        "<filter><Field>No</Field><Criteria></Criteria></filter>"
        "<bookmarkKey></bookmarkKey><setSize>100</setSize></ReadMultiple></s:Body></s:Envelope>"
    )
    answer = requests.post(
        f"{fake_nav.BASE}/{fake_nav.COMPANY}/Page/Customer",
        data=envelope.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f"{ns}:ReadMultiple"},
        auth=(fake_nav.USER, fake_nav.PASSWORD),
        timeout=5,
    )
    assert answer.status_code == 200
    kinds = {name: XSD[f.type] for name, f in load_plugins().fields().items()}
    out: dict[str, dict[str, Any]] = {}
    for customer in etree.fromstring(answer.content).iter(f"{{{ns}}}Customer"):
        values: dict[str, Any] = {}
        for element in customer:
            name = etree.QName(element).localname.removeprefix("CRM_")
            if name not in kinds or element.text is None:
                continue
            kind, text = kinds[name], element.text
            values[name] = {"int": int, "decimal": float}.get(kind, str)(text)
        out[customer.findtext(f"{{{ns}}}No")] = values
    return out


# profile, zone, the erp section's own lines
CASES = [
    ("dolibarr", "UTC", ""),  # production: /status names no zone, UTC assumed
    ("dolibarr", "Europe/Riga", ""),  # not production: /status names the zone
    ("dolibarr", "America/New_York", 'timezone = "America/New_York"'),  # production
    *((p, z, "") for p in ("erpnext", "odoo", "nav") for z in ZONES),
]


@pytest.mark.parametrize(("profile", "zone", "extra"), CASES)
def test_the_golden_company_read_back_raw(
    profile: str, zone: str, extra: str, tmp_path: Path, monkeypatch: Any
) -> None:
    erp: Any
    where = ZoneInfo(zone)
    if profile == "dolibarr":
        erp, read, secrets = (
            dolibarr_with_the_golden_company(where, production=bool(extra) or zone == "UTC"),
            _raw_dolibarr,
            {"api_key": fake_erps.Dolibarr.key},
        )
        expected = expected_without_opportunities_and_complaints()
    elif profile == "erpnext":
        erp, read, secrets = (
            erpnext_with_the_golden_company(where),
            _raw_erpnext,
            {
                "api_key": "apikey",
                "api_secret": "apisecret",
            },
        )
        expected = expected_without_payment_dates_and_complaints()
    elif profile == "nav":
        erp, read, secrets = (
            nav_with_the_golden_company(where),
            _raw_nav,
            {"company": fake_nav.COMPANY, "username": fake_nav.USER, "password": fake_nav.PASSWORD},
        )
        expected = expected_of_posted_documents_only()
    else:
        erp, read, secrets = (
            odoo_with_the_golden_company(where),
            _raw_odoo,
            {
                "api_key": fake_erps.Odoo.api_key,
                "database": fake_erps.Odoo.database,
            },
        )
        expected = expected_without_payment_dates_and_complaints()
    url = fake_nav.BASE if profile == "nav" else erp.base
    lines = [f'adapter = "{profile}"', f'url = "{url}"', extra]
    for key, value in secrets.items():
        monkeypatch.setenv(f"CRM_TEST_{key.upper()}", value)
        lines.append(f'{key} = "${{CRM_TEST_{key.upper()}}}"')
    config = tmp_path / "crm-bridge.toml"
    config.write_text(
        "[erp]\n" + "\n".join(lines) + f'\n[sync]\nas_of = "{data.AS_OF}"\n[state]\npath = "s.db"\n'
    )

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], obj=load_plugins())
        assert result.exit_code == 0, result.output
        return result

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        run("fields", "provision")
        run("sync", "--json")
        raw = read(erp)
        again = json.loads(run("sync", "--json").stdout)["counts"]
    assert_golden(raw, expected)
    assert {cid: values for cid, values in raw.items() if cid not in expected} == {
        cid: {} for cid in set(raw) - set(expected)
    }
    assert again["planned_cells"] == 0
