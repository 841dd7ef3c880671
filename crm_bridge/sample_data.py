"""Seeded, deterministic generator of a realistic customer base.

One generator serves the demo (loaded into a real Tryton), the tests and the
benchmarks (fed straight to the plugins at up to millions of rows), so it is
vectorised with NumPy and returns the canonical snapshot tables.

The shape of the data is what a CRM analysis needs to be interesting:
purchase rates are Pareto-skewed (a fifth of the customers make most of the
revenue), some customers churn, each customer belongs to an industry with its
own product preferences, a share of the customers pays late, some invoices are
credited, quotes are accepted or refused, opportunities are won or lost
(sometimes without a recorded reason) and a few customers complain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from crm_bridge.snapshot import Snapshot

INDUSTRIES = ("Retail", "Manufacturing", "Services", "Hospitality")
PRODUCT_CATALOGUE = (
    # code, name, category, list price, cost ratio
    ("P-PAPER", "Printer paper (box)", "Office supplies", 24.0, 0.55),
    ("P-TONER", "Toner cartridge", "Office supplies", 89.0, 0.6),
    ("P-CHAIR", "Ergonomic chair", "Furniture", 340.0, 0.5),
    ("P-DESK", "Standing desk", "Furniture", 610.0, 0.55),
    ("P-LAPTOP", "Business laptop", "IT equipment", 1150.0, 0.78),
    ("P-SCREEN", "27-inch monitor", "IT equipment", 260.0, 0.72),
    ("P-COFFEE", "Coffee beans (5 kg)", "Catering", 75.0, 0.45),
    ("P-CLEAN", "Cleaning kit", "Catering", 38.0, 0.4),
    ("S-INSTALL", "Installation service", "Services", 180.0, 0.3),
    ("S-CONTRACT", "Service contract (yearly)", "Services", 950.0, 0.25),
)
# Relative product preference per industry (rows follow INDUSTRIES).
PREFERENCES = np.array(
    [
        [8, 6, 2, 1, 2, 3, 3, 4, 1, 1],
        [3, 2, 4, 3, 4, 4, 1, 3, 3, 2],
        [6, 5, 5, 4, 6, 6, 2, 1, 2, 3],
        [2, 1, 3, 2, 1, 1, 9, 8, 1, 1],
    ],
    dtype=float,
)
LOST_REASONS = ("Price too high", "Chose a competitor", "No budget", "Project postponed")
COMPLAINT_TYPES = ("Late delivery", "Damaged goods", "Wrong invoice", "Service quality")
PAYMENT_TERM_DAYS = 30


@dataclass(frozen=True)
class Profile:
    """How much data to make; the defaults give the demo's few hundred customers."""

    customers: int = 300
    years: int = 3
    invoices_per_year: float = 1.0
    seed: int = 42
    end: dt.date | None = None


def _ids(prefix: str, n: int) -> pl.Series:
    digits = pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String).str.zfill(7)
    return pl.select((pl.lit(prefix) + digits).alias("id")).to_series()


def _names(n: int, rng: np.random.Generator) -> list[str]:
    first = (
        "Alder",
        "Birch",
        "Cedar",
        "Delta",
        "Elm",
        "Fjord",
        "Granite",
        "Harbor",
        "Iris",
        "Juniper",
        "Kestrel",
        "Linden",
        "Maple",
        "Nordic",
        "Oak",
        "Pine",
        "Quarry",
        "Raven",
        "Summit",
        "Tidal",
        "Union",
        "Valley",
        "Willow",
        "Yarrow",
        "Zenith",
    )
    second = (
        "Trading",
        "Works",
        "Foods",
        "Logistics",
        "Studio",
        "Partners",
        "Supplies",
        "Systems",
        "Hotels",
        "Retail",
        "Bakery",
        "Clinic",
        "Garage",
        "Print",
        "Labs",
    )
    kind = ("Ltd", "GmbH", "SARL", "Inc", "& Co", "BV")
    a = rng.integers(0, len(first), n)
    b = rng.integers(0, len(second), n)
    c = rng.integers(0, len(kind), n)
    return [
        f"{first[i]} {second[j]} {kind[k]} {num}"
        for num, (i, j, k) in enumerate(zip(a, b, c, strict=True), start=1)
    ]


