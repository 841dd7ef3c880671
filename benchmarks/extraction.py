"""Extraction benchmark on a real Tryton: crm-bridge's reader next to a raw loop.

The demo's Tryton database is grown to at least 10,000 customers and 50,000
invoice lines (draft invoices created through the ORM: posting is Tryton's slow
part and does not change what is read).  Then, in the same run, on the same
server, each reading the same models, domains and fields with 2,000-row pages:

- raw: a hand-written keyset ``search_read`` loop with plain requests;
- crm-bridge: ``TrytonAdapter.extract`` of customers, invoices and invoice lines,
  turning them into canonical rows (ids as text, amounts, receivable due dates).

    python benchmarks/extraction.py [--customers 10000] [--lines-per-invoice 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from crm_bridge.adapters.tryton.adapter import TrytonAdapter
from crm_bridge.adapters.tryton.rpc import _default, _object_hook
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, TrytonServer, _env, build_template

from crm_bridge.sample_data import Profile

GROW = """
import sys
from decimal import Decimal
from trytond.pool import Pool
from trytond.transaction import Transaction
database, customers, per_invoice = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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
    for start in range(0, len(parties), 100):
        Invoice.create([{
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
"""
TABLES = ("customers", "invoices", "invoice_lines")


class Raw:
    """The hand-written client: session auth, plain requests, keyset pages."""

    def __init__(self, url: str, database: str) -> None:
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

    def read_all(self, model: str, domain: list, fields: list, size: int = 2000) -> int:
        last, count = 0, 0
        while True:
            rows = self.call(
                f"model.{model}.search_read",
                [[*domain, ("id", ">", last)], 0, size, [("id", "ASC")], ["id", *fields], self.ctx],
            )
            count += len(rows)
            if len(rows) < size:
                return count
            last = rows[-1]["id"]


def raw_extract(raw: Raw) -> int:
    """What the adapter reads for the three tables, with nothing done to it."""
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
    raw.read_all("product.product", [("active", "in", [True, False])], ["cost_price"])
    n += raw.read_all(
        "account.invoice.line",
        [("invoice.type", "=", "out"), ("type", "=", "line")],
        ["invoice", "product", "quantity", "unit_price"],
    )
    return n


def adapter_extract(adapter: TrytonAdapter) -> int:
    adapter._lookups.clear()
    adapter._models = None
    return sum(len(page) for table in TABLES for page in adapter.extract(table))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--lines-per-invoice", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    template = build_template(Profile())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copyfile(template, folder / "bench.sqlite")
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-O",
                "-c",
                GROW,
                "bench",
                str(args.customers),
                str(args.lines_per_invoice),
            ],
            env=_env(folder),
            check=True,
            stdin=subprocess.DEVNULL,
        )
        print(f"database grown in {time.perf_counter() - started:.0f}s", flush=True)
        with TrytonServer(folder, "bench").start() as server:
            settings = {
                "url": server.url,
                "database": "bench",
                "username": "admin",
                "password": ADMIN_PASSWORD,
            }
            adapter = TrytonAdapter(settings)
            raw = Raw(server.url, "bench")
            counts = {t: sum(len(p) for p in adapter.extract(t)) for t in TABLES}  # warm-up
            print("rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()), flush=True)
            raw_times, ours = [], []
            for _ in range(args.rounds):  # alternate, best of N: the server's timing drifts
                t = time.perf_counter()
                raw_rows = raw_extract(raw)
                raw_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                our_rows = adapter_extract(adapter)
                ours.append(time.perf_counter() - t)
            assert raw_rows == our_rows == sum(counts.values()), (raw_rows, our_rows)
            raw_s, our_s = min(raw_times), min(ours)
            print(f"raw search_read loop : {raw_s:6.2f} s  {raw_rows / raw_s:9,.0f} records/s")
            print(f"crm-bridge extract   : {our_s:6.2f} s  {our_rows / our_s:9,.0f} records/s")
            print(f"crm-bridge / raw (records/s): {raw_s / our_s:.2f}x  (target >= 0.90x)")
            newest = max(
                r["updated_at"]
                for t in ("customers", "invoices")
                for p in adapter.extract(t)
                for r in p
            )
            adapter._lookups.clear()
            t = time.perf_counter()
            since = sum(len(p) for table in TABLES for p in adapter.extract(table, newest))
            print(
                f"incremental, nothing new since the newest record: "
                f"{time.perf_counter() - t:6.2f} s  {since:,} rows (the inclusive boundary)"
            )
            t = time.perf_counter()
            adapter._lookups.clear()
            from crm_bridge.snapshot import TABLES as ALL

            total = sum(len(page) for table in ALL for page in adapter.extract(table))
            print(f"all nine tables      : {time.perf_counter() - t:6.2f} s  {total:,} rows")


if __name__ == "__main__":
    main()
