"""In-memory Odoo, ERPNext and Dolibarr REST APIs for ``responses``.

These ERPs cannot run here, so each fake answers the requests crm-bridge's
profile sends with the shapes the ERP's documentation gives, quirks included:
Dolibarr's 404 for an empty page, numbers as strings, unix dates and ``[]`` for
no extrafields; ERPNext's ``{"data": [...]}`` and child tables listed with
``?parent=``; Odoo's JSON-2 ``search_read`` with ``[id, name]`` many2ones and
``false`` for empty values.  Each fake keeps its records so tests can read
what was written without going through the adapter.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

import responses

from .odoo_jsonrpc_profile import POSITIONAL

Answer = tuple[int, dict[str, str], str]

# The same small company in every fake: 4 customers, 3 products, 5 invoices
# (one credit note, one draft), 8 lines; customer 4 never bought.
CUSTOMERS = [
    (1, "Acme", "C001"),
    (2, "Globex", "C002"),
    (3, "Initech", "C003"),
    (4, "Umbrella", "C004"),
]
PRODUCTS = [
    (1, "P-A", "Anvil", "10.00", "6.00"),
    (2, "P-B", "Bolt", "2.50", "1.00"),
    (3, "P-C", "Crate", "40.00", "25.00"),
]
# id, customer, day (2024-03-DD), kind, state, lines [(product, qty, price)]
INVOICES = [
    (1, 1, 1, "invoice", "paid", [(1, 2, 10.0), (2, 10, 2.5)]),
    (2, 1, 15, "invoice", "posted", [(3, 1, 40.0)]),
    (3, 2, 3, "invoice", "paid", [(1, 5, 10.0), (3, 2, 40.0)]),
    (4, 2, 20, "credit_note", "posted", [(1, 1, 10.0)]),
    (5, 3, 9, "invoice", "draft", [(2, 4, 2.5), (3, 1, 40.0)]),
]


FAULTS = ("500", "503", "429", "timeout", "reset", "truncated", "not-json")


def fault(kind: int | str) -> Answer:
    """One failed answer: a status, or a broken connection or body."""
    import requests

    if kind == "timeout":
        raise requests.Timeout("read timed out")
    if kind == "reset":
        raise requests.ConnectionError("Connection reset by peer")
    if kind == "truncated":
        raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
    if kind == "not-json":
        return 200, {"Content-Type": "text/html"}, "<html><body>Bad gateway</body></html>"
    status = int(kind)
    return status, ({"Retry-After": "7"} if status == 429 else {}), "busy"


def _json(status: int, body: Any) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def _query(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}


class FakeErp:
    """Records and the callbacks of one fake; ``calls`` counts requests by path."""

    base = "https://erp.example.com"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        # Faults to answer (in order) before the real answers: statuses or FAULTS names,
        # for the requests whose "METHOD path" contains ``fail_on``.
        self.fail_next: list[int | str] = []
        self.fail_on = ""

    def install(self, rsps: responses.RequestsMock) -> None:
        for method in ("GET", "POST", "PUT", "DELETE"):
            rsps.add_callback(method, re.compile(re.escape(self.base) + ".*"), self._dispatch)

    def _dispatch(self, request: Any) -> Answer:
        path = unquote(urlparse(request.url).path)
        self.calls[path] = self.calls.get(path, 0) + 1
        if self.fail_next and self.fail_on in f"{request.method} {path}":
            return fault(self.fail_next.pop(0))
        body = json.loads(request.body) if request.body else None
        return self.handle(request.method, path, _query(request), body, request.headers)

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: Any
    ) -> Answer:
        raise NotImplementedError


# -- Dolibarr --------------------------------------------------------------------
class Dolibarr(FakeErp):
    """Dolibarr's REST API.  ``zone`` is where its PHP and its database run: unix
    dates are midnights there (measured: DOLIBARR-NOTES.md; DoliDB::jdate reads
    the database's text in PHP's zone, core/db/DoliDB.class.php), and
    ``sqlfilters`` compares ``t.tms`` with the literal in the database session's zone
    (documented: core/db/mysqli.class.php sets no session time_zone; tms is a
    TIMESTAMP; # assumed: MariaDB runs in the same zone as PHP).  ``production``
    ($dolibarr_main_prod) hides the zone in /status (api_status.class.php)."""

    key = "doli-key-123"

    def __init__(self, zone: dt.tzinfo = dt.UTC, production: bool = True) -> None:
        super().__init__()
        self.zone = zone
        self.production = production
        self.proposals: list[dict[str, Any]] = []
        t0 = 1_700_000_000
        self.thirdparties = {
            str(i): {
                "id": str(i),
                "name": name,
                "code_client": code,
                "status": "1",
                "date_creation": t0 + i,
                "date_modification": t0 + 100 + i,
                "email": f"{code.lower()}@example.com",
                "array_options": [],
            }
            for i, name, code in CUSTOMERS
        }
        self.products = [
            {"id": str(i), "ref": ref, "label": label, "price": f"{p}000000", "cost_price": c}
            for i, ref, label, p, c in PRODUCTS
        ]
        states = {"draft": "0", "posted": "1", "paid": "2"}
        self.invoices = []
        line_id = 100
        for i, cust, day, kind, state, lines in INVOICES:
            sign = -1 if kind == "credit_note" else 1
            rows = []
            for product, qty, price in lines:
                line_id += 1
                rows.append(
                    {
                        "id": str(line_id),
                        "fk_product": str(product),
                        "qty": str(qty),
                        "subprice": f"{price:.8f}",
                        "total_ht": f"{sign * qty * price:.8f}",
                        "pa_ht": f"{float(PRODUCTS[product - 1][4]):.8f}",
                    }
                )
            date = 1_709_251_200 + (day - 1) * 86400  # 2024-03-DD 00:00 UTC
            self.invoices.append(
                {
                    "id": str(i),
                    "socid": str(cust),
                    "ref": f"FA2403-{i:04d}",
                    "type": "2" if kind == "credit_note" else "0",
                    "status": states[state],
                    "date": date,
                    "date_lim_reglement": date + 30 * 86400,
                    "date_closing": None,  # never filled in REST answers (23.0)
                    "total_ht": f"{sum(float(r['total_ht']) for r in rows):.8f}",
                    "multicurrency_code": "EUR",
                    "date_modification": date + 12 * 86400,
                    "lines": rows,
                }
            )
        # GET /invoices/{id}/payments: dates as local "Y-m-d H:i:s" text, not unix.
        self.payments = {
            inv["id"]: [
                {
                    "amount": inv["total_ht"],
                    "type": "VIR",
                    "date": dt.datetime.fromtimestamp(inv["date"] + 10 * 86400, dt.UTC)
                    .replace(tzinfo=None)
                    .isoformat(" "),
                    "ref": f"PAY2403-{int(inv['id']):04d}",
                }
            ]
            for inv in self.invoices
            if inv["status"] == "2"
        }
        self.extrafields: dict[str, dict[str, Any]] = {}

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: Any
    ) -> Answer:
        if headers.get("DOLAPIKEY") != self.key:
            return _json(401, {"error": {"code": 401, "message": "Unauthorized: Access denied"}})
        path = path.removeprefix("/api/index.php")
        if method == "GET" and path == "/status":  # production: no timezone shown
            status: dict[str, Any] = {"code": 200, "dolibarr_version": "23.0.0-beta"}
            if not self.production:
                status.update(
                    timestamp_now_utc=int(dt.datetime.now(dt.UTC).timestamp()),
                    timestamp_php_tz=str(self.zone),
                )
            return _json(200, {"success": status})
        if method == "GET" and path.startswith("/setup/conf/"):
            return _json(400, {"error": {"code": 400, "message": "Bad or unknown value"}})
        if method == "GET" and (m := re.fullmatch(r"/invoices/(\w+)/payments", path)):
            return _json(200, self.payments.get(m.group(1), []))
        if method == "GET" and path in ("/thirdparties", "/products", "/invoices", "/proposals"):
            rows = {
                "/thirdparties": list(self.thirdparties.values()),
                "/products": self.products,
                "/invoices": self.invoices,
                "/proposals": self.proposals,
            }[path]
            if m := re.fullmatch(r"\(t\.tms:>=:'([\d\- :]+)'\)", query.get("sqlfilters", "")):
                since = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=self.zone).timestamp()
                rows = [r for r in rows if r.get("date_modification", 0) >= since]
            limit, page = int(query.get("limit", 100)), int(query.get("page", 0))
            chunk = rows[page * limit : (page + 1) * limit]
            if not chunk:  # Dolibarr answers an empty list with 404
                return _json(404, {"error": {"code": 404, "message": "Not Found: No record found"}})
            return _json(200, chunk)
        if m := re.fullmatch(r"/thirdparties/(\w+)", path):
            party = self.thirdparties.get(m.group(1))
            if party is None:
                return _json(404, {"error": {"code": 404, "message": "Thirdparty not found"}})
            if method == "PUT":
                held = party["array_options"] or {}
                for key, value in (body.get("array_options") or {}).items():
                    held_def = self.extrafields.get(key.removeprefix("options_"))
                    if held_def is None or held_def["type"] == "separate":
                        continue  # Dolibarr ignores options_ keys that are not columns
                    held[key] = value
                party["array_options"] = held or []
                for key, value in body.items():
                    if key != "array_options":
                        party[key] = value
                # documented (DOLIBARR-NOTES.md): date_modification is the later of
                # llx_societe.tms and llx_societe_extrafields.tms; a PUT writes one
                party["date_modification"] = self.now()
            return _json(200, party)
        if path == "/setup/extrafields" and method == "GET":
            if query.get("elementtype") != "thirdparty" or not self.extrafields:
                return _json(404, {"error": {"code": 404, "message": "No extrafield found"}})
            return _json(200, {"societe": self.extrafields})  # keyed as stored
        if m := re.fullmatch(r"/setup/extrafields/thirdparty/(\w+)", path):
            name = m.group(1)
            if method == "POST":
                if name in self.extrafields:
                    return _json(409, {"error": {"code": 409, "message": "already exists"}})
                if body.get("param") == {}:  # PHP strlen() on an array in extrafields.class.php
                    return _json(500, {"error": {"code": 500, "message": "Internal Server Error"}})
                self.extrafields[name] = {"type": body["type"], **_extrafield(body)}
                return _json(200, name)
            if method == "PUT":
                self.extrafields[name].update(_extrafield(body))
                return _json(200, name)
            if method == "DELETE":
                self.extrafields.pop(name, None)
                for party in self.thirdparties.values():
                    if party["array_options"]:
                        party["array_options"].pop(f"options_{name}", None)
                return _json(200, name)
        return _json(501, {"error": {"code": 501, "message": f"fake: {method} {path}"}})

    def now(self) -> int:
        """A new modification stamp (unix), after every stamp already held."""
        held = [r["date_modification"] for r in (*self.thirdparties.values(), *self.invoices)]
        return max(int(dt.datetime.now(dt.UTC).timestamp()), max(held, default=0) + 1)

    def pay(self, invoice_id: str, day: dt.date, amount: str | None = None) -> None:
        """The invoice paid in full on ``day`` (a payment through the API closes it):
        its status and stamp move, its lines do not change."""
        invoice = next(i for i in self.invoices if i["id"] == invoice_id)
        self.payments.setdefault(invoice_id, []).append(
            {
                "amount": amount or invoice["total_ht"],
                "type": "VIR",
                "date": f"{day.isoformat()} 12:00:00",  # datep in PHP's zone, as text
                "ref": f"PAY-{invoice_id}-{len(self.payments.get(invoice_id, [])) + 1}",
            }
        )
        invoice["status"] = "2"
        invoice["date_modification"] = self.now()


def _extrafield(body: dict[str, Any]) -> dict[str, Any]:
    """What Dolibarr keeps of a POST or PUT /setup/extrafields body, as its GET sends
    it back.  Documented with source (23.0.0-beta api_setup.class.php postExtrafields /
    updateExtrafields, core/class/extrafields.class.php): every attribute is rewritten
    from the body, a missing one as empty (so a PUT resets what it leaves out); pos
    and totalizable are cast to int, then read back from MariaDB as strings ("1001",
    "0"); list is kept as sent ("1", "-1", "3"); a "separate" type adds no column."""
    return {
        "label": body["label"],
        "list": str(body.get("list", "")),
        "pos": str(int(body.get("pos") or 0)),
        "totalizable": str(int(body.get("totalizable") or 0)),
        "help": body.get("help", ""),
        "param": body.get("param", ""),
    }


# -- ERPNext ---------------------------------------------------------------------
class ERPNext(FakeErp):
    token = "token apikey:apisecret"

    def __init__(self, zone: dt.tzinfo = dt.UTC) -> None:
        super().__init__()
        self.zone = zone  # the site's system time zone (System Settings)
        self.docs: dict[str, list[dict[str, Any]]] = {
            # documented: Frappe sends numbers as JSON numbers, Check as 0/1, dates as
            # "YYYY-MM-DD" and datetimes as "YYYY-MM-DD HH:MM:SS.ffffff" in the system
            # time zone of the site (System Settings) (``zone``, UTC unless given)
            "Customer": [
                {
                    "name": f"CUST-{i:05d}",
                    "customer_name": name,
                    "disabled": 0,
                    "industry": None,
                    "customer_group": "Commercial",
                    "creation": f"2024-01-0{i} 10:00:00.000000",
                    "modified": f"2024-02-0{i} 10:00:00.000000",
                }
                for i, name, _ in CUSTOMERS
            ],
            "Item": [
                {
                    "name": ref,
                    "item_code": ref,
                    "item_name": label,
                    "item_group": "Products",
                    "standard_rate": float(p),
                    "valuation_rate": float(c),
                }
                for _, ref, label, p, c in PRODUCTS
            ],
            "Sales Invoice": [],
            "Sales Invoice Item": [],
            "Custom Field": [],
            # documented: Language (name = language_code; enabled, a Check) and Translation
            # (language, source_text, translated_text; the desk shows translated_text to the
            # users of that language wherever source_text is a label) in
            # frappe/core/doctype/language/language.json, translation/translation.json;
            # Frappe's codes: zh (Simplified), zh-TW; de has no crm-bridge catalog
            "Language": [
                {"name": code, "language_code": code, "enabled": enabled}
                for code, enabled in [
                    ("en", 1),
                    ("ru", 1),
                    ("lv", 1),
                    ("zh", 1),
                    ("zh-TW", 1),
                    ("de", 1),
                    ("fr", 0),
                ]
            ],
            "Translation": [],
            "Payment Entry": [
                {
                    "name": "ACC-PAY-2024-00001",
                    "party": "CUST-00001",
                    "party_type": "Customer",
                    "payment_type": "Receive",
                    "docstatus": 1,
                    "posting_date": "2024-03-11",
                    "base_received_amount": 45.0,
                }
            ],
            "Sales Order": [
                {
                    "name": "SAL-ORD-2024-00001",
                    "customer": "CUST-00003",
                    "docstatus": 0,
                    "status": "Draft",
                    "transaction_date": "2024-03-25",
                    "base_net_total": 80.0,
                }
            ],
            # documented: ERPNext's Quotation (quotation_to Customer, party_name the
            # customer; status Draft/Open/Replied/Partially Ordered/Ordered/Lost/
            # Cancelled/Expired), erpnext/selling/doctype/quotation/quotation.json
            "Quotation": [
                {
                    "name": f"SAL-QTN-2024-0000{n}",
                    "quotation_to": "Customer",
                    "party_name": party,
                    "docstatus": docstatus,
                    "status": status,
                    "transaction_date": date,
                    "base_net_total": total,
                }
                for n, party, docstatus, status, date, total in (
                    (1, "CUST-00003", 1, "Open", "2024-03-26", 120.0),
                    (2, "CUST-00001", 1, "Ordered", "2024-02-10", 60.0),
                    (3, "CUST-00002", 1, "Lost", "2024-03-05", 400.0),
                )
            ],
            "Quotation Item": [
                {
                    "name": f"QI-{n}",
                    "parent": f"SAL-QTN-2024-0000{n}",
                    "item_code": item,
                    "qty": qty,
                    "base_net_amount": amount,
                }
                for n, item, qty, amount in (
                    (1, "P-C", 3, 120.0),
                    (2, "P-A", 6, 60.0),
                    (3, "P-C", 10, 400.0),
                )
            ],
            "Opportunity": [
                {
                    "name": "CRM-OPP-2024-00001",
                    "party_name": "CUST-00004",
                    "opportunity_from": "Customer",
                    "transaction_date": "2024-03-02",
                    "status": "Lost",
                    "opportunity_amount": 500.0,
                    "order_lost_reason": "Price",
                }
            ],
        }
        status = {"paid": "Paid", "posted": "Unpaid", "draft": "Draft"}
        for i, cust, day, kind, state, lines in INVOICES:
            name = f"ACC-SINV-2024-{i:05d}"
            sign = -1 if kind == "credit_note" else 1
            total = 0.0
            for n, (product, qty, price) in enumerate(lines):
                total += sign * qty * price
                self.docs["Sales Invoice Item"].append(
                    {
                        "name": f"{name}-{n}",
                        "parent": name,
                        "item_code": PRODUCTS[product - 1][1],
                        "qty": sign * qty,
                        "base_net_rate": price,
                        "base_net_amount": sign * qty * price,
                        "incoming_rate": float(PRODUCTS[product - 1][4]),
                        "modified": f"2024-03-{day:02d} 12:00:00.000000",
                    }
                )
            self.docs["Sales Invoice"].append(
                {
                    "name": name,
                    "customer": f"CUST-{cust:05d}",
                    "docstatus": 0 if state == "draft" else 1,
                    "status": "Return" if kind == "credit_note" else status[state],
                    "is_return": 1 if kind == "credit_note" else 0,
                    "posting_date": f"2024-03-{day:02d}",
                    "due_date": f"2024-04-{day:02d}",
                    "currency": "EUR",
                    "base_net_total": total,
                    "modified": f"2024-03-{day:02d} 12:00:00.000000",
                }
            )

    def customer(self, name: str) -> dict[str, Any] | None:
        return next((d for d in self.docs["Customer"] if d["name"] == name), None)

    def stamp(self) -> str:
        """Now as Frappe writes ``modified``: local time, microseconds, no zone."""
        return dt.datetime.now(self.zone).strftime("%Y-%m-%d %H:%M:%S.%f")

    def pay(self, invoice: str) -> None:
        """A Payment Entry submitted against ``invoice``: the invoice's status and
        outstanding amount are set with db_set, which moves the invoice's ``modified``
        and none of its items' (documented: erpnext accounts_controller /
        set_status(update=True) -> db_set(update_modified=True) on the parent only)."""
        doc = next(d for d in self.docs["Sales Invoice"] if d["name"] == invoice)
        doc.update(status="Paid", modified=self.stamp())

    def _joined(self, doctype: str, fields: list[str]) -> list[dict[str, Any]]:
        """The rows of a list, joined with a child table when a field names one:
        one row per child row, child fields keyed `tab<Child>`.field (documented:
        frappe.model.db_query joins `tab<Child>` on parent = name when a field is
        qualified with a child table; agiliq.com/blog/2018/07/frappe-advanced-queries)."""
        children = {m.group(1) for f in fields if (m := re.match(r"`tab([^`]+)`\.", f))}
        children.discard(doctype)
        rows = list(self.docs[doctype])
        for child in children:
            rows = [
                {**parent, **{f"`tab{child}`.{k}": v for k, v in item.items()}}
                for parent in rows
                for item in self.docs[child]
                if item["parent"] == parent["name"]
            ]
        return rows

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: Any
    ) -> Answer:
        # documented: token auth is "Authorization: token key:secret" (docs.frappe.io
        # framework/user/en/api/rest); a bad token is AuthenticationError, HTTP 401
        # (frappe/exceptions.py); the exact body keys are # assumed
        if headers.get("Authorization") != self.token:
            return _json(
                401,
                {
                    "exc_type": "AuthenticationError",
                    "exception": "frappe.exceptions.AuthenticationError",
                },
            )
        m = re.fullmatch(r"/api/resource/([^/]+)(?:/(.+))?", path)
        if not m:
            return _json(404, {"exc_type": "DoesNotExistError"})
        doctype, name = m.group(1), m.group(2)
        # # assumed (as docs/adapters/erpnext.md says; not found in Frappe's own docs
        # here): a child doctype is listed only with ?parent=<parent doctype>, else
        # PermissionError "Not permitted"
        if doctype == "Sales Invoice Item" and query.get("parent") != "Sales Invoice":
            return _json(
                403,
                {
                    "exc_type": "PermissionError",
                    "exception": "frappe.exceptions.PermissionError: Not permitted",
                },
            )
        docs = self.docs.get(doctype)
        if docs is None:
            return _json(
                404, {"exc_type": "DoesNotExistError", "exception": f"DocType {doctype} not found"}
            )
        if name is None and method == "GET":
            fields = json.loads(query.get("fields", '["name"]'))
            rows = self._joined(doctype, fields)
            for term in json.loads(query.get("filters", "[]")):
                # documented: a filter is [field, op, value] or [doctype, field, op, value]
                # (docs.frappe.io .../rest_api/listing_documents)
                table, (field, op, value) = (
                    (term[0], term[1:]) if len(term) == 4 else (doctype, term)
                )
                key = field if table == doctype else f"`tab{table}`.{field}"
                if op == "=":
                    rows = [r for r in rows if r.get(key, value) == value]
                elif op == ">=":
                    rows = [r for r in rows if str(r.get(key, "")) >= value]
                elif op == "like":
                    prefix = value.rstrip("%")
                    rows = [r for r in rows if str(r.get(key, "")).startswith(prefix)]
                else:
                    raise ValueError(op)
            # documented: 20 rows unless limit_page_length says otherwise, 0 for all;
            # limit_start is the offset (docs.frappe.io .../listing-documents); the
            # fake ignores order_by and keeps insertion order (# assumed stable)
            start, length = (
                int(query.get("limit_start", 0)),
                int(query.get("limit_page_length", 20)),
            )
            rows = rows[start : start + length] if length else rows[start:]
            if fields != ["*"]:
                rows = [_select(r, fields, doctype) for r in rows]
            return _json(200, {"data": rows})
        if name is None and method == "POST" and doctype == "Translation":
            # # assumed: a Translation's name is a random hash (autoname "hash"); the
            # fake numbers them
            doc = {**body, "name": f"TR-{len(docs) + 1:04d}", "modified": self.stamp()}
            docs.append(doc)
            return _json(200, {"data": doc})
        if name is None and method == "POST" and doctype == "Custom Field":
            if any(d["fieldname"] == body["fieldname"] for d in docs):
                # documented: DuplicateEntryError is HTTP 409 (frappe/exceptions.py)
                return _json(409, {"exc_type": "DuplicateEntryError"})
            # documented: in_list_view and in_standard_filter are Check fields of
            # Custom Field, 0 unless set (frappe/custom/doctype/custom_field/custom_field.json)
            doc = {
                "in_list_view": 0,
                "in_standard_filter": 0,
                **body,
                "name": f"{body['dt']}-{body['fieldname']}",
            }
            docs.append(doc)
            for customer in self.docs["Customer"]:
                customer[body["fieldname"]] = None
            return _json(200, {"data": doc})
        doc = next((d for d in docs if d["name"] == name), None)
        if doc is None:
            return _json(
                404,
                {
                    "exc_type": "DoesNotExistError",
                    "exception": f"frappe.exceptions.DoesNotExistError: {doctype} {name} not found",
                },
            )
        if method == "PUT":
            limits = {
                d["fieldname"]: 140 for d in self.docs["Custom Field"] if d["fieldtype"] == "Data"
            }
            for key, value in body.items():
                if (
                    doctype == "Customer"
                    and isinstance(value, str)
                    and len(value) > limits.get(key, len(value))
                ):
                    # documented: a Data field is varchar(140) and a longer value is refused
                    # with CharacterLengthExceededError, a ValidationError (HTTP 417)
                    # (frappe/model/base_document.py _validate_length, frappe/exceptions.py)
                    return _json(
                        417,
                        {
                            "exc_type": "CharacterLengthExceededError",
                            "exception": "frappe.exceptions.CharacterLengthExceededError: "
                            f"Value too big: {key} max characters allowed is 140",
                        },
                    )
            for key, value in body.items():
                # documented: a PUT updates the fields sent and leaves the others;
                # # assumed: an unknown field is ignored, not refused
                if doctype != "Customer" or key in doc:
                    doc[key] = value
            # documented: every save sets the document's modified to now (Document.save ->
            # set_user_and_timestamp), crm-bridge's own writes included; the server's
            # local time is # assumed to be UTC here
            doc["modified"] = self.stamp()
        elif method == "DELETE":
            docs.remove(doc)
            if doctype == "Custom Field":
                for customer in self.docs["Customer"]:
                    customer.pop(doc["fieldname"], None)
            return _json(202, {"message": "ok"})
        return _json(200, {"data": doc})


def _select(row: dict[str, Any], fields: list[str], doctype: str) -> dict[str, Any]:
    """The fields of a listing, ``x as y`` aliases included (documented: frappe.get_list
    fields accept "field as alias"; a qualified field without one is keyed by its
    column name)."""
    out = {}
    for spec in fields:
        source, _, alias = spec.partition(" as ")
        source = source.removeprefix(f"`tab{doctype}`.")
        out[alias or source.rsplit(".", 1)[-1]] = row.get(source)
    return out


# -- Odoo JSON-2 -------------------------------------------------------------------
class Odoo(FakeErp):
    api_key = "odoo-api-key"
    database = "prod"

    def __init__(self, zone: dt.tzinfo | None = None) -> None:
        super().__init__()
        self.zone = zone  # the API user's tz preference (None: unset)
        self.models: dict[str, dict[int, dict[str, Any]]] = {
            "res.partner": {
                i: {
                    "id": i,
                    "name": n,
                    "ref": c,
                    "active": True,
                    "industry_id": False,
                    "create_date": "2024-01-01 10:00:00",
                    "write_date": "2024-02-01 10:00:00",
                    "email": f"{c.lower()}@example.com",
                }
                for i, n, c in CUSTOMERS
            },
            "product.product": {
                i: {
                    "id": i,
                    "default_code": r,
                    "name": lab,
                    "categ_id": [1, "All"],
                    "list_price": float(p),
                    "standard_price": float(c),
                    "active": True,
                }
                for i, r, lab, p, c in PRODUCTS
            },
            "account.move": {},
            "account.move.line": {},
            "ir.model": {77: {"id": 77, "model": "res.partner"}},
            "ir.model.fields": {},
            # documented: res.lang holds every language, active or not, by code
            # (odoo/addons/base/models/res_lang.py); de_DE has no crm-bridge catalog
            "res.lang": {
                i: {"id": i, "code": code, "active": active}
                for i, (code, active) in enumerate(
                    [
                        ("en_US", True),
                        ("ru_RU", True),
                        ("lv_LV", True),
                        ("zh_CN", True),
                        ("de_DE", True),
                        ("fr_FR", False),
                    ],
                    1,
                )
            },
            # documented: the base module's partner list and search views, by XML id
            # (odoo/addons/base/views/res_partner_views.xml); their ids are made up
            "ir.model.data": {
                1: {"id": 1, "module": "base", "name": "view_partner_tree", "res_id": 120},
                2: {"id": 2, "module": "base", "name": "view_res_partner_filter", "res_id": 121},
            },
            "ir.ui.view": {
                120: {"id": 120, "name": "res.partner.list", "model": "res.partner"},
                121: {"id": 121, "name": "res.partner.select", "model": "res.partner"},
            },
        }
        names = dict((i, n) for i, n, _ in CUSTOMERS)
        line_id = 1000
        for i, cust, day, kind, state, lines in INVOICES:
            sign = -1 if kind == "credit_note" else 1
            move_type = "out_refund" if kind == "credit_note" else "out_invoice"
            total = 0.0
            for product, qty, price in lines:
                line_id += 1
                total += qty * price
                self.models["account.move.line"][line_id] = {
                    "id": line_id,
                    "move_id": [i, f"INV/{i}"],
                    "partner_id": [cust, names[cust]],
                    "product_id": [product, PRODUCTS[product - 1][2]],
                    "quantity": qty,
                    "price_unit": price,
                    "price_subtotal": qty * price,
                    "move_type": move_type,
                    "display_type": "product",
                }
            self.models["account.move"][i] = {
                "id": i,
                "partner_id": [cust, names[cust]],
                "name": f"INV/2024/{i:05d}",
                "move_type": move_type,
                "state": "draft" if state == "draft" else "posted",
                "payment_state": "paid" if state == "paid" else "not_paid",
                "invoice_date": f"2024-03-{day:02d}",
                "invoice_date_due": f"2024-04-{day:02d}",
                "currency_id": [1, "EUR"],
                "amount_untaxed_signed": sign * total,
                "write_date": "2024-03-30 10:00:00",
            }

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: Any
    ) -> Answer:
        # documented: "Authorization: bearer <api key>", X-Odoo-Database, errors as 4xx/5xx
        # with {name, message, arguments, ...}; a bad key is 401 werkzeug Unauthorized
        # "Invalid apikey" (odoo/documentation content/developer/reference/external_api.rst)
        if headers.get("Authorization") != f"bearer {self.api_key}":
            return _json(
                401, {"name": "werkzeug.exceptions.Unauthorized", "message": "Invalid apikey"}
            )
        if headers.get("X-Odoo-Database") != self.database:  # the 404 is # assumed
            return _json(
                404, {"name": "werkzeug.exceptions.NotFound", "message": "database not found"}
            )
        m = re.fullmatch(r"/json/2/([\w.]+)/(\w+)", path)
        if not m or method != "POST":
            return _json(404, {"name": "werkzeug.exceptions.NotFound", "message": path})
        model, call = m.groups()
        table = self.models.setdefault(model, {})
        handler: Callable[..., Answer] = getattr(self, f"_{call}")
        return handler(model, table, body or {})

    def _context_get(self, model: str, table: Any, kw: dict[str, Any]) -> Answer:
        """documented: res.users.context_get (@api.model) gives the user's lang, tz (false
        when unset) and uid (odoo/addons/base/models/res_users.py)."""
        return _json(200, {"lang": "en_US", "tz": str(self.zone) if self.zone else False, "uid": 2})

    def _search_read(
        self, model: str, table: dict[int, dict[str, Any]], kw: dict[str, Any]
    ) -> Answer:
        try:
            rows = [
                r
                for _, r in sorted(table.items())
                if all(self._match(model, r, t) for t in kw.get("domain", []))
            ]
        except KeyError as exc:
            # documented: Odoo's expression.py refuses a leaf on a field the model lacks
            # ("Invalid field ... in leaf ..."); the HTTP status of JSON-2 is # assumed
            return _json(422, {"name": "builtins.ValueError", "message": str(exc.args[0])})
        if kw.get("limit"):
            rows = rows[: kw["limit"]]
        lang = (kw.get("context") or {}).get("lang")
        if model == "ir.model.fields" and lang:
            rows = [{**r, **r.get("_translated", {}).get(lang, {})} for r in rows]
        # documented: search_read answers a plain list of records with their id; no
        # fields means every field; a many2one is [id, "name"], an empty value false;
        # datetimes are UTC "YYYY-MM-DD HH:MM:SS" (external_api.rst, reference/orm)
        fields = kw.get("fields") or [
            k for k in (rows[0] if rows else {}) if "." not in k and not k.startswith("_")
        ]
        return _json(200, [{"id": r["id"], **{f: r.get(f, False) for f in fields}} for r in rows])

    def _write(self, model: str, table: dict[int, dict[str, Any]], kw: dict[str, Any]) -> Answer:
        if model == "ir.ui.view" and (refused := self._check_view(kw["vals"])):
            return refused
        missing = [i for i in kw["ids"] if i not in table]
        # documented: MissingError "Record does not exist or has been deleted." (odoo
        # exceptions); its JSON-2 status (404) is # assumed
        if missing:
            return _json(
                404,
                {
                    "name": "odoo.exceptions.MissingError",
                    "message": "Record does not exist or has been deleted. "
                    f"(Record: {model}({missing[0]},))",
                },
            )
        known = {f["name"] for f in self.models["ir.model.fields"].values()}
        # # assumed: a write to a field the model lacks is a 422 ValueError (JSON-2
        # answers 422 for bad arguments: odoo/odoo#197801)
        for key in kw["vals"]:
            if model == "res.partner" and key.startswith("x_") and key not in known:
                return _json(
                    422,
                    {"name": "ValueError", "message": f"Invalid field {key!r} on model {model!r}"},
                )
        lang = (kw.get("context") or {}).get("lang")
        for i in kw["ids"]:
            if model == "ir.model.fields" and lang and lang != "en_US":
                # documented: field_description and help are translated fields
                # (translate=True, odoo/addons/base/models/ir_model.py): since Odoo 16 one
                # value per language, a write with the context's lang sets that language's
                # only, a read with it gets that language's, else en_US's (reference/orm
                # "Translations"). # assumed: JSON-2 takes the context as the body's
                # "context" key, as execute_kw takes it as the context keyword argument
                words = ("field_description", "help")
                translatable = {k: v for k, v in kw["vals"].items() if k in words}
                table[i].setdefault("_translated", {}).setdefault(lang, {}).update(translatable)
                continue
            table[i].update(kw["vals"])
            # documented: a write sets the record's write_date (automatic log-access
            # field, stored and sent in UTC as "YYYY-MM-DD HH:MM:SS"), crm-bridge's own
            # writes included (odoo.com/documentation reference/orm "Automatic fields")
            table[i]["write_date"] = self.stamp()
        return _json(200, True)

    def stamp(self) -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    def pay(self, move: int) -> None:
        """A payment reconciled with invoice ``move``: its payment_state is recomputed
        and stored, which moves the move's write_date (# assumed: a stored compute is
        written with the log-access fields) and none of its lines'."""
        self.models["account.move"][move].update(payment_state="paid", write_date=self.stamp())

    def _create(self, model: str, table: dict[int, dict[str, Any]], kw: dict[str, Any]) -> Answer:
        ids = []
        for vals in kw["vals_list"]:
            if model == "ir.ui.view" and (refused := self._check_view(vals)):
                return refused
            if model == "ir.model.fields":
                # documented: a custom field's name must start with x_ (ir.model.fields
                # ValidationError "Custom fields must have a name that starts with 'x_' !")
                if not vals["name"].startswith("x_"):
                    return _json(
                        422,
                        {
                            "name": "odoo.exceptions.ValidationError",
                            "message": "Custom fields must have a name that starts with 'x_' !",
                        },
                    )
                if vals.get("model_id") != 77:
                    return _json(
                        422, {"name": "odoo.exceptions.ValidationError", "message": "bad model_id"}
                    )
                for partner in self.models["res.partner"].values():
                    partner[vals["name"]] = False
            new = max(table, default=0) + 1
            table[new] = {"id": new, "model": "res.partner", **vals}
            ids.append(new)
        return _json(200, ids)

    def _check_view(self, vals: dict[str, Any]) -> Answer | None:
        """Documented: a view is validated when created or written; a <field> the
        model lacks is a ValidationError (ir.ui.view _check_xml, "Field ... does not
        exist in model ..."); an inherited view needs its parent (inherit_id).  The
        fake checks only the x_ fields; the HTTP status is # assumed as for fields."""
        known = {f["name"] for f in self.models["ir.model.fields"].values()}
        if "inherit_id" in vals and vals["inherit_id"] not in self.models["ir.ui.view"]:
            return _json(422, {"name": "odoo.exceptions.ValidationError", "message": "inherit_id"})
        for name in re.findall(r'<field name="(x_\w+)"', str(vals.get("arch", ""))):
            if name not in known:
                return _json(
                    422,
                    {
                        "name": "odoo.exceptions.ValidationError",
                        "message": f'Field "{name}" does not exist in model "res.partner"',
                    },
                )
        return None

    def _unlink(self, model: str, table: dict[int, dict[str, Any]], kw: dict[str, Any]) -> Answer:
        if model == "ir.model.fields":
            # documented: a field still named by a view cannot be deleted (ir_model.py
            # _prepare_update: "Cannot rename/delete fields that are still present in
            # views"); the HTTP status is # assumed
            for i in kw["ids"]:
                name = table[i]["name"]
                for view in self.models["ir.ui.view"].values():
                    if f'name="{name}"' in str(view.get("arch", "")):
                        return _json(
                            422,
                            {
                                "name": "odoo.exceptions.UserError",
                                "message": "Cannot rename/delete fields that are still "
                                f"present in views: {name} in {view['name']}",
                            },
                        )
        for i in kw["ids"]:
            gone = table.pop(i)
            if model == "ir.model.fields":
                for partner in self.models["res.partner"].values():
                    partner.pop(gone["name"], None)
        return _json(200, True)

    # many2one fields a domain may follow with a dotted path (move_id.state)
    RELATIONS: ClassVar[dict[str, str]] = {"move_id": "account.move", "partner_id": "res.partner"}

    def _match(self, model: str, record: dict[str, Any], term: list[Any]) -> bool:
        """One domain leaf on one record; a dotted field follows a many2one.  A field
        the fake does not hold is refused, as Odoo refuses a field the model lacks,
        so a profile cannot filter on something the fake would silently ignore."""
        field, op, value = term
        head, _, rest = field.partition(".")
        if rest:
            target = self.RELATIONS.get(head)
            link = record.get(head)
            if target is None or not isinstance(link, list):
                raise KeyError(f"Invalid field {model}.{field} in leaf {tuple(term)}")
            return self._match(target, self.models[target][link[0]], [rest, op, value])
        if field not in record:
            raise KeyError(f"Invalid field {model}.{field} in leaf {tuple(term)}")
        return _compare(record[field], op, value)


