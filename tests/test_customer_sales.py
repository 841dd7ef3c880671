"""The per-customer sums of the sales shared by segmentation, loyalty and kpis."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from crm_bridge.plugins import loyalty
from crm_bridge.plugins.customer_sales import COLUMNS, customer_sales, money_sum
from crm_bridge.plugins.segmentation import rfm

from crm_bridge import Snapshot
from crm_bridge.testing import invoice

D = dt.date
AS_OF = D(2026, 6, 30)


def snapshot() -> Snapshot:
    return Snapshot.from_rows(
        AS_OF,
        customers=[{"customer_id": c, "name": c, "active": True} for c in "ABC"],
        invoices=[
            # A: paid 10 days late in the window, one unpaid 40 days past due,
            # a credit note, one invoice exactly 365 days back (outside) and one
            # in the year before.
            invoice("a1", "A", D(2026, 1, 10), 100.0, paid=D(2026, 2, 19)),
            invoice("a2", "A", D(2026, 4, 21), 50.0),  # due 2026-05-21: 40 days overdue
            invoice("a3", "A", D(2026, 3, 1), -30.0, "credit_note"),
            invoice("a4", "A", D(2025, 6, 30), 70.0, paid=D(2025, 7, 1)),
            invoice("a5", "A", D(2024, 12, 1), 20.0, paid=D(2024, 12, 2)),
            # B: only a credit note; C: a draft (not a sale).
            invoice("b1", "B", D(2026, 5, 1), -10.0, "credit_note"),
            invoice("c1", "C", D(2026, 5, 1), 99.0, state="draft"),
        ],
    )


def test_sums_follow_the_stated_rules() -> None:
    rows = {r["customer_id"]: r for r in customer_sales(snapshot(), 365).collect().to_dicts()}
    assert set(rows) == {"A", "B"}
    a = rows["A"]
    assert a["first_sale"] == D(2024, 12, 1) and a["last_invoice"] == D(2026, 4, 21)
    assert (a["invoices"], a["revenue"]) == (4, pytest.approx(210.0))
    assert (a["revenue_w"], a["invoices_w"]) == (pytest.approx(120.0), 2)
    assert a["revenue_prev_w"] == pytest.approx(90.0)  # 70 on the boundary + 20
    # a1 was due 2026-02-09 and paid 2026-02-19; a2 is unpaid, so not counted.
    assert (a["days_late_w"], a["paid_w"], a["paid_late_w"]) == (10.0, 1, 1)
    assert (a["overdue_amount"], a["overdue_days"]) == (pytest.approx(50.0), 40)
    b = rows["B"]
    assert b["last_invoice"] is None and b["invoices"] == 0 and b["revenue"] == -10.0
    assert list(customer_sales(snapshot(), 365).collect().columns) == list(COLUMNS)


def test_plugins_with_the_same_window_share_one_pass() -> None:
    snap = snapshot()
    rfm.compute(snap, 365)
    loyalty.metrics(snap, 365)
    rfm.compute(snap, 180)
    keys = sorted(k for k in snap._shared if k.startswith("crm_bridge.customer_sales"))
    assert keys == ["crm_bridge.customer_sales:180", "crm_bridge.customer_sales:365"]


def test_sums_are_the_same_whatever_order_the_invoices_come_in() -> None:
    """Sums do not depend on the order of addition (Polars' threads add in any
    order): a float sum of 0.1, 0.2 and 0.3 is 0.6 one way and 0.6000000000000001
    the other, which put an average on a half cent on either side from run to run."""
    amounts = [0.1, 0.2, 0.3, 10.01, 0.07, 1e6 + 0.05]
    sums = set()
    for turn in range(len(amounts)):
        order = amounts[turn:] + amounts[:turn]
        snap = Snapshot.from_rows(
            AS_OF,
            customers=[{"customer_id": "A", "name": "A", "active": True}],
            invoices=[
                invoice(f"i{i}", "A", D(2026, 3, 1 + i), amount, paid=D(2026, 3, 1 + i))
                for i, amount in enumerate(order)
            ],
        )
        row = customer_sales(snap, 365).collect().row(0, named=True)
        sums.add((row["revenue"], row["revenue_w"]))
    assert sums == {(1000010.73, 1000010.73)}


def test_exact_sums_hold_amounts_beyond_a_64_bit_count_of_millionths() -> None:
    """Ten trillion (10**19 millionths, past the largest 64-bit integer) plus a
    cent is summed, not lost to an overflow."""
    snap = Snapshot.from_rows(
        AS_OF,
        customers=[{"customer_id": "A", "name": "A", "active": True}],
        invoices=[
            invoice("i1", "A", D(2026, 3, 1), 1e13, paid=D(2026, 3, 1)),
            invoice("i2", "A", D(2026, 3, 2), 0.01, paid=D(2026, 3, 2)),
        ],
    )
    row = customer_sales(snap, 365).collect().row(0, named=True)
    assert row["revenue"] == 1e13 + 0.01


def test_margins_are_summed_exactly_too() -> None:
    """ABC by margin and loyalty's margin condition add amounts minus costs the
    same exact way: one sum in every order of the lines."""
    amounts = [0.1, 0.2, 0.3, 10.01, 0.07, 1e6 + 0.05]
    sums = {
        pl.DataFrame({"amount": amounts[t:] + amounts[:t], "cost": [0.03] * len(amounts)})
        .select(money_sum(pl.col("amount") - pl.col("cost")))
        .item()
        for t in range(len(amounts))
    }
    assert sums == {1000010.55}
