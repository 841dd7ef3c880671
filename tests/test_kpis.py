"""KPIs by hand on a small customer base; the CLV model on generated data."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
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
    assert fit.converged
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


def _simulated(n: int = 3000, seed: int = 7) -> pl.DataFrame:
    """Customers drawn from the BG/NBD and Gamma-Gamma models themselves (r=0.25,
    alpha=4, a=0.8, b=2.5; p=6, q=4, v=15): a first purchase at time 0, then
    purchases at the customer's rate until an age T of 26 to 78 weeks, dropping out
    after each purchase with the customer's probability."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rate, drop = rng.gamma(0.25, 1 / 4.0), rng.beta(0.8, 2.5)
        nu = rng.gamma(4.0, 1 / 15.0)
        age, t, times = float(rng.uniform(26, 78)), 0.0, [0.0]
        while rng.random() >= drop:
            t += rng.exponential(1 / rate)
            if t > age:
                break
            times.append(t)
        spend = rng.gamma(6.0, 1 / nu, size=len(times))
        x = len(times) - 1
        rows.append(
            {
                "customer_id": str(i),
                "x": float(x),
                "t_x": times[-1],
                "T": age,
                "m": float(spend[1:].mean()) if x else 0.0,
                "mean": float(spend.mean()),
            }
        )
    return pl.DataFrame(rows)


def _reference_fit(s: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """BG/NBD and Gamma-Gamma fitted as the papers write them: FHL (2005) eq. 6 with
    beta functions; Fader & Hardie (2013) on repeat purchases only.  Another
    formulation and another optimiser (BFGS, unbounded) than plugins/clv.py."""
    from scipy import optimize
    from scipy.special import betaln, gammaln

    x, tx, T = (s[c].to_numpy() for c in ("x", "t_x", "T"))

    def bg(params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(params)
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        alive = common + betaln(a, b + x) - (r + x) * np.log(alpha + T)
        bx = np.where(x > 0, b + x - 1, 1.0)  # the second term exists for x > 0 only
        gone = common + betaln(a + 1, bx) - (r + x) * np.log(alpha + tx)
        return -float(np.where(x > 0, np.logaddexp(alive, gone), alive).sum())

    rep = s.filter((pl.col("x") > 0) & (pl.col("m") > 0))
    n, m = rep["x"].to_numpy(), rep["m"].to_numpy()

    def gg(params: np.ndarray) -> float:
        p, q, v = np.exp(params)
        return -float(
            (
                gammaln(p * n + q)
                - gammaln(p * n)
                - gammaln(q)
                + q * np.log(v)
                + (p * n - 1) * np.log(m)
                + p * n * np.log(n)
                - (p * n + q) * np.log(v + m * n)
            ).sum()
        )

    tight = {"gtol": 1e-6, "maxiter": 10000}
    bg_fit = optimize.minimize(bg, np.zeros(4), method="BFGS", options=tight)
    start = np.log([1.0, 1.0, float(np.median(m))])
    gg_fit = optimize.minimize(gg, start, method="BFGS", options=tight)
    assert bg_fit.success  # BFGS may end Gamma-Gamma on 'precision loss' at the optimum
    return np.exp(bg_fit.x), np.exp(gg_fit.x)


def test_clv_fit_matches_the_published_models() -> None:
    s = _simulated()
    ours = clv.fit(s)
    bg, gg = _reference_fit(s)
    assert ours.converged
    assert [ours.r, ours.alpha, ours.a, ours.b] == pytest.approx(list(bg), rel=5e-3)
    assert [ours.p, ours.q, ours.v] == pytest.approx(list(gg), rel=5e-3)
    # And near the values the customers were drawn from (sampling error aside).
    assert [ours.r, ours.alpha, ours.a, ours.b] == pytest.approx([0.25, 4.0, 0.8, 2.5], rel=0.35)
    assert [ours.p, ours.q, ours.v] == pytest.approx([6.0, 4.0, 15.0], rel=0.35)


def test_a_one_time_buyer_is_valued_at_the_population_mean() -> None:
    # One purchase of 1,119.68: the Gamma-Gamma convention of the papers gives the
    # population's mean purchase value, not the customer's own (741.88 before).
    fit = clv.Fit(
        r=0.24, alpha=4.4, a=0.79, b=2.4, p=6.25, q=3.74, v=15.44, seconds=0.0, converged=True
    )
    one = pl.DataFrame(
        {"customer_id": ["1"], "x": [0.0], "t_x": [0.0], "T": [20.0], "m": [0.0], "mean": [1119.68]}
    )
    value = clv.predict(one, fit)["expected_value"][0]
    assert value == pytest.approx(6.25 * 15.44 / (3.74 - 1))  # 35.22
    repeat = one.with_columns(x=pl.lit(2.0), t_x=pl.lit(10.0), m=pl.lit(100.0))
    shrunk = clv.predict(repeat, fit)["expected_value"][0]
    assert shrunk == pytest.approx(6.25 * (15.44 + 2 * 100.0) / (6.25 * 2 + 3.74 - 1))


def test_kpis_of_an_erp_without_invoices_raise_no_warning() -> None:
    import warnings

    snap = Snapshot.from_rows(
        as_of=dt.date(2025, 1, 1), customers=[{"customer_id": "1", "name": "New"}]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 0/0 RuntimeWarning in the CLV fit
        out = kpis.compute(snapshot=snap, settings={})
    assert out.height <= 1
