"""Load a generated customer base (or given canonical rows) into a Tryton database, in-process.

Run as ``python -m crm_bridge.adapters.tryton.seed DB`` with the trytond
configuration in the environment (``TRYTOND_DATABASE__URI`` and ``__PATH``);
``--rows FILE`` loads the canonical tables in FILE (JSON, see ``read_rows``)
instead of generating them (the golden company of the tests is loaded so).
trytond's configuration and pool are process-global, so the seeding never runs
inside the crm-bridge process.

The fast path.  Over RPC, creating documents is the slow part of Tryton
(~150 invoice lines/s, posting 0.5-2 s an invoice).  Here everything is created
through the ORM in large batches inside one transaction, invoices are posted in
batches with the rendering of the invoice report switched off (the report is
what makes posting slow, and nobody reads the demo's PDFs), and documents whose
workflow has no accounting side effect (quotes, opportunities, complaints) are
created directly in their final state.  Accounting documents are real: posted
invoices have their moves, paid invoices are paid and reconciled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_bridge.sample_data import Profile, generate
from crm_bridge.snapshot import Snapshot

CENT = Decimal("0.01")


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def setup_company(database: str, years: range) -> None:
    """Company, chart of accounts, fiscal years with invoice sequences, payment term."""
    from proteus import Model, config
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company, get_company

    config.set_trytond(database)
    Party = Model.get("party.party")
    create_company(party=Party(name="Demo Trading Ltd"), currency="EUR")
    company = get_company()
    create_chart(company)
    for year in years:
        fiscalyear = set_fiscalyear_invoice_sequences(
            create_fiscalyear(company, (dt.date(year, 1, 1), dt.date(year, 12, 31)))
        )
        fiscalyear.click("create_period")
    term = create_payment_term()
    term.name = "30 days"
    line = term.lines[0]
    line.relativedeltas.new(days=30)
    term.save()


def write_rows(path: Path, as_of: dt.date, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """Write canonical rows for ``--rows``: ``{"as_of": ISO date, "tables": {name: rows}}``
    (dates as ISO strings)."""

    def iso(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else value

    body = {
        "as_of": as_of.isoformat(),
        "tables": {
            t: [{k: iso(v) for k, v in r.items()} for r in rows] for t, rows in tables.items()
        },
    }
    path.write_text(json.dumps(body, sort_keys=True, indent=1), "utf-8")
    return path


def read_rows(path: Path) -> Snapshot:
    """The snapshot of a file written by ``write_rows``."""
    body = json.loads(path.read_text("utf-8"))
    return Snapshot.from_rows(dt.date.fromisoformat(body["as_of"]), **body["tables"])


def load(database: str, snap: Snapshot, echo: Any = print) -> dict[str, int]:
    """Create the snapshot's rows in ``database``; return the counts created."""
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    years = range(snap.invoices["date"].min().year, snap.as_of.year + 1)  # type: ignore[union-attr]
    started = time.monotonic()
    setup_company(database, years)
    echo(f"company, chart and {len(years)} fiscal years: {time.monotonic() - started:.1f}s")

    pool = Pool(database)
    try:
        pool.get("res.user")
    except KeyError:
        pool.init()
    # Tables are locked up front, as trytond's dispatcher does after a first
    # attempt fails with a lock error; a new lock need restarts the load.
    from trytond.transaction import TransactionError

    extras: dict[str, Any] = {
        "_lock_tables": ["ir_sequence", "ir_sequence_strict", "account_journal_period"]
    }
    while True:
        try:
            with Transaction().start(database, 1, readonly=False, **extras) as transaction:
                User = pool.get("res.user")
                with transaction.set_context(
                    User.get_preferences(context_only=True), _skip_warnings=True
                ):
                    counts = _load_documents(pool, snap, echo)
                transaction.commit()
            break
        except TransactionError as error:
            error.fix(extras)
            echo(f"restarting with locks {extras}")
    echo(f"total: {time.monotonic() - started:.1f}s")
    return counts


