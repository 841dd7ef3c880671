"""ABC, XYZ, the segment x product matrix and the next best offer, by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from crm_bridge.plugins import segmentation
from crm_bridge.plugins.segmentation import abc_xyz, offers
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_bridge import Snapshot, config
from crm_bridge.errors import ConfigError
from crm_bridge.sample_data import Profile, generate
from crm_bridge.testing import invoice as inv

D = dt.date
AS_OF = D(2026, 6, 30)


def test_abc_classes_by_cumulative_share() -> None:
    values = pl.DataFrame(
        {"customer_id": list("ABCDEF"), "value": [500.0, 300.0, 100.0, 60.0, 40.0, 0.0]}
    )
    out = {r["customer_id"]: r for r in abc_xyz.abc(values).iter_rows(named=True)}
    # Shares 50, 30, 10, 6, 4 %: A makes 50 %; B crosses 80 % and is still A
    # (the customer that crosses the line belongs to it); C crosses 90 %, D 96 %.
    assert [out[c]["abc_class"] for c in "ABCDEF"] == ["A", "A", "B", "B", "C", "C"]
    assert out["B"]["before"] == pytest.approx(0.5)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=60),
    st.floats(0.5, 0.9),
    st.floats(0.91, 0.99),
)
def test_abc_shares_add_up_and_respect_thresholds(values, a, b) -> None:
    df = pl.DataFrame({"customer_id": [f"c{i}" for i in range(len(values))], "value": values})
    out = abc_xyz.abc(df, (a, b))
    total = sum(values)
    if total == 0:
        assert set(out["abc_class"]) == {"C"}
        return
    assert out["share"].sum() == pytest.approx(1.0)
    share = {k: out.filter(pl.col("abc_class") == k)["share"].sum() for k in "ABC"}
    # A holds at least the first a share, and without its last customer less than a.
    assert share["A"] >= a - 1e-9 or share["B"] == share["C"] == 0
    a_rows = out.filter(pl.col("abc_class") == "A")
    assert a_rows["share"].sum() - a_rows["share"].tail(1).sum() < a + 1e-9
    assert share["A"] + share["B"] >= min(b, 1.0) - 1e-9 or share["C"] == 0
    # Order free: the same classes whatever the row order.
    again = abc_xyz.abc(df.reverse(), (a, b)).sort("customer_id")
    assert again["abc_class"].to_list() == out.sort("customer_id")["abc_class"].to_list()


def snapshot_xyz() -> Snapshot:
    invoices = []
    # S buys 100 every month for a year: CV 0.  H buys 100 in 6 of 12 months:
    # CV = sqrt(6/6) = 1.0.  R buys once in the 12 months: sqrt(11) = 3.32.  N
    # started 2 months ago.
    for m in range(12):
        month = D(2025 + (m + 6) // 12, (m + 6) % 12 + 1, 10)
        invoices.append(inv(f"s{m}", "S", month, 100.0))
        if m % 2 == 0:
            invoices.append(inv(f"h{m}", "H", month, 100.0))
    invoices.append(inv("r0", "R", D(2024, 1, 1), 10.0))  # a customer for long: 12 months
    invoices.append(inv("r1", "R", D(2025, 8, 1), 900.0))
    invoices.append(inv("n1", "N", D(2026, 5, 3), 50.0))
    return Snapshot.from_rows(
        as_of=AS_OF,
        customers=[{"customer_id": c, "name": c, "active": True} for c in "SHRN"],
        invoices=invoices,
    )


def test_xyz_counts_empty_months_as_zero_but_not_before_the_first_purchase() -> None:
    cv = dict(abc_xyz.monthly_cv(snapshot_xyz(), 12, "revenue").iter_rows())
    assert cv["S"] == pytest.approx(0.0)
    assert cv["H"] == pytest.approx(1.0)
    assert cv["R"] == pytest.approx(11**0.5)
    assert cv["N"] is None  # two observed months only
    classes = pl.DataFrame({"cv": [cv["S"], cv["H"], cv["R"], None]}).select(
        c=abc_xyz.xyz(pl.col("cv"))
    )
    assert classes["c"].to_list() == ["X", "X", "Z", None]


def offers_snapshot() -> Snapshot:
    products = [{"product_id": p, "code": p, "name": f"Product {p}"} for p in ("P1", "P2", "P3")]
    customers = [
        {"customer_id": c, "name": c, "active": True, "industry": "Retail"} for c in ("A", "B", "C")
    ]
    invoices = [
        inv("1", "A", D(2026, 1, 5), 100),
        inv("2", "B", D(2026, 2, 5), 100),
        inv("3", "B", D(2026, 3, 5), 100),
    ]
    lines = [
        {
            "line_id": "l1",
            "invoice_id": "1",
            "customer_id": "A",
            "product_id": "P1",
            "quantity": 1,
            "unit_price": 100,
            "amount": 100,
        },
        {
            "line_id": "l2",
            "invoice_id": "2",
            "customer_id": "B",
            "product_id": "P1",
            "quantity": 1,
            "unit_price": 100,
            "amount": 100,
        },
        {
            "line_id": "l3",
            "invoice_id": "3",
            "customer_id": "B",
            "product_id": "P2",
            "quantity": 1,
            "unit_price": 100,
            "amount": 100,
        },
    ]
    orders = [
        {
            "order_id": "q1",
            "customer_id": "C",
            "date": D(2026, 4, 1),
            "state": "quotation",
            "amount": 10,
        },
        {
            "order_id": "q2",
            "customer_id": "A",
            "date": D(2026, 4, 2),
            "state": "cancelled",
            "amount": 10,
        },
    ]
    order_lines = [
        {
            "line_id": "ql1",
            "order_id": "q1",
            "customer_id": "C",
            "product_id": "P1",
            "quantity": 1,
            "amount": 10,
        },
        {
            "line_id": "ql2",
            "order_id": "q2",
            "customer_id": "A",
            "product_id": "P2",
            "quantity": 1,
            "amount": 10,
        },
    ]
    opps = [
        {
            "opportunity_id": "o1",
            "customer_id": "C",
            "date": D(2026, 5, 1),
            "state": "lost",
            "product_id": "P2",
            "lost_reason": "Price too high",
        }
    ]
    return Snapshot.from_rows(
        as_of=AS_OF,
        customers=customers,
        products=products,
        invoices=invoices,
        invoice_lines=lines,
        sale_orders=orders,
        sale_order_lines=order_lines,
        opportunities=opps,
    )


def test_offer_matrix_statuses_and_next_best_offer() -> None:
    snap = offers_snapshot()
    segs = snap.customers.select("customer_id", segment=pl.col("industry"))
    cells = offers.matrix(snap, segs, {})
    status = {
        (r["customer_id"], r["product_id"]): (r["status"], r["date"], r["reason"])
        for r in cells.iter_rows(named=True)
    }
    assert status["A", "P1"] == ("bought", D(2026, 1, 5), None)
    assert status["A", "P2"] == ("refused", D(2026, 4, 2), "Quote cancelled")
    assert status["C", "P1"] == ("quoted", D(2026, 4, 1), None)
    assert status["C", "P2"] == ("refused", D(2026, 5, 1), "Price too high")
    assert status["C", "P3"] == ("not_offered", None, None)
    nbo = dict(offers.next_best_offer_from_matrix(snap, cells).iter_rows())
    # Retail buys P1 most (2 buyers), then P2 (1), P3 (0).
    assert nbo == {"A": "Product P3", "B": "Product P3", "C": "Product P3"}
    assert dict(offers.next_best_offer(snap, segs, {}).iter_rows()) == nbo
    cells = offers.matrix(snap, segs, {"*": ["P1", "P2"]})
    assert dict(offers.next_best_offer_from_matrix(snap, cells).iter_rows()) == {}
    assert dict(offers.next_best_offer(snap, segs, {"*": ["P1", "P2"]}).iter_rows()) == {}


@pytest.mark.parametrize("by", ["abc_class", "rfm_segment", "industry"])
def test_fast_next_best_offer_equals_the_matrix_one(by: str) -> None:
    snap = generate(Profile(customers=500, end=AS_OF))
    seg = segmentation.segments(snap, {})
    source = snap.customers if by == "industry" else seg
    segs = source.select("customer_id", segment=pl.col(by)).filter(pl.col("segment").is_not_null())
    for targets in ({}, {"*": ["S-CONTRACT", "P-LAPTOP", "P-COFFEE"]}):
        slow = offers.next_best_offer_from_matrix(snap, offers.matrix(snap, segs, targets))
        fast = offers.next_best_offer(snap, segs, targets)
        assert fast.sort("customer_id").rows() == slow.sort("customer_id").rows()
        assert fast.height > 50


def test_plugin_output_combines_everything_and_validates_settings() -> None:
    snap = offers_snapshot()
    out = segmentation.compute(
        snap, {"offer_segment_by": "industry", "target_products": {"Retail": ["P2", "P3"]}}
    )
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row["A"]["next_best_offer"] == "Product P3"
    # B makes 2/3 of the revenue, A crosses 80 %: both A; C never bought.
    assert row["B"]["abc_class"] == row["A"]["abc_class"] == "A"
    assert "C" not in row or row["C"]["abc_class"] is None
    assert set(out.columns) == {"customer_id"} | {f.name for f in segmentation.declare_fields()}
    with pytest.raises(ConfigError, match=r"plugins\.segmentation\.xyz_thresholds"):
        config.validate(
            {"xyz_thresholds": [1.0]}, segmentation.config_schema(), ("plugins", "segmentation")
        )
