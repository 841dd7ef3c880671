"""The Tryton adapter: canonical records over JSON-RPC, values in the ``crm`` dict.

Reads use keyset paging on id (``id > last``, ordered by id) with large pages,
and only stored fields: computed amounts are derived from stored columns
(invoice ``untaxed_amount_cache``, line quantity x unit price) because Tryton's
computed fields read ~50x slower.  Due and payment dates come from the
receivable move lines and their reconciliations.

Writes go through the companion module's ``party.party.crm_apply``: only the
keys that change, each applied only where the party still holds the value the
plan saw, in one server transaction per call of up to ``batch_size``
customers; the keys found edited come back as conflicts.  A call the server
refuses is split until the refused records are isolated, so one bad record
does not fail its neighbours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from crm_bridge import i18n, retry
from crm_bridge.adapter import CONNECTION_SETTINGS, Batch, Capabilities, Check, WriteResult
from crm_bridge.errors import ErpError, RefusedError
from crm_bridge.fields import Field
from crm_bridge.i18n import _
from crm_bridge.quarantine import UNREADABLE
from crm_bridge.snapshot import TABLES
from crm_bridge.topics import sequences

from .rpc import TrytonRPC

MODULE = "crm_bridge"
FIELD_MODEL = "crm_bridge.field"
# The language of the definitions themselves (Tryton's [database] language, en unless
# changed): read and written in it whatever the user's language, so that an admin who
# reads Russian does not provision English labels into the Russian translation.
BASE = {"language": "en"}
# Catalog languages Tryton does not ship (its ir.lang has Lithuanian, not Latvian).
EXTRA_LANGUAGES = {
    "lv": {
        "code": "lv",
        "name": "Latviešu",
        "nplurals": 3,
        "plural": "0 if n % 10 == 0 or 11 <= n % 100 <= 19 else 1 if n % 10 == 1 else 2",
        "date": "%d.%m.%Y",
        "grouping": "[3, 3, 0]",
        "decimal_point": ",",
        "thousands_sep": " ",
        "mon_grouping": "[3, 3, 0]",
        "mon_decimal_point": ",",
        "mon_thousands_sep": " ",
        "p_sign_posn": 1,
        "n_sign_posn": 1,
        "negative_sign": "-",
        "positive_sign": "",
        "p_cs_precedes": False,
        "n_cs_precedes": False,
        "p_sep_by_space": True,
        "n_sep_by_space": True,
    }
}
DICT_FIELD = "crm"
APPLY = "crm_apply"  # the module's conditional key-level write
TYPES = {
    "char": "char",
    "integer": "integer",
    "numeric": "numeric",
    "boolean": "boolean",
    "date": "date",
    "selection": "selection",
}
# The order of the keys on the party's CRM tab: the client sorts a Dict
# widget's keys by their definition's ``sequence`` (it draws no headings),
# set from crm_bridge.topics, topic by topic as an accountant reads them.


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["adapter", "url", "database", "username", "password"],
    "additionalProperties": False,
    "properties": {
        "adapter": {"const": "tryton"},
        "url": {"type": "string", "pattern": "^https?://"},
        "database": {"type": "string", "minLength": 1},
        "username": {"type": "string", "minLength": 1},
        "password": {"type": "string"},
        "page_size": {"type": "integer", "minimum": 10, "maximum": 20000, "default": 2000},
        **CONNECTION_SETTINGS,
    },
}
# The model whose ids are each table's keys (records the server fails to serve
# are reported under their table).
MODELS = {
    "customers": "party.party",
    "products": "product.product",
    "invoices": "account.invoice",
    "invoice_lines": "account.invoice.line",
    "payments": "account.move.line",
    "sale_orders": "sale.sale",
    "sale_order_lines": "sale.line",
    "opportunities": "sale.opportunity",
    "complaints": "sale.complaint",
}
# More records of one model than this failing to read is not a few broken records.
MAX_UNREADABLE = 50
SALE_STATES = {
    "draft": "draft",
    "quotation": "quotation",
    "confirmed": "confirmed",
    "processing": "confirmed",
    "done": "confirmed",
    "cancelled": "cancelled",
}
OPPORTUNITY_STATES = {
    "lead": "lead",
    "opportunity": "opportunity",
    "converted": "won",
    "won": "won",
    "lost": "lost",
    "cancelled": "cancelled",
}


INVOICE_FIELDS = [
    "party",
    "number",
    "state",
    "invoice_date",
    "currency.code",
    "untaxed_amount_cache",
    "move",
    "write_date",
    "create_date",
]
RECEIVABLE = [("account.type.receivable", "=", True), ("move.state", "=", "posted")]
RECEIVABLE_FIELDS = [
    "move",
    "party",
    "maturity_date",
    "reconciliation",
    "debit",
    "credit",
    "move.date",
]


def _changed_since(since: dt.datetime | None, *prefixes: str) -> list[Any]:
    """The domain of records created or written at or after ``since`` (inclusive);
    with prefixes, of records one of whose ``prefix`` records (``""``: itself,
    ``"invoice."``: its invoice) was."""
    if since is None:
        return []
    terms = [(f"{p}{stamp}", ">=", since) for p in prefixes or ("",) for stamp in STAMPS]
    return [["OR", *terms]]


STAMPS = ("write_date", "create_date")


def _first_by_move(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The first receivable line of each move: it holds the due date and reconciliation."""
    by_move: dict[int, dict[str, Any]] = {}
    for line in lines:
        by_move.setdefault(line["move"], line)
    return by_move


