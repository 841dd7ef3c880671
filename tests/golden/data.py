"""A small company as literal canonical rows (analysis date 2026-06-30).

Eight customers, three products, invoices over two years with a credit note, late,
early, partial and missing payments, a cancelled and a draft invoice; quotes accepted,
refused and open; opportunities won and lost (one the same day as a refused quote);
complaints inside and outside the 12 months.  No document is dated near the edge of
the 12-month window (2025-07-01) so that the expected values do not hang on it.

Products: P-A 1000.00 (cost 600), P-B 100.00 (cost 40), P-C 3000.00 (cost 2000).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

AS_OF = dt.date(2026, 6, 30)


def _d(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


CUSTOMERS = [
    {"customer_id": cid, "name": name, "code": cid, "active": True, "industry": "Retail"}
    for cid, name in (
        ("C01", "Alpha"),
        ("C02", "Beta"),
        ("C03", "Gamma"),
        ("C04", "Delta"),
        ("C05", "Epsilon"),
        ("C06", "Zeta"),  # never bought: quotes, opportunities, a complaint
        ("C07", "Eta"),
        ("C08", "Theta"),
    )
]
PRODUCTS = [
    {
        "product_id": "P-A",
        "code": "P-A",
        "name": "Anvil",
        "list_price": 1000.0,
        "cost_price": 600.0,
    },
    {"product_id": "P-B", "code": "P-B", "name": "Bolt", "list_price": 100.0, "cost_price": 40.0},
    {
        "product_id": "P-C",
        "code": "P-C",
        "name": "Crate",
        "list_price": 3000.0,
        "cost_price": 2000.0,
    },
]
UNIT = {"P-A": (1000.0, 600.0), "P-B": (100.0, 40.0), "P-C": (3000.0, 2000.0)}

# invoice, customer, kind, state, date, due date, paid date, lines [(product, quantity)]
# (a credit note's quantities are negative; amount = quantity x unit price)
DOCUMENTS: list[tuple[str, str, str, str, str, str, str | None, list[tuple[str, float]]]] = [
    ("I101", "C01", "invoice", "paid", "2024-09-15", "2024-10-15", "2024-10-10", [("P-A", 2)]),
    ("I102", "C01", "invoice", "paid", "2025-07-15", "2025-08-14", "2025-08-04", [("P-A", 2)]),
    ("I103", "C01", "invoice", "paid", "2025-09-15", "2025-10-15", "2025-10-05", [("P-A", 2)]),
    ("I104", "C01", "invoice", "paid", "2025-11-14", "2025-12-14", "2025-12-04", [("P-A", 2)]),
    ("I105", "C01", "invoice", "paid", "2026-01-15", "2026-02-14", "2026-02-04", [("P-A", 2)]),
    ("I106", "C01", "invoice", "paid", "2026-03-16", "2026-04-15", "2026-04-05", [("P-A", 2)]),
    ("I107", "C01", "invoice", "paid", "2026-05-15", "2026-06-14", "2026-06-04", [("P-A", 2)]),
    # Beta: 30 days late, then early, a credit note, an open invoice not yet due
    ("I201", "C02", "invoice", "paid", "2025-08-10", "2025-09-09", "2025-10-09", [("P-C", 2)]),
    ("I202", "C02", "invoice", "paid", "2025-12-10", "2026-01-09", "2026-01-04", [("P-C", 1)]),
    ("R203", "C02", "credit_note", "posted", "2026-02-20", "2026-03-22", None, [("P-C", -1)]),
    (
        "I204",
        "C02",
        "invoice",
        "posted",
        "2026-06-10",
        "2026-07-10",
        None,
        [("P-C", 1), ("P-B", 1)],
    ),
    # Gamma: unpaid and overdue; a cancelled and a draft invoice that do not count
    ("I301", "C03", "invoice", "posted", "2026-01-20", "2026-02-19", None, [("P-B", 5)]),
    ("I302", "C03", "invoice", "cancelled", "2026-03-01", "2026-03-31", None, [("P-C", 3)]),
    ("I303", "C03", "invoice", "draft", "2026-04-01", "2026-05-01", None, [("P-A", 1)]),
    # Delta: bought only in the 12 months before the last 12
    ("I401", "C04", "invoice", "paid", "2024-08-01", "2024-08-31", "2024-08-20", [("P-A", 4)]),
    ("I402", "C04", "invoice", "paid", "2025-03-01", "2025-03-31", "2025-03-20", [("P-A", 1)]),
    # Epsilon: one recent purchase, not yet due
    ("I501", "C05", "invoice", "posted", "2026-06-20", "2026-07-20", None, [("P-B", 3)]),
    # Eta: paid in two parts, the last 30 days late; then on time
    ("I701", "C07", "invoice", "paid", "2025-10-05", "2025-11-04", "2025-12-04", [("P-B", 15)]),
    ("I702", "C07", "invoice", "paid", "2026-04-05", "2026-05-05", "2026-04-20", [("P-A", 1)]),
    # Theta: early in the window, and five days ago
    ("I801", "C08", "invoice", "paid", "2025-07-20", "2025-08-19", "2025-08-10", [("P-B", 8)]),
    ("I802", "C08", "invoice", "posted", "2026-06-25", "2026-07-25", None, [("P-A", 1)]),
]

PAYMENTS = [
    # payment, invoice, customer, date, amount
    ("Y1", "I701", "C07", "2025-11-01", 500.0),
    ("Y2", "I701", "C07", "2025-12-04", 1000.0),
    ("Y3", "I201", "C02", "2025-10-09", 6000.0),
]

# order, customer, date, state (quotation = open, confirmed = accepted, cancelled = refused)
QUOTES = [
    ("Q1", "C06", "2026-01-10", "confirmed", 2000.0),
    ("Q2", "C06", "2026-02-10", "cancelled", 3000.0),
    ("Q3", "C02", "2026-04-01", "cancelled", 1000.0),
    ("Q4", "C02", "2025-09-01", "confirmed", 6000.0),
    ("Q5", "C01", "2026-06-01", "quotation", 2000.0),
]
# opportunity, customer, date, state, amount, lost reason
OPPORTUNITIES = [
    ("O1", "C06", "2026-03-05", "lost", 5000.0, "Price too high"),
    ("O2", "C06", "2025-11-01", "won", 2000.0, None),
    ("O3", "C02", "2026-04-01", "lost", 1000.0, "No budget"),
]
# complaint, customer, date
COMPLAINTS = [
    ("K1", "C03", "2026-02-01"),
    ("K2", "C03", "2025-03-01"),  # more than 12 months ago
    ("K3", "C06", "2026-05-01"),
]


def tables() -> dict[str, list[dict[str, Any]]]:
    """The rows above as canonical tables."""
    invoices, lines = [], []
    for number, cid, kind, state, date, due, paid, items in DOCUMENTS:
        amount = 0.0
        for n, (product, quantity) in enumerate(items, 1):
            price, cost = UNIT[product]
            amount += quantity * price
            lines.append(
                {
                    "line_id": f"{number}-{n}",
                    "invoice_id": number,
                    "customer_id": cid,
                    "product_id": product,
                    "quantity": quantity,
                    "unit_price": price,
                    "amount": quantity * price,
                    "cost": quantity * cost,
                }
            )
        invoices.append(
            {
                "invoice_id": number,
                "customer_id": cid,
                "number": number,
                "kind": kind,
                "state": state,
                "date": _d(date),
                "due_date": _d(due),
                "currency": "EUR",
                "amount": amount,
                "paid_date": _d(paid),
            }
        )
    return {
        "customers": CUSTOMERS,
        "products": PRODUCTS,
        "invoices": invoices,
        "invoice_lines": lines,
        "payments": [
            {"payment_id": p, "invoice_id": i, "customer_id": c, "date": _d(d), "amount": a}
            for p, i, c, d, a in PAYMENTS
        ],
        "sale_orders": [
            {"order_id": o, "customer_id": c, "date": _d(d), "state": s, "amount": a}
            for o, c, d, s, a in QUOTES
        ],
        "opportunities": [
            {
                "opportunity_id": o,
                "customer_id": c,
                "date": _d(d),
                "state": s,
                "amount": a,
                "lost_reason": r,
            }
            for o, c, d, s, a, r in OPPORTUNITIES
        ],
        "complaints": [
            {"complaint_id": k, "customer_id": c, "date": _d(d), "type": "Wrong invoice"}
            for k, c, d in COMPLAINTS
        ],
    }