def _compare(held: Any, op: str, value: Any) -> bool:
    if isinstance(held, list) and held and op in ("=", "in"):
        held = held[0]
    if op == "=":
        return bool(held == value)
    if op == "!=":
        return bool(held != value)
    if op == ">":
        return bool(held > value)
    if op == ">=":
        return bool(held >= value)
    if op == "in":
        return held in value
    if op == "=like":
        return str(held).startswith(value.rstrip("%"))
    raise ValueError(op)


class OdooJsonRpc(Odoo):
    """The same Odoo behind the external JSON-RPC endpoint of Odoo 8-18."""

    username, password, uid = "crm", "odoo-pass", 2

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: Any
    ) -> Answer:
        if path != "/jsonrpc" or method != "POST":
            return _json(404, {"message": "not found"})
        params = body["params"]
        if params["service"] == "common" and params["method"] == "login":
            ok = params["args"] == [self.database, self.username, self.password]
            return _json(
                200, {"jsonrpc": "2.0", "id": body["id"], "result": self.uid if ok else False}
            )
        database, uid, password, model, call, args, kwargs = params["args"]
        if (database, uid, password) != (self.database, self.uid, self.password):
            return self._error("odoo.exceptions.AccessDenied", "Access Denied")
        kw = {**dict(zip(POSITIONAL[call], args, strict=False)), **kwargs}
        status, _, text = getattr(self, f"_{call}")(model, self.models.setdefault(model, {}), kw)
        answer = json.loads(text)
        if status != 200:
            return self._error(answer.get("name", "Error"), answer.get("message", ""))
        return _json(200, {"jsonrpc": "2.0", "id": body["id"], "result": answer})

    def _error(self, name: str, message: str) -> Answer:
        return _json(
            200,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "error": {
                    "code": 200,
                    "message": "Odoo Server Error",
                    "data": {"name": name, "message": message, "arguments": [message]},
                },
            },
        )
