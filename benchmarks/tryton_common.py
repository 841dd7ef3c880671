"""What the Tryton benchmarks share: growing the demo database, the hand-written client.

Not a benchmark itself: ``extraction.py``, ``writeback.py`` and ``tryton_sync.py``
import it (a script's own folder is first on ``sys.path``).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import requests
from crm_bridge.adapters.tryton.rpc import _default, _object_hook
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, _env, build_template

from crm_bridge.sample_data import Profile

# Grows a copy of the demo's database to ``customers`` parties, each with one
# draft invoice of ``per_invoice`` lines (created through the ORM: posting is
# Tryton's slow part and does not change what is read); with "post", the new
# invoices are posted too (~60 ms an invoice), dated on the last posted one's day
# (invoice numbers follow dates), so that every customer has revenue to analyse.
GROW = """
import sys
from decimal import Decimal
from trytond.pool import Pool
from trytond.transaction import Transaction
database, customers, per_invoice = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
post = sys.argv[4:] == ["post"]
pool = Pool(database); pool.init()
with Transaction().start(database, 1, context={"company": 1}) as t:
    Party = pool.get("party.party"); Invoice = pool.get("account.invoice")
    Product = pool.get("product.product"); Journal = pool.get("account.journal")
    Term = pool.get("account.invoice.payment_term")
    template = Invoice.search([("type", "=", "out")], limit=1)[0]
    products = Product.search([], limit=20)
    (journal,) = Journal.search([("type", "=", "revenue")], limit=1)
    have = Party.search_count([])
    parties = []
    for start in range(have, customers, 200):
        parties += Party.create([{"name": f"Bench {i}", "code": f"B{i:06d}",
                                  "addresses": [("create", [{}])]}
                                 for i in range(start, min(start + 200, customers))])
        t.commit()
    account = template.account.id
    revenue = template.lines[0].account.id
    unit = template.lines[0].unit.id
    created = []
    for start in range(0, len(parties), 100):
        created += Invoice.create([{
            "type": "out", "company": template.company.id, "currency": template.currency.id,
            "party": p.id, "invoice_address": p.addresses[0].id, "account": account,
            "journal": journal.id, "payment_term": template.payment_term.id,
            "invoice_date": template.invoice_date,
            "lines": [("create", [{
                "type": "line", "product": products[(p.id + k) % len(products)].id,
                "description": "bench", "account": revenue, "unit": unit,
                "quantity": 1 + k, "unit_price": Decimal("9.90") + k,
            } for k in range(per_invoice)])],
        } for p in parties[start:start + 100]])
        t.commit()
    created = [i.id for i in created]
locks = {"_lock_tables": ["ir_sequence", "ir_sequence_strict", "account_journal_period"]}
context = {"company": 1, "_skip_warnings": True}
with Transaction().start(database, 1, readonly=False, context=context, **locks) as t:
    Invoice = pool.get("account.invoice")
    Invoice.print_invoice = classmethod(lambda cls, invoices: None)  # no report
    drafts = created if post else []
    if drafts:
        last = Invoice.search([("type", "=", "out"), ("state", "in", ["posted", "paid"])],
                              order=[("invoice_date", "DESC")], limit=1)[0].invoice_date
        Invoice.write(Invoice.browse(drafts), {"invoice_date": last})
    for start in range(0, len(drafts), 100):
        Invoice._post(Invoice.browse(drafts[start:start + 100]))
        t.commit()
        if start % 2000 == 0:
            print(f"posted {start + 100:,} of {len(drafts):,}", file=sys.stderr, flush=True)
