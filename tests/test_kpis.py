"""KPIs by hand on a small customer base; the CLV model on generated data."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from crm_bridge.plugins import clv, kpis

from crm_bridge import Snapshot
from crm_bridge.sample_data import Profile, generate
from crm_bridge.snapshot import TABLES
from crm_bridge.testing import invoice as inv

D = dt.date


def line(i, invoice, cust, product, amount):
    return {
        "line_id": i,
        "invoice_id": invoice,
        "customer_id": cust,
        "product_id": product,
        "quantity": 1,
        "unit_price": amount,
        "amount": amount,
    }


def snapshot() -> Snapshot:
    return Snapshot.from_rows(
        as_of=D(2026, 6, 30),
        customers=[{"customer_id": c, "name": c, "active": True} for c in "ABC"],
        invoices=[
            inv("1", "A", D(2025, 3, 1), 100.0, paid=D(2025, 3, 5)),
            inv("2", "A", D(2025, 9, 1), 200.0, paid=D(2025, 10, 11)),  # 10 days late
            inv("3", "A", D(2026, 1, 1), 300.0, paid=D(2026, 1, 20)),  # early: 0
            inv("4", "A", D(2026, 5, 31), 400.0),  # due today: not late
            inv("5", "A", D(2026, 2, 1), -50.0, kind="credit_note"),
            inv("6", "B", D(2026, 4, 1), 700.0),  # overdue since 05-01
            {**inv("7", "B", D(2026, 4, 2), 999.0), "state": "draft"},  # excluded
        ],
        invoice_lines=[
            line("l1", "1", "A", "P1", 100),
            line("l2", "2", "A", "P2", 200),
            line("l3", "3", "A", "P1", 300),
            line("l4", "6", "B", "P1", 700),
        ],
        sale_orders=[
            {"order_id": "q1", "customer_id": "A", "date": D(2025, 5, 1), "state": "confirmed"},
            {"order_id": "q2", "customer_id": "A", "date": D(2025, 8, 1), "state": "confirmed"},
            {"order_id": "q3", "customer_id": "A", "date": D(2026, 4, 4), "state": "cancelled"},
            {"order_id": "q4", "customer_id": "A", "date": D(2026, 6, 1), "state": "quotation"},
        ],
        opportunities=[
            {"opportunity_id": "o1", "customer_id": "A", "date": D(2025, 6, 1), "state": "won"},
            {
                "opportunity_id": "o2",
                "customer_id": "A",
                "date": D(2026, 3, 3),
                "state": "lost",
                "lost_reason": "No budget",
            },
            {"opportunity_id": "o3", "customer_id": "C", "date": D(2026, 6, 3), "state": "lost"},
        ],
        complaints=[
            {"complaint_id": k, "customer_id": "A", "date": d}
            for k, d in (("k1", D(2025, 1, 1)), ("k2", D(2025, 12, 1)), ("k3", D(2026, 6, 1)))
        ],
    )


def test_hand_computed_kpis() -> None:
    out = {r["customer_id"]: r for r in kpis.compute(snapshot(), {}).iter_rows(named=True)}
    a = out["A"]
    assert a["kpi_revenue_12m"] == 850.0  # 200 + 300 + 400 - 50
    assert a["kpi_revenue_growth"] == 750.0  # against 100 the year before
    assert a["kpi_aov"] == round(850 / 3, 2)
    assert a["kpi_purchases_per_year"] == round(4 / (486 / 365), 2)
    assert a["kpi_distinct_products"] == 2
    assert a["kpi_interpurchase_days"] == 152.0  # (2026-05-31 - 2025-03-01) / 3
    assert a["kpi_churn_risk"] == round(1 - math.exp(-30 / 152), 2)
    assert a["kpi_clv_historic"] == 950.0
    assert a["kpi_avg_days_late"] == 5.0 and a["kpi_paid_late_share"] == 50.0
    assert a["kpi_overdue_amount"] == 0.0
    assert a["kpi_quote_conversion"] == round(200 / 3, 1)
    assert (a["kpi_opportunities_won"], a["kpi_opportunities_lost"]) == (1, 1)
    assert a["kpi_last_refusal"] == "2026-04-04 quote refused"
    assert a["kpi_complaints_12m"] == 2
    b = out["B"]
    assert b["kpi_overdue_amount"] == 700.0 and b["kpi_revenue_12m"] == 700.0
    assert b["kpi_interpurchase_days"] is None and b["kpi_revenue_growth"] is None
    # C never bought: only the funnel speaks of it.
    c = out["C"]
    assert c["kpi_revenue_12m"] is None and c["kpi_opportunities_lost"] == 1
    assert c["kpi_last_refusal"] == "2026-06-03 opportunity lost: no reason recorded"


def test_last_refusal_on_one_day_does_not_depend_on_row_order() -> None:
    lost = [
        {
            "opportunity_id": i,
            "customer_id": c,
            "date": D(2026, 5, 5),
            "state": "lost",
            "lost_reason": r,
        }
        for i, c, r in (
            ("o1", "A", "No budget"),
            ("o2", "A", "Price too high"),
            ("o3", "B", "Price too high"),
            ("o4", "B", None),
        )
    ]
    cancelled = {"order_id": "q1", "customer_id": "B", "date": D(2026, 5, 5), "state": "cancelled"}
    seen = set()
    for rows in (lost, lost[::-1]):
        snap = Snapshot.from_rows(
            as_of=D(2026, 6, 30),
            customers=[{"customer_id": c, "name": c} for c in "AB"],
            opportunities=rows,
            sale_orders=[cancelled],
        )
        out = kpis.funnel_kpis(snap).sort(pl.col("customer_id").cast(pl.String))
        seen.add(tuple(out["kpi_last_refusal"]))
    # Same day: the reason last in alphabetical order; a refused quote before a lost opportunity.
    assert seen == {("2026-05-05 opportunity lost: Price too high", "2026-05-05 quote refused")}


def test_clv_model_ranks_customers_sensibly() -> None:
    snap = generate(Profile(customers=400, end=D(2026, 6, 30)))
    s = clv.summary(snap)
    fit = clv.fit(s)
    assert fit.converged and fit.seconds < 10
    pred = clv.predict(s, fit)
    assert (pred["expected_purchases"] >= 0).all() and (pred["clv_12m"] >= 0).all()
    joined = s.join(pred, on="customer_id")
    # Among customers with the same history length, recent frequent buyers are
    # expected to buy more than customers silent for a long time.
    busy = joined.filter((pl.col("x") >= 5) & (pl.col("T") - pl.col("t_x") < 8))
    silent = joined.filter((pl.col("x") >= 1) & (pl.col("T") - pl.col("t_x") > 80))
    assert busy.height and silent.height
    assert busy["expected_purchases"].median() > 3 * silent["expected_purchases"].median()


def test_clv_is_identical_whatever_the_row_order() -> None:
    snap = generate(Profile(customers=200, end=D(2026, 6, 30)))
    first = kpis.compute(snap, {}).sort(pl.col("customer_id").cast(pl.String))
    tables = {name: getattr(snap, name).reverse() for name in TABLES}
    tables["invoices"] = snap.invoices.sample(fraction=1.0, shuffle=True, seed=3)
    shuffled = Snapshot.from_frames(as_of=snap.as_of, **tables)
    again = kpis.compute(shuffled, {}).sort(pl.col("customer_id").cast(pl.String))
    assert again.equals(first)  # every KPI, the CLV to the cent
    assert again["kpi_clv_12m"].drop_nulls().len() > 150
    assert first["kpi_clv_12m"].sum() == pytest.approx(again["kpi_clv_12m"].sum())


def test_clv_prediction_is_the_same_row_by_row() -> None:
    # predict() computes the costly term once per distinct (x, T) pair and spreads
    # it back: the rows must get exactly what they get one at a time.
    s = clv.summary(generate(Profile(customers=300, end=D(2026, 6, 30))))
    f = clv.fit(s)
    whole = clv.predict(s, f)
    assert whole.equals(pl.concat([clv.predict(s[i : i + 1], f) for i in range(s.height)]))
    assert s.select(pl.struct("x", "T").n_unique()).item() < s.height  # pairs do repeat


def test_clv_fit_sample_is_order_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clv, "FIT_SAMPLE", 100)
    s = clv.summary(generate(Profile(customers=1000, end=D(2026, 6, 30))))
    assert 50 <= clv._sample(s, 100).sum() <= 200
    fits = {clv.fit(t) for t in (s, s.reverse(), s.sample(fraction=1.0, shuffle=True, seed=1))}
    assert len({(f.r, f.alpha, f.a, f.b, f.p, f.q, f.v) for f in fits}) == 1


def test_kpis_of_an_erp_without_invoices_raise_no_warning() -> None:
    import warnings

    snap = Snapshot.from_rows(
        as_of=dt.date(2025, 1, 1), customers=[{"customer_id": "1", "name": "New"}]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 0/0 RuntimeWarning in the CLV fit
        out = kpis.compute(snapshot=snap, settings={})
    assert out.height <= 1