def _invoice_row(
    r: dict[str, Any], by_move: dict[int, dict[str, Any]], reconciled: dict[int, Any]
) -> dict[str, Any]:
    """A canonical invoice from the invoice and its receivable line."""
    line = by_move.get(r["move"]) if r["move"] else None
    amount = r["untaxed_amount_cache"]
    paid = reconciled.get(line["reconciliation"]) if line and line["reconciliation"] else None
    state = r["state"] if r["state"] != "validated" else "draft"
    if amount is None and state not in ("posted", "paid"):
        amount = 0  # Tryton stores the amount on posting; a draft's does not count
    return {
        "invoice_id": str(r["id"]),
        "customer_id": _id(r["party"]),
        "number": r["number"],
        "kind": "credit_note" if amount is not None and amount < 0 else "invoice",
        "state": state,
        "date": r["invoice_date"],
        "due_date": line["maturity_date"] if line else None,
        "currency": (r.get("currency.") or {}).get("code") or "",
        "amount": _f(amount),  # None on a posted invoice: set aside, never counted as 0
        "paid_date": paid,
        "updated_at": r["write_date"] or r["create_date"],
    }


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


class TrytonAdapter:
    capabilities = Capabilities(
        multi_record_write=True,
        incremental=("customers", "invoices", "invoice_lines"),
        conditional_writes=True,
    )

    def __init__(self, settings: Mapping[str, Any], sleep: Any = None) -> None:
        self.rpc = TrytonRPC(
            settings["url"],
            settings["database"],
            settings["username"],
            settings["password"],
            timeout=float(settings.get("timeout", 120)),
            verify=settings.get("verify_tls", True),
            sleep=sleep,
        )
        self.page_size = int(settings.get("page_size", 2000))
        retry.limit_rate(self.rpc.http, settings.get("requests_per_second"))
        self._models: set[str] | None = None
        self._current: dict[str, dict[str, Any]] | None = None
        # Lookups one table's reader builds and a later one needs (invoice -> party
        # for the lines, move -> invoice for the payments...): read once per run.
        self._lookups: dict[str, Any] = {}
        # Records the server failed to read: {model: {id: the server's error}}.
        self.unreadable: dict[str, dict[int, str]] = {}
        self._has_sequence: bool | None = None

    def close(self) -> None:
        self.rpc.close()

    # -- reading ------------------------------------------------------------
    def models(self) -> set[str]:
        if self._models is None:
            rows = self.rpc.call("model.ir.model.search_read", [], 0, None, None, ["name"])
            self._models = {r["name"] for r in rows}
        return self._models

    def pages(
        self, model: str, domain: list[Any], fields: list[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Keyset paging on id: stable under concurrent inserts, constant cost per page.

        A page the server fails to read (a value stored in the database that Tryton
        cannot parse, e.g. a date written as '31/12/2025', fails every search that
        meets it) is read again by id ranges, halved until the records it cannot
        serve are isolated; they are left out and kept in ``unreadable`` with the
        server's error, and the rest is read.
        """
        if model not in self.models():
            return
        last = 0
        fields = ["id", *fields]
        order = [("id", "ASC")]
        while True:
            page = [*domain, ("id", ">", last)]
            try:
                rows = self.rpc.call(
                    f"model.{model}.search_read", page, 0, self.page_size, order, fields
                )
            except RefusedError as exc:
                # At most a page of records lies in the next page_size ids.
                rows = self._isolate(model, domain, fields, last, last + self.page_size, exc)
                if rows:
                    yield rows
                last += self.page_size
                continue
            if not rows:
                return
            yield rows
            if len(rows) < self.page_size:
                return
            last = rows[-1]["id"]

    def _isolate(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        low: int,
        high: int,
        error: RefusedError,
    ) -> list[dict[str, Any]]:
        """The records with ``low < id <= high`` the server can read; the others are
        noted in ``unreadable``."""
        failed = self.unreadable.setdefault(model, {})

        def read(low: int, high: int) -> list[dict[str, Any]]:
            try:
                rows: list[dict[str, Any]] = self.rpc.call(
                    f"model.{model}.search_read",
                    [*domain, ("id", ">", low), ("id", "<=", high)],
                    0,
                    None,
                    [("id", "ASC")],
                    fields,
                )
                return rows
            except RefusedError as exc:
                if high - low == 1:
                    failed[high] = str(exc).split("search_read: ", 1)[-1]
                    if len(failed) > MAX_UNREADABLE:  # the read itself fails
                        raise ErpError(
                            f"{error}; Tryton fails to read more than {MAX_UNREADABLE} "
                            f"records of {model} this way (ids {', '.join(map(str, failed))})",
                            hint="not a few broken records: check the server's log and the "
                            "user's access rights",
                        ) from None
                    return []
                middle = (low + high) // 2
                return read(low, middle) + read(middle, high)

        return read(low, high)

    def _lookup(self, key: str, load: Callable[[], Any]) -> Any:
        """The lookup ``key``, as an earlier reader left it or loaded now."""
        if key not in self._lookups:
            self._lookups[key] = load()
        return self._lookups[key]

    def _all(self, model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
        return [r for page in self.pages(model, domain, fields) for r in page]

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        reader = getattr(self, f"_read_{table}")
        yield from reader(since) if since and table in self.capabilities.incremental else reader()
        failed = self.unreadable.pop(MODELS[table], {})
        if failed:  # a page of its own: the records the server could not serve
            key = next(iter(TABLES[table]))
            yield [{key: str(i), UNREADABLE: e} for i, e in sorted(failed.items())]

    def first_fiscal_date(self) -> dt.date | None:
        """The start of the company's first fiscal year: earlier dates are implausible."""
        if "account.fiscalyear" not in self.models():
            return None
        rows = self.rpc.call(
            "model.account.fiscalyear.search_read",
            [],
            0,
            1,
            [("start_date", "ASC")],
            ["start_date"],
        )
        return rows[0]["start_date"] if rows else None

    def _read_customers(self, since: dt.datetime | None = None) -> Iterator[list[dict[str, Any]]]:
        categories = {r["id"]: r["name"] for r in self._all("party.category", [], ["name"])}
        has_crm = MODULE in self._activated()
        fields = ["name", "code", "active", "categories", "create_date", "write_date"]
        self._current = {}
        domain: list[Any] = [("active", "in", [True, False]), *_changed_since(since)]
        for page in self.pages("party.party", domain, fields + ([DICT_FIELD] if has_crm else [])):
            rows = []
            for r in page:
                cats = [categories[c] for c in r["categories"] if c in categories]
                rows.append(
                    {
                        "customer_id": str(r["id"]),
                        "name": r["name"],
                        "code": r["code"],
                        "active": r["active"],
                        "industry": cats[0] if cats else None,
                        "created_at": r["create_date"],
                        "updated_at": r["write_date"] or r["create_date"],
                    }
                )
                if r.get(DICT_FIELD):
                    self._current[str(r["id"])] = r[DICT_FIELD]
            yield rows

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        if self._current is None:
            for _ in self._read_customers():
                pass
        assert self._current is not None
        yield list(self._current.items())

    def _read_products(self) -> Iterator[list[dict[str, Any]]]:
        fields = ["code", "name", "list_price", "cost_price"]
        domain: list[Any] = [("active", "in", [True, False])]
        costs: dict[int, Any] = {}
        for page in self.pages("product.product", domain, fields):
            costs.update((r["id"], r["cost_price"]) for r in page)
            yield [
                {
                    "product_id": str(r["id"]),
                    "code": r["code"],
                    "name": r["name"],
                    "category": None,
                    "list_price": _f(r["list_price"]),
                    "cost_price": _f(r["cost_price"]),
                }
                for r in page
            ]
        self._lookups["product_cost"] = costs

    def _receivable_lines(self) -> list[dict[str, Any]]:
        return self._all("account.move.line", RECEIVABLE, RECEIVABLE_FIELDS)

    def _invoice_lookup(self, key: str) -> Any:
        """``invoice_party`` or ``invoice_of_move``, left by ``_read_invoices`` or read now."""
        if key not in self._lookups:
            invoices = self._all("account.invoice", [("type", "=", "out")], ["party", "move"])
            self._lookups["invoice_party"] = {r["id"]: r["party"] for r in invoices}
            self._lookups["invoice_of_move"] = {
                r["move"]: str(r["id"]) for r in invoices if r["move"]
            }
        return self._lookups[key]

    def _read_invoices(self, since: dt.datetime | None = None) -> Iterator[list[dict[str, Any]]]:
        if since:
            yield from self._read_invoices_since(since)
            return
        by_move = _first_by_move(self._lookup("receivables", self._receivable_lines))
        reconciled = {
            r["id"]: r["date"] for r in self._all("account.move.reconciliation", [], ["date"])
        }
        invoice_party: dict[int, Any] = {}
        invoice_of_move: dict[int, str] = {}
        for page in self.pages("account.invoice", [("type", "=", "out")], INVOICE_FIELDS):
            invoice_party.update((r["id"], r["party"]) for r in page)
            invoice_of_move.update((r["move"], str(r["id"])) for r in page if r["move"])
            yield [_invoice_row(r, by_move, reconciled) for r in page]
        self._lookups.update(invoice_party=invoice_party, invoice_of_move=invoice_of_move)

    def _read_invoices_since(self, since: dt.datetime) -> Iterator[list[dict[str, Any]]]:
        """Invoices changed since, with the receivable lines of their own moves."""
        domain = [("type", "=", "out"), *_changed_since(since)]
        invoices = self._all("account.invoice", domain, INVOICE_FIELDS)
        moves = [r["move"] for r in invoices if r["move"]]
        lines = self._all_in("account.move.line", "move", moves, RECEIVABLE_FIELDS, RECEIVABLE)
        ids = sorted({r["reconciliation"] for r in lines if r["reconciliation"]})
        reconciled = {
            r["id"]: r["date"]
            for r in self._all_in("account.move.reconciliation", "id", ids, ["date"])
        }
        by_move = _first_by_move(lines)
        self._lookups[f"invoice_party@{since.isoformat()}"] = {
            r["id"]: r["party"] for r in invoices
        }
        for start in range(0, len(invoices), self.page_size):
            page = invoices[start : start + self.page_size]
            yield [_invoice_row(r, by_move, reconciled) for r in page]

    def _all_in(
        self, model: str, field: str, values: list[Any], fields: list[str], domain: Any = ()
    ) -> list[dict[str, Any]]:
        """The records whose ``field`` is one of ``values``, asked a page of values at a time."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(values), self.page_size):
            chunk = values[start : start + self.page_size]
            out += self._all(model, [*domain, (field, "in", chunk)], fields)
        return out

    def _read_invoice_lines(
        self, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        if since:
            invoices = self._lookup(
                f"invoice_party@{since.isoformat()}",
                lambda: {
                    r["id"]: r["party"]
                    for r in self._all(
                        "account.invoice",
                        [("type", "=", "out"), *_changed_since(since)],
                        ["party"],
                    )
                },
            )
        else:
            invoices = self._invoice_lookup("invoice_party")
        costs = self._lookup(
            "product_cost",
            lambda: {
                r["id"]: r["cost_price"]
                for r in self._all(
                    "product.product", [("active", "in", [True, False])], ["cost_price"]
                )
            },
        )
        fields = ["invoice", "product", "quantity", "unit_price"]
        domain = [
            ("invoice.type", "=", "out"),
            ("type", "=", "line"),
            # a line written on its own (its invoice not) is read too
            *_changed_since(since, "", "invoice."),
        ]
        for page in self.pages("account.invoice.line", domain, fields):
            others = sorted({r["invoice"] for r in page} - set(invoices))
            if others:  # lines changed since, their invoices not: their parties
                found = self._all_in("account.invoice", "id", others, ["party"])
                invoices = {**invoices, **{r["id"]: r["party"] for r in found}}
            rows = []
            for r in page:
                qty = Decimal(str(r["quantity"] or 0))
                price = r["unit_price"] or Decimal(0)
                cost = costs.get(r["product"])
                rows.append(
                    {
                        "line_id": str(r["id"]),
                        "invoice_id": _id(r["invoice"]),
                        "customer_id": _id(invoices.get(r["invoice"])),
                        "product_id": _id(r["product"]),
                        "quantity": float(qty),
                        "unit_price": float(price),
                        "amount": float(round(qty * price, 2)),
                        "cost": float(round(qty * cost, 2)) if cost is not None else None,
                    }
                )
            yield rows

    def _read_payments(self) -> Iterator[list[dict[str, Any]]]:
        lines = self._lookup("receivables", self._receivable_lines)
        moves = self._invoice_lookup("invoice_of_move")
        # The moves of every invoice, also of one the server failed to read: its
        # receivable line is not a payment.
        origin = [("origin", "like", "account.invoice,%")]
        invoice_moves = set(moves) | {r["id"] for r in self._all("account.move", origin, [])}
        invoice_of_reconciliation = {
            line["reconciliation"]: moves[line["move"]]
            for line in lines
            if line["reconciliation"] and line["move"] in moves
        }
        yield [
            {
                "payment_id": str(line["id"]),
                "invoice_id": invoice_of_reconciliation.get(line["reconciliation"]),
                "customer_id": _id(line["party"]),
                "date": (line.get("move.") or {}).get("date"),
                "amount": float(line["credit"] - line["debit"]),
            }
            for line in lines
            if line["move"] not in invoice_moves and line["party"]
        ]

    def _sale_lines(self) -> list[dict[str, Any]]:
        fields = ["sale", "product", "quantity", "unit_price"]
        return self._all("sale.line", [("type", "=", "line")], fields)

    def _read_sale_orders(self) -> Iterator[list[dict[str, Any]]]:
        totals: dict[int, Decimal] = {}
        for line in self._lookup("sale_lines", self._sale_lines):
            totals[line["sale"]] = totals.get(line["sale"], Decimal(0)) + Decimal(
                str(line["quantity"] or 0)
            ) * (line["unit_price"] or 0)
        fields = ["party", "sale_date", "quotation_date", "state", "create_date"]
        parties: dict[int, Any] = {}
        for page in self.pages("sale.sale", [], fields):
            parties.update((r["id"], r["party"]) for r in page)
            yield [
                {
                    "order_id": str(r["id"]),
                    "customer_id": _id(r["party"]),
                    "date": r["sale_date"] or r["quotation_date"] or r["create_date"].date(),
                    "state": SALE_STATES.get(r["state"], "draft"),
                    "amount": float(round(totals.get(r["id"], Decimal(0)), 2)),
                }
                for r in page
            ]
        self._lookups["sale_party"] = parties

    def _read_sale_order_lines(self) -> Iterator[list[dict[str, Any]]]:
        parties = self._lookup(
            "sale_party",
            lambda: {r["id"]: r["party"] for r in self._all("sale.sale", [], ["party"])},
        )
        lines = self._lookup("sale_lines", self._sale_lines)
        for start in range(0, len(lines), self.page_size):
            page = lines[start : start + self.page_size]
            yield [
                {
                    "line_id": str(r["id"]),
                    "order_id": _id(r["sale"]),
                    "customer_id": _id(parties.get(r["sale"])),
                    "product_id": _id(r["product"]),
                    "quantity": float(r["quantity"] or 0),
                    "amount": float(
                        round(Decimal(str(r["quantity"] or 0)) * (r["unit_price"] or 0), 2)
                    ),
                }
                for r in page
            ]

    def _read_opportunities(self) -> Iterator[list[dict[str, Any]]]:
        products: dict[int, int] = {}
        for line in self._all("sale.opportunity.line", [], ["opportunity", "product"]):
            products.setdefault(line["opportunity"], line["product"])
        fields = ["party", "start_date", "state", "amount", "lost_reason"]
        for page in self.pages("sale.opportunity", [], fields):
            yield [
                {
                    "opportunity_id": str(r["id"]),
                    "customer_id": _id(r["party"]),
                    "date": r["start_date"],
                    "state": OPPORTUNITY_STATES.get(r["state"], "lead"),
                    "product_id": _id(products.get(r["id"])),
                    "amount": _f(r["amount"]),
                    "lost_reason": r["lost_reason"],
                }
                for r in page
            ]

    def _read_complaints(self) -> Iterator[list[dict[str, Any]]]:
        fields = ["customer", "date", "type.name", "description", "state"]
        for page in self.pages("sale.complaint", [], fields):
            yield [
                {
                    "complaint_id": str(r["id"]),
                    "customer_id": _id(r["customer"]),
                    "date": r["date"],
                    "type": (r.get("type.") or {}).get("name"),
                    "description": r["description"],
                    "state": r["state"],
                }
                for r in page
            ]

    # -- fields -------------------------------------------------------------
    def _activated(self) -> set[str]:
        rows = self.rpc.call(
            "model.ir.module.search_read", [("state", "=", "activated")], 0, None, None, ["name"]
        )
        return {r["name"] for r in rows}

    def _ordered(self) -> bool:
        """Whether the module's key definitions have a ``sequence`` (the CRM tab's
        order; a module from before it has none)."""
        if self._has_sequence is None:
            got = self.rpc.call(f"model.{FIELD_MODEL}.fields_get", ["sequence"])
            self._has_sequence = "sequence" in got
        return self._has_sequence

    def _definitions(self) -> dict[str, dict[str, Any]]:
        columns = ["name", "string", "help", "type_", "selection", "digits", "owner"]
        return {
            r["name"]: r
            for r in self.rpc.call(
                f"model.{FIELD_MODEL}.search_read",
                [],
                0,
                None,
                None,
                [*columns, "sequence"] if self._ordered() else columns,
                context=BASE,
            )
        }

    @staticmethod
    def _definition(field: Field) -> dict[str, Any]:
        return {
            "name": field.name,
            "string": field.label,
            "help": field.help or None,
            "type_": TYPES[field.type],
            "owner": field.owner,
            "selection": "\n".join(f"{k}:{v}" for k, v in field.choices) or None,
            "digits": field.digits if field.type == "numeric" else None,
        }

    def field_status(self, fields: Sequence[Field]) -> dict[str, str]:
        """{field: "missing" or "changed"} for each field whose definition in
        Tryton is absent or differs from its declaration (the tab's order aside);
        up-to-date ones left out."""
        existing = self._definitions()
        out = {}
        for field in fields:
            old = existing.get(field.name)
            if old is None:
                out[field.name] = "missing"
            elif any(old.get(k) != v for k, v in self._definition(field).items()):
                out[field.name] = "changed"
        return out

    def provision(self, fields: Sequence[Field]) -> list[str]:
        existing = self._definitions()
        position = sequences(fields)
        changes, creates = [], []
        for field in fields:
            values = self._definition(field)
            if self._ordered():
                values["sequence"] = position[field.name]
            old = existing.get(field.name)
            if old is None:
                creates.append(values)
                changes.append(f"created {field.name}")
            elif any(old.get(k) != v for k, v in values.items()):
                self.rpc.call(f"model.{FIELD_MODEL}.write", [old["id"]], values, context=BASE)
                changes.append(f"updated {field.name}")
        if creates:
            self.rpc.call(f"model.{FIELD_MODEL}.create", creates, context=BASE)
        return changes

    def languages(self) -> list[str]:
        """The catalog languages other than the base one that Tryton has active
        (``translatable``: loaded, so that users can choose them)."""
        active = self.rpc.call(
            "model.ir.lang.search_read", [("translatable", "=", True)], 0, None, None, ["code"]
        )
        codes = {r["code"] for r in active}
        return [c for c in i18n.LANGUAGES if c in codes and c != BASE["language"]]

    def activate_languages(self, codes: Sequence[str]) -> list[str]:
        """Make the languages ``codes`` choosable in Tryton (as "Load translations" in
        Administration > Languages does, Tryton's own texts included); Latvian, which
        Tryton does not ship, is created first.  Returns the codes newly activated."""
        rows = self.rpc.call(
            "model.ir.lang.search_read",
            [("code", "in", list(codes))],
            0,
            None,
            None,
            ["code", "translatable"],
            context={"active_test": False},
        )
        found = {r["code"]: r for r in rows}
        missing = [c for c in codes if c not in found and c in EXTRA_LANGUAGES]
        if missing:
            self.rpc.call("model.ir.lang.create", [EXTRA_LANGUAGES[c] for c in missing])
            return self.activate_languages(codes)
        todo = [r for r in rows if not r["translatable"]]
        if todo:
            self.rpc.call("model.ir.lang.write", [r["id"] for r in todo], {"active": True})
            self.rpc.call("model.ir.lang.load_translations", [r["id"] for r in todo])
        return [r["code"] for r in todo]

    def provision_translations(
        self, fields: Sequence[Field], languages: Sequence[str] | None = None
    ) -> list[str]:
        """Write each field's label, help text and choice names in every language Tryton
        has active (of ``languages``, when given): the translations of the key definitions.
        What already reads the same is left alone, so a second run writes nothing."""
        wanted = [c for c in self.languages() if languages is None or c in languages]
        changes = []
        columns = ["name", "string", "help", "selection"]
        for language in wanted:
            held = {
                r["name"]: r
                for r in self.rpc.call(
                    f"model.{FIELD_MODEL}.search_read",
                    [("name", "in", [f.name for f in fields])],
                    0,
                    None,
                    None,
                    ["id", *columns],
                    context={"language": language},
                )
            }
            pairs: list[Any] = []  # one write per language: [ids], values, [ids], values...
            with i18n.using(language):
                for field in fields:
                    old = held.get(field.name)
                    if old is None:
                        continue
                    values = {
                        "string": i18n._(field.label),
                        "help": i18n._(field.help) or None,
                        "selection": "\n".join(f"{k}:{i18n._(v)}" for k, v in field.choices)
                        or None,
                    }
                    if any(old.get(k) != v for k, v in values.items()):
                        pairs += [[old["id"]], values]
                        changes.append(f"translated {field.name} ({language})")
            if pairs:
                self.rpc.call(f"model.{FIELD_MODEL}.write", *pairs, context={"language": language})
        return changes

    def retire(self, name: str) -> int:
        """Remove the key from every party's dict, then its definition."""
        held = [cid for page in self.current_values() for cid, values in page if name in values]
        for start in range(0, len(held), 500):
            result = self.write([Batch(tuple(held[start : start + 500]), {name: None})])
            if result.rejected:
                cid, reason = next(iter(result.rejected.items()))
                raise ErpError(f"Tryton refused to clear {name!r} on party {cid}: {reason}")
        ids = [
            r["id"]
            for r in self.rpc.call(
                f"model.{FIELD_MODEL}.search_read", [("name", "=", name)], 0, None, None, ["id"]
            )
        ]
        if ids:
            self.rpc.call(f"model.{FIELD_MODEL}.delete", ids)
        self._current = None
        return len(held)

    def check(self, fields: Sequence[Field]) -> list[Check]:
        out = []
        try:
            version = self.rpc.version()
            where = _("Tryton {version} at {url}").format(version=version, url=self.rpc.url)
            out.append(Check("reachable", True, where))
        except ErpError as exc:
            return [Check("reachable", False, str(exc), exc.hint)]
        try:
            self.rpc.login()
            who = _("logged in as {user}").format(user=self.rpc.username)
            out.append(Check("login", True, who))
        except ErpError as exc:
            return [*out, Check("login", False, str(exc), exc.hint)]
        if MODULE not in self._activated():
            return [
                *out,
                Check(
                    "module",
                    False,
                    _("the Tryton module {module!r} is not activated").format(module=MODULE),
                    _(
                        "pip install trytond-crm-bridge on the Tryton server, then "
                        "trytond-admin -d {database} -u {module} --activate-dependencies"
                    ).format(database=self.rpc.database, module=MODULE),
                ),
            ]
        try:
            self.rpc.call(f"model.party.party.{APPLY}", [])
        except ErpError:
            return [
                *out,
                Check(
                    "module",
                    False,
                    _(
                        "the Tryton module {module!r} is older than this crm-bridge "
                        "(it has no conditional write, party.party.{method})"
                    ).format(module=MODULE, method=APPLY),
                    _(
                        "upgrade trytond-crm-bridge on the Tryton server, then "
                        "trytond-admin -d {database} -u {module}"
                    ).format(database=self.rpc.database, module=MODULE),
                ),
            ]
        out.append(Check("module", True, _("module {module} activated").format(module=MODULE)))
        status = self.field_status(fields)
        missing = sorted(n for n, s in status.items() if s == "missing")
        changed = sorted(n for n, s in status.items() if s == "changed")
        detail = _("{present}/{declared} fields provisioned").format(
            present=len(fields) - len(missing), declared=len(fields)
        )
        if missing:
            detail += _(", missing: {names}").format(names=", ".join(missing[:5]))
        if changed:
            detail += _(
                "; {n} defined differently from what the plugins now declare "
                "(a plugin was upgraded): {names}"
            ).format(n=len(changed), names=", ".join(changed[:5]))
        out.append(
            Check(
                "fields",
                not status,
                detail,
                _(
                    "crm-bridge fields provision (creates the missing definitions and updates "
                    "the changed ones; until then sync leaves these fields out of its writes)"
                )
                if status
                else None,
            )
        )
        try:
            self.rpc.call("model.party.party.write", [], {})
            self.rpc.call(f"model.{FIELD_MODEL}.search_read", [], 0, 1, None, ["name"])
            out.append(Check("permissions", True, _("may read and write parties")))
        except ErpError as exc:
            out.append(
                Check(
                    "permissions",
                    False,
                    str(exc),
                    _("give the user the Party Administration group in Tryton"),
                )
            )
        return out

    # -- writing ------------------------------------------------------------
    def write(self, batches: Sequence[Batch]) -> WriteResult:
        result = WriteResult()
        try:
            self._write(list(batches), result)
        except ErpError as exc:  # halves written before the failure are kept
            exc.partial = result
            raise
        return result

    def _write(self, batches: list[Batch], result: WriteResult) -> None:
        changes = [
            [int(c), dict(batch.values), dict(batch.expected)]
            for batch in batches
            for c in batch.customer_ids
        ]
        try:
            conflicts = self.rpc.call(f"model.party.party.{APPLY}", changes)
        except ErpError as exc:
            if "refused" not in str(exc):
                raise
            ids = [c for b in batches for c in b.customer_ids]
            if len(ids) == 1:
                result.rejected[ids[0]] = str(exc).split(f"refused model.party.party.{APPLY}: ")[-1]
                return
            for half in _halves(batches):
                self._write(half, result)
            return
        result.written.extend(c for b in batches for c in b.customer_ids)
        for party, key, found in conflicts or []:
            result.conflicts.setdefault(str(party), {})[key] = found


def _halves(batches: list[Batch]) -> list[list[Batch]]:
    if len(batches) > 1:
        mid = len(batches) // 2
        return [batches[:mid], batches[mid:]]
    ids, values = batches[0].customer_ids, batches[0].values
    mid = len(ids) // 2
    return [[Batch(ids[:mid], values)], [Batch(ids[mid:], values)]]