"""


def grown_database(
    folder: Path, customers: int, per_invoice: int, database: str = "bench", post: bool = False
) -> Path:
    """The demo's template copied to ``folder/<database>.sqlite`` and grown (the new
    invoices posted with ``post``); the template."""
    template = build_template(Profile())
    shutil.copyfile(template, folder / f"{database}.sqlite")
    subprocess.run(
        [
            sys.executable,
            "-O",
            "-c",
            GROW,
            database,
            str(customers),
            str(per_invoice),
            *(["post"] if post else []),
        ],
        env=_env(folder),
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return template


class Raw:
    """The hand-written client: session auth, plain requests, keyset pages."""

    def __init__(self, url: str, database: str = "bench") -> None:
        self.url = f"{url}/{database}/rpc/"
        self.s = requests.Session()
        self.s.headers["Content-Type"] = "application/json"
        uid, key = self.call("common.db.login", ["admin", {"password": ADMIN_PASSWORD}, "en"])[:2]
        token = base64.b64encode(f"admin:{uid}:{key}".encode()).decode()
        self.s.headers["Authorization"] = f"Session {token}"
        self.ctx = self.call("model.res.user.get_preferences", [True, {}])

    def call(self, method: str, params: list) -> object:
        body = json.dumps({"id": 1, "method": method, "params": params}, default=_default)
        out = json.loads(
            self.s.post(self.url, data=body, timeout=300).text, object_hook=_object_hook
        )
        assert not out.get("error"), out
        return out["result"]

    def pages(self, model: str, domain: list, fields: list, size: int = 2000) -> Iterator[list]:
        """Keyset pages of ``search_read`` on id."""
        last = 0
        while True:
            rows = self.call(
                f"model.{model}.search_read",
                [[*domain, ("id", ">", last)], 0, size, [("id", "ASC")], ["id", *fields], self.ctx],
            )
            yield rows
            if len(rows) < size:
                return
            last = rows[-1]["id"]

    def read_all(self, model: str, domain: list, fields: list, size: int = 2000) -> int:
        return sum(len(rows) for rows in self.pages(model, domain, fields, size))

    def write(self, *args: object) -> None:
        """``party.party.write(ids1, values1, ids2, values2, ...)``."""
        self.call("model.party.party.write", [*args, self.ctx])


def raw_extract(raw: Raw, every_table: bool = False) -> int:
    """What the adapter reads for customers, invoices and invoice lines (with
    ``every_table``, for all nine canonical tables), with nothing done to it; the
    rows of the tables' own models."""
    raw.read_all("party.category", [], ["name"])
    raw.call(
        "model.ir.module.search_read",
        [[("state", "=", "activated")], 0, None, None, ["name"], raw.ctx],
    )
    n = raw.read_all(
        "party.party",
        [("active", "in", [True, False])],
        ["name", "code", "active", "categories", "create_date", "write_date", "crm"],
    )
    raw.read_all(
        "account.move.line",
        [("account.type.receivable", "=", True), ("move.state", "=", "posted")],
        ["move", "party", "maturity_date", "reconciliation", "debit", "credit", "move.date"],
    )
    raw.read_all("account.move.reconciliation", [], ["date"])
    n += raw.read_all(
        "account.invoice",
        [("type", "=", "out")],
        [
            "party",
            "number",
            "state",
            "invoice_date",
            "currency.code",
            "untaxed_amount_cache",
            "move",
            "write_date",
            "create_date",
        ],
    )
    product_fields = ["code", "name", "list_price", "cost_price"] if every_table else ["cost_price"]
    products = raw.read_all("product.product", [("active", "in", [True, False])], product_fields)
    n += raw.read_all(
        "account.invoice.line",
        [("invoice.type", "=", "out"), ("type", "=", "line")],
        ["invoice", "product", "quantity", "unit_price"],
    )
    if not every_table:
        return n
    n += products
    # payments: the receivable lines above, less those of invoices' moves
    raw.read_all("account.move", [("origin", "like", "account.invoice,%")], [])
    n += raw.read_all(
        "sale.line", [("type", "=", "line")], ["sale", "product", "quantity", "unit_price"]
    )
    n += raw.read_all(
        "sale.sale", [], ["party", "sale_date", "quotation_date", "state", "create_date"]
    )
    raw.read_all("sale.opportunity.line", [], ["opportunity", "product"])
    n += raw.read_all(
        "sale.opportunity", [], ["party", "start_date", "state", "amount", "lost_reason"]
    )
    n += raw.read_all(
        "sale.complaint", [], ["customer", "date", "type.name", "description", "state"]
    )
    return n