def _load_documents(pool: Any, snap: Any, echo: Any) -> dict[str, int]:
    Party = pool.get("party.party")
    Category = pool.get("party.category")
    Template = pool.get("product.template")
    ProductCategory = pool.get("product.category")
    Uom = pool.get("product.uom")
    Account = pool.get("account.account")
    Invoice = pool.get("account.invoice")
    PaymentTerm = pool.get("account.invoice.payment_term")
    Journal = pool.get("account.journal")
    MoveLine = pool.get("account.move.line")
    Move = pool.get("account.move")
    Period = pool.get("account.period")
    Sale = pool.get("sale.sale")
    Opportunity = pool.get("sale.opportunity")
    Complaint = pool.get("sale.complaint")
    ComplaintType = pool.get("sale.complaint.type")
    Model = pool.get("ir.model")
    Company = pool.get("company.company")

    (company,) = Company.search([])
    tick = time.monotonic()

    def step(what: str) -> None:
        nonlocal tick
        now = time.monotonic()
        echo(f"{what}: {now - tick:.1f}s")
        tick = now

    # Customers, by industry category.
    industries = sorted(set(snap.customers["industry"].drop_nulls()))
    cats = dict(zip(industries, Category.create([{"name": i} for i in industries]), strict=True))
    rows = snap.customers.to_dicts()
    parties = Party.create(
        [
            {
                "name": r["name"],
                "code": r["code"],
                "active": True,
                "categories": [("add", [cats[r["industry"]].id])],
                "addresses": [("create", [{"city": "Springfield"}])],
            }
            for r in rows
        ]
    )
    party_of = {r["customer_id"]: p for r, p in zip(rows, parties, strict=True)}
    step(f"{len(parties)} customers")

    # Products: services, so that no stock moves are involved.
    (revenue,) = Account.search([("code", "=", "4.1.2")], limit=1)
    (expense,) = Account.search([("code", "=", "5.1.3")], limit=1)
    (cash,) = Account.search([("code", "=", "1.1.1")], limit=1)
    account_category = ProductCategory(
        name="Sales", accounting=True, account_revenue=revenue, account_expense=expense
    )
    account_category.save()
    (unit,) = Uom.search([("symbol", "=", "u")], limit=1)
    prows = snap.products.to_dicts()
    templates = Template.create(
        [
            {
                "name": r["name"],
                "code": r["code"],
                "type": "service",
                "default_uom": unit.id,
                "sale_uom": unit.id,
                "salable": True,
                "list_price": _money(r["list_price"]),
                "account_category": account_category.id,
                "products": [("create", [{"cost_price": _money(r["cost_price"])}])],
            }
            for r in prows
        ]
    )
    product_of = {r["product_id"]: t.products[0] for r, t in zip(prows, templates, strict=True)}
    step(f"{len(templates)} products")

    # Invoices and credit notes, posted in batches with the report switched off.
    (term,) = PaymentTerm.search([], limit=1)
    (journal,) = Journal.search([("type", "=", "revenue")], limit=1)
    lines_by_invoice: dict[str, list[dict[str, Any]]] = {}
    for r in snap.invoice_lines.to_dicts():
        lines_by_invoice.setdefault(r["invoice_id"], []).append(r)
    irows = snap.invoices.to_dicts()
    values = []
    for r in irows:
        party = party_of[r["customer_id"]]
        values.append(
            {
                "type": "out",
                "company": company.id,
                "currency": company.currency.id,
                "party": party.id,
                "invoice_address": party.addresses[0].id,
                "account": party.account_receivable_used.id,
                "journal": journal.id,
                "payment_term": term.id,
                "invoice_date": r["date"],
                "reference": r["invoice_id"],
                "lines": [
                    (
                        "create",
                        [
                            {
                                "type": "line",
                                "product": product_of[line["product_id"]].id,
                                "description": product_of[line["product_id"]].rec_name,
                                "account": revenue.id,
                                "unit": unit.id,
                                "quantity": line["quantity"],
                                "unit_price": Decimal(str(line["unit_price"])),
                            }
                            for line in lines_by_invoice[r["invoice_id"]]
                        ],
                    )
                ],
            }
        )
    invoices = Invoice.create(values)
    invoice_of = {r["invoice_id"]: i for r, i in zip(irows, invoices, strict=True)}
    step(f"{len(invoices)} invoices created ({sum(map(len, lines_by_invoice.values()))} lines)")

    # Posting: _post is what the Post button runs after its interactive checks
    # (similar invoices, taxes), which only raise warnings a person would click.
    Invoice.print_invoice = classmethod(lambda cls, invoices: None)
    # Invoice numbers must follow invoice dates, so post in date order.
    posted = sorted((r for r in irows if r["state"] in ("posted", "paid")), key=lambda r: r["date"])
    to_post = [invoice_of[r["invoice_id"]] for r in posted]
    for start in range(0, len(to_post), 100):
        Invoice._post(Invoice.browse(to_post[start : start + 100]))
    Invoice.cancel([invoice_of[r["invoice_id"]] for r in irows if r["state"] == "cancelled"])
    step(f"{len(to_post)} invoices posted")

    # Payments: one bank move per day holding that day's payments (the snapshot's,
    # or one on the paid date of a paid invoice that has none; the last one pays
    # the rest); each paid invoice reconciled with its payments on the last one's date.
    (cash_journal,) = Journal.search([("type", "=", "cash")], limit=1)
    paid = [r for r in irows if r["state"] == "paid" and r["kind"] == "invoice"]
    payments_of: dict[str, list[tuple[dt.date, Decimal]]] = {}
    for y in snap.payments.to_dicts():
        if y["invoice_id"] in invoice_of:
            payments_of.setdefault(y["invoice_id"], []).append((y["date"], _money(y["amount"])))
    by_day: dict[dt.date, list[tuple[str, Any, Decimal]]] = {}
    for r in paid:
        receivable = Invoice(invoice_of[r["invoice_id"]].id).lines_to_pay[0]
        parts = sorted(payments_of.get(r["invoice_id"]) or [(r["paid_date"], Decimal(0))])
        # the last payment pays what is left: the invoice ends paid to the cent
        left = receivable.debit - sum((a for _, a in parts[:-1]), Decimal(0))
        for day, amount in [*parts[:-1], (parts[-1][0], left)]:
            by_day.setdefault(day, []).append((r["invoice_id"], receivable, amount))
    credits: dict[str, list[Any]] = {}
    for day, payments_of_day in sorted(by_day.items()):
        (move,) = Move.create(
            [
                {
                    "journal": cash_journal.id,
                    "period": Period.find(company, date=day),
                    "date": day,
                    "description": "Bank statement",
                    "lines": [
                        (
                            "create",
                            [
                                {
                                    "account": cash.id,
                                    "debit": sum((a for *_, a in payments_of_day), Decimal(0)),
                                    "credit": Decimal(0),
                                },
                                *(
                                    {
                                        "account": line.account.id,
                                        "party": line.party.id,
                                        "debit": Decimal(0),
                                        "credit": amount,
                                    }
                                    for _, line, amount in payments_of_day
                                ),
                            ],
                        )
                    ],
                }
            ]
        )
        Move.post([move])
        # lines of one party and amount are interchangeable
        pay_lines: dict[tuple[int, Decimal], list[Any]] = {}
        for line in move.lines:
            if line.party:
                pay_lines.setdefault((line.party.id, line.credit), []).append(line)
        for invoice_id, receivable, amount in payments_of_day:
            credits.setdefault(invoice_id, []).append(
                (day, pay_lines[receivable.party.id, amount].pop())
            )
    by_last_day: dict[dt.date, list[list[Any]]] = {}
    for r in paid:
        receivable = Invoice(invoice_of[r["invoice_id"]].id).lines_to_pay[0]
        last = max(day for day, _ in credits[r["invoice_id"]])
        by_last_day.setdefault(last, []).append(
            [receivable, *(line for _, line in credits[r["invoice_id"]])]
        )
    for day, groups in sorted(by_last_day.items()):
        MoveLine.reconcile(*groups, date=day)
    Invoice.process([Invoice(invoice_of[r["invoice_id"]].id) for r in paid])
    step(f"{len(paid)} invoices paid on {len(by_day)} bank moves")

    # Quotes and orders, opportunities and complaints: created in their final state.
    qlines: dict[str, list[dict[str, Any]]] = {}
    for r in snap.sale_order_lines.to_dicts():
        qlines.setdefault(r["order_id"], []).append(r)
    srows = snap.sale_orders.to_dicts()
    sales = Sale.create(
        [
            {
                "company": company.id,
                "currency": company.currency.id,
                "party": party_of[r["customer_id"]].id,
                "invoice_address": party_of[r["customer_id"]].addresses[0].id,
                "shipment_address": party_of[r["customer_id"]].addresses[0].id,
                "sale_date": r["date"],
                "quotation_date": r["date"],
                "number": r["order_id"],
                "reference": r["order_id"],
                "invoice_method": "manual",
                "shipment_method": "manual",
                "payment_term": term.id,
                "lines": [
                    (
                        "create",
                        [
                            {
                                "type": "line",
                                "product": product_of[ln["product_id"]].id,
                                "unit": unit.id,
                                "quantity": ln["quantity"],
                                "unit_price": _money(ln["amount"] / ln["quantity"]),
                            }
                            for ln in qlines.get(r["order_id"], [])
                        ],
                    )
                ],
            }
            for r in srows
        ]
    )
    by_state: dict[str, list[Any]] = {}
    for r, sale in zip(srows, sales, strict=True):
        by_state.setdefault("processing" if r["state"] == "confirmed" else r["state"], []).append(
            sale
        )
    Sale.write(*[a for state, group in by_state.items() for a in (group, {"state": state})])
    step(f"{len(srows)} quotes and orders")

    Employee = pool.get("company.employee")
    (employee,) = Employee.create(
        [{"company": company.id, "party": Party.create([{"name": "Sam Sales"}])[0].id}]
    )
    orows = snap.opportunities.to_dicts()
    Opportunity.create(
        [
            {
                "company": company.id,
                "currency": company.currency.id,
                "employee": employee.id,
                "party": party_of[r["customer_id"]].id,
                "start_date": r["date"],
                "end_date": r["date"] if r["state"] in ("won", "lost") else None,
                "description": product_of[r["product_id"]].rec_name
                if r["product_id"]
                else r["opportunity_id"],
                "reference": r["opportunity_id"],
                "amount": _money(r["amount"]),
                "state": r["state"],
                "lost_reason": r["lost_reason"],
                "lines": [
                    (
                        "create",
                        [
                            {
                                "product": product_of[r["product_id"]].id,
                                "quantity": 1,
                                "unit": unit.id,
                            }
                        ]
                        if r["product_id"]
                        else [],
                    )
                ],
            }
            for r in orows
        ]
    )
    step(f"{len(orows)} opportunities")

    (sale_model,) = Model.search([("name", "=", "sale.sale")])
    ctypes = {
        t: ComplaintType.create([{"name": t, "origin": sale_model.id}])[0]
        for t in sorted(set(snap.complaints["type"]))
    }
    crows = snap.complaints.to_dicts()
    Complaint.create(
        [
            {
                "company": company.id,
                "customer": party_of[r["customer_id"]].id,
                "date": r["date"],
                "type": ctypes[r["type"]].id,
                "reference": r["complaint_id"],
                "description": r["description"] or r["type"],
                "state": r["state"] or "done",
            }
            for r in crows
        ]
    )
    step(f"{len(crows)} complaints")
    return {
        "customers": len(parties),
        "products": len(templates),
        "invoices": len(invoices),
        "paid": len(paid),
        "sale_orders": len(srows),
        "opportunities": len(orows),
        "complaints": len(crows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database")
    parser.add_argument("--customers", type=int, default=Profile.customers)
    parser.add_argument("--years", type=int, default=Profile.years)
    parser.add_argument("--invoices-per-year", type=float, default=Profile.invoices_per_year)
    parser.add_argument("--seed", type=int, default=Profile.seed)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--rows", type=Path, help="load these canonical rows (JSON) instead")
    args = parser.parse_args(argv)
    if "TRYTOND_DATABASE__URI" not in os.environ:
        parser.error("TRYTOND_DATABASE__URI and TRYTOND_DATABASE__PATH must be set")
    profile = Profile(
        customers=args.customers,
        years=args.years,
        invoices_per_year=args.invoices_per_year,
        seed=args.seed,
        end=args.end,
    )
    snap = read_rows(args.rows) if args.rows else generate(profile)
    load(args.database, snap, echo=lambda msg: print(msg, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