def generate(profile: Profile | None = None) -> Snapshot:
    """Return a snapshot of ``profile.customers`` customers over ``profile.years`` years."""
    p = profile or Profile()
    rng = np.random.default_rng(p.seed)
    end = p.end or dt.date.today()
    span = 365 * p.years
    start = end - dt.timedelta(days=span)
    epoch = np.datetime64(start, "D")
    n = p.customers

    # Customers: when they start, whether and when they leave, how often they buy.
    first_day = np.where(rng.random(n) < 0.6, 0, rng.integers(0, int(span * 0.8), n))
    churned = rng.random(n) < 0.3
    last_day = np.where(churned, first_day + (rng.random(n) * (span - first_day)).astype(int), span)
    rate = p.invoices_per_year * (1 + rng.pareto(1.6, n))
    rate = np.minimum(rate, 80.0)
    never_bought = rng.random(n) < 0.06
    active_years = np.maximum(last_day - first_day, 1) / 365
    n_inv = np.where(never_bought, 0, np.maximum(rng.poisson(rate * active_years), 1))
    industry = rng.integers(0, len(INDUSTRIES), n)
    size = rng.lognormal(0.0, 0.7, n)
    payer = rng.choice(3, n, p=[0.7, 0.2, 0.1])  # punctual, slow, bad
    cust_ids = _ids("C", n)

    customers = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "name": _names(n, rng),
            "code": cust_ids,
            "active": ~(churned & (rng.random(n) < 0.1)),
            "industry": np.array(INDUSTRIES)[industry],
            "created_at": (epoch + first_day.astype("timedelta64[D]")).astype("datetime64[us]"),
        }
    )
    customers = customers.with_columns(pl.col("created_at").alias("updated_at"))

    cat = PRODUCT_CATALOGUE
    products = pl.DataFrame(
        {
            "product_id": [f"P{i:07d}" for i in range(1, len(cat) + 1)],
            "code": [c[0] for c in cat],
            "name": [c[1] for c in cat],
            "category": [c[2] for c in cat],
            "list_price": [c[3] for c in cat],
            "cost_price": [round(c[3] * c[4], 2) for c in cat],
        }
    )
    list_price = products["list_price"].to_numpy()
    cost_price = products["cost_price"].to_numpy()

    # Invoices.
    inv_cust = np.repeat(np.arange(n), n_inv)
    m = inv_cust.size
    inv_day = first_day[inv_cust] + (rng.random(m) * (last_day - first_day)[inv_cust]).astype(int)
    inv_day = np.minimum(inv_day, span - 1)
    order = np.lexsort((inv_cust, inv_day))
    inv_cust, inv_day = inv_cust[order], inv_day[order]
    roll = rng.random(m)
    state = np.where(roll < 0.005, "draft", np.where(roll < 0.01, "cancelled", "posted"))

    # Invoice lines: product by industry preference, quantity by customer size.
    n_lines = np.minimum(1 + rng.poisson(1.0, m), 6)
    line_inv = np.repeat(np.arange(m), n_lines)
    k = line_inv.size
    cum = np.cumsum(PREFERENCES / PREFERENCES.sum(axis=1, keepdims=True), axis=1)
    line_ind = industry[inv_cust[line_inv]]
    product = (rng.random(k)[:, None] > cum[line_ind]).sum(axis=1)
    product = np.minimum(product, len(cat) - 1)
    qty = (1 + rng.poisson(2.0 * size[inv_cust[line_inv]])).astype(float)
    discount = rng.choice([0.0, 0.05, 0.1], k, p=[0.6, 0.3, 0.1])
    unit_price = np.round(list_price[product] * (1 - discount), 2)

    # Credit notes: a few invoices get one line partly refunded a few weeks later.
    credited = np.flatnonzero((state == "posted") & (rng.random(m) < 0.03))
    c = credited.size
    first_line = np.concatenate(([0], np.cumsum(n_lines)[:-1]))
    cr_line = first_line[credited]
    cr_day = np.minimum(inv_day[credited] + rng.integers(5, 40, c), span - 1)
    all_cust = np.concatenate((inv_cust, inv_cust[credited]))
    all_day = np.concatenate((inv_day, cr_day))
    all_state = np.concatenate((state, np.full(c, "posted")))
    kind = np.concatenate((np.full(m, "invoice"), np.full(c, "credit_note")))
    line_inv = np.concatenate((line_inv, m + np.arange(c)))
    product = np.concatenate((product, product[cr_line]))
    qty = np.concatenate((qty, -np.maximum(1.0, np.floor(qty[cr_line] / 2))))
    unit_price = np.concatenate((unit_price, unit_price[cr_line]))
    amount = np.round(qty * unit_price, 2)
    cost = np.round(qty * cost_price[product], 2)
    total = np.bincount(line_inv, weights=amount, minlength=m + c)

    # Payment: punctual payers around the due date, slow and bad payers later.
    all_date = epoch + all_day.astype("timedelta64[D]")
    all_due = all_date + np.timedelta64(PAYMENT_TERM_DAYS, "D")
    delay_mean = np.array([1.0, 15.0, 45.0])[payer[all_cust]]
    delay = np.round(rng.exponential(delay_mean) - 4).astype(int)
    paid_day = all_day + PAYMENT_TERM_DAYS + delay
    paid = (all_state == "posted") & (paid_day < span) & (kind == "invoice")
    paid &= rng.random(m + c) < 0.995
    all_state = np.where(paid, "paid", all_state)
    all_state = np.where(kind == "credit_note", "paid", all_state)
    paid_date = np.where(
        paid, epoch + np.maximum(paid_day, all_day).astype("timedelta64[D]"), np.datetime64("NaT")
    )
    inv_ids = _ids("I", m + c)

    invoices = pl.DataFrame(
        {
            "invoice_id": inv_ids,
            "customer_id": cust_ids.gather(all_cust),
            "number": inv_ids,
            "kind": kind,
            "state": all_state,
            "date": all_date.astype("datetime64[D]"),
            "due_date": all_due.astype("datetime64[D]"),
            "currency": "EUR",
            "amount": np.round(total, 2),
            "paid_date": paid_date.astype("datetime64[D]"),
        }
    ).with_columns(pl.col("date").cast(pl.Datetime("us")).alias("updated_at"))
    lines = pl.DataFrame(
        {
            "line_id": _ids("L", line_inv.size),
            "invoice_id": inv_ids.gather(line_inv),
            "customer_id": cust_ids.gather(all_cust[line_inv]),
            "product_id": products["product_id"].gather(product),
            "quantity": qty,
            "unit_price": unit_price,
            "amount": amount,
            "cost": cost,
        }
    )
    pay_idx = np.flatnonzero(paid)
    payments = pl.DataFrame(
        {
            "payment_id": _ids("Y", pay_idx.size),
            "invoice_id": inv_ids.gather(pay_idx),
            "customer_id": cust_ids.gather(all_cust[pay_idx]),
            "date": paid_date[pay_idx].astype("datetime64[D]"),
            "amount": np.round(total[pay_idx], 2),
        }
    )

    # Quotes: accepted, refused or still open (only recent ones stay open).
    n_q = np.where(n_inv > 0, rng.poisson(rate * active_years * 0.3), rng.poisson(0.7, n))
    q_cust = np.repeat(np.arange(n), n_q)
    q = q_cust.size
    q_day = first_day[q_cust] + (rng.random(q) * (last_day - first_day)[q_cust]).astype(int)
    q_day = np.minimum(q_day, span - 1)
    q_roll = rng.random(q)
    q_state = np.where(q_roll < 0.5, "confirmed", "cancelled")
    q_state = np.where((q_roll > 0.8) & (q_day > span - 90), "quotation", q_state)
    q_lines = np.minimum(1 + rng.poisson(0.6, q), 4)
    ql_order = np.repeat(np.arange(q), q_lines)
    ql_product = (rng.random(ql_order.size)[:, None] > cum[industry[q_cust[ql_order]]]).sum(axis=1)
    ql_product = np.minimum(ql_product, len(cat) - 1)
    ql_qty = (1 + rng.poisson(2.0 * size[q_cust[ql_order]])).astype(float)
    ql_amount = np.round(ql_qty * list_price[ql_product], 2)
    q_ids = _ids("Q", q)
    q_dates = epoch + q_day.astype("timedelta64[D]")
    sale_orders = pl.DataFrame(
        {
            "order_id": q_ids,
            "customer_id": cust_ids.gather(q_cust),
            "date": q_dates.astype("datetime64[D]"),
            "state": q_state,
            "amount": np.round(np.bincount(ql_order, weights=ql_amount, minlength=q), 2),
        }
    )
    sale_order_lines = pl.DataFrame(
        {
            "line_id": _ids("QL", ql_order.size),
            "order_id": q_ids.gather(ql_order),
            "customer_id": cust_ids.gather(q_cust[ql_order]),
            "product_id": products["product_id"].gather(ql_product),
            "quantity": ql_qty,
            "amount": ql_amount,
        }
    )

    # Opportunities: won, lost (a fifth without a recorded reason), or still open.
    n_o = rng.poisson(0.5 * p.years, n)
    o_cust = np.repeat(np.arange(n), n_o)
    o = o_cust.size
    o_day = rng.integers(0, span, o)
    o_roll = rng.random(o)
    o_state = np.select(
        [o_roll < 0.4, o_roll < 0.75, o_roll < 0.9], ["won", "lost", "opportunity"], "lead"
    )
    reason = np.array(LOST_REASONS)[rng.integers(0, len(LOST_REASONS), o)]
    recorded = (o_state == "lost") & (rng.random(o) > 0.2)
    o_product = (rng.random(o)[:, None] > cum[industry[o_cust]]).sum(axis=1)
    opportunities = pl.DataFrame(
        {
            "opportunity_id": _ids("O", o),
            "customer_id": cust_ids.gather(o_cust),
            "date": (epoch + o_day.astype("timedelta64[D]")).astype("datetime64[D]"),
            "state": o_state,
            "product_id": products["product_id"].gather(np.minimum(o_product, len(cat) - 1)),
            "amount": np.round(
                list_price[np.minimum(o_product, len(cat) - 1)] * (1 + rng.poisson(3, o)), 2
            ),
            "lost_reason": pl.Series(reason, dtype=pl.String).zip_with(
                pl.Series(recorded), pl.Series([None] * o, dtype=pl.String)
            ),
        }
    )

    # Complaints: bad payers and big buyers complain more.
    n_c = rng.poisson(0.12 * p.years * (1 + payer) * np.minimum(size, 3), n) * (n_inv > 0)
    c_cust = np.repeat(np.arange(n), n_c)
    cc = c_cust.size
    c_type = np.array(COMPLAINT_TYPES)[rng.integers(0, len(COMPLAINT_TYPES), cc)]
    complaints = pl.DataFrame(
        {
            "complaint_id": _ids("K", cc),
            "customer_id": cust_ids.gather(c_cust),
            "date": (epoch + rng.integers(0, span, cc).astype("timedelta64[D]")).astype(
                "datetime64[D]"
            ),
            "type": c_type,
            "description": [f"{t} reported by the customer" for t in c_type],
            "state": rng.choice(["done", "approved", "waiting"], cc, p=[0.7, 0.2, 0.1]),
        }
    )
    return Snapshot.from_frames(
        as_of=end,
        customers=customers,
        products=products,
        invoices=invoices,
        invoice_lines=lines,
        payments=payments,
        sale_orders=sale_orders,
        sale_order_lines=sale_order_lines,
        opportunities=opportunities,
        complaints=complaints,
    )
