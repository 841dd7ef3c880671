"""Per-customer sums of the sales that segmentation, loyalty and kpis all need.

RFM, ABC, the value and payment KPIs and the loyalty thresholds each reduce the
sales to one row per customer over a rolling window.  Computed here in one pass
per window and shared through ``Snapshot.shared`` (with the default settings all
three plugins use 365 days, so the sales are aggregated once, not five times).

Rules: the window is the ``window_days`` days up to the analysis date (a sale
dated ``as_of - window_days`` is outside it); the previous window the same
length before it.  Credit notes count in revenue (negative), not as invoices.
Days late are those of the window's invoices that are paid and have a due
date, early counting as 0.  Overdue: unpaid invoices past their due date today.
Amounts are summed as decimals of six places (exact: 128-bit integers of
millionths, no overflow below 10**32), so a sum is the same whatever order
Polars' threads add in: a float sum varies in its last bit from
run to run, which moved an average on a half cent (or an ABC tie) to either
side and rewrote those cells in the ERP on a run where nothing had changed.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_bridge import Snapshot

COLUMNS = (
    "customer_id",
    "first_sale",  # first invoice or credit note
    "last_invoice",  # last invoice (credit notes excluded); null when none
    "invoices",  # all time
    "revenue",  # all time, credit notes deducted
    "revenue_w",  # in the window
    "invoices_w",
    "revenue_prev_w",  # in the window before
    "days_late_w",  # mean over the window's paid invoices with a due date
    "paid_w",
    "paid_late_w",
    "overdue_amount",  # unpaid invoices past due today
    "overdue_days",  # the oldest of them, in days past due; null when none
)

MONEY = ("revenue", "revenue_w", "revenue_prev_w", "overdue_amount")
EXACT = pl.Decimal(38, 6)  # amounts as summed: millionths, added exactly


def money_sum(amount: pl.Expr) -> pl.Expr:
    """The sum of ``amount`` added exactly (see the module's docstring), as a float."""
    return amount.cast(EXACT).sum().cast(pl.Float64)


def customer_sales(snapshot: Snapshot, window_days: int) -> pl.LazyFrame:
    """One row per customer with a sale, the columns in ``COLUMNS``."""
    return snapshot.shared(
        f"crm_bridge.customer_sales:{window_days}", lambda: _query(snapshot, window_days)
    )


def _query(snapshot: Snapshot, window_days: int) -> pl.LazyFrame:
    as_of = snapshot.as_of
    start = as_of - dt.timedelta(days=window_days)
    invoice = pl.col("kind") == "invoice"
    window = pl.col("date") > start
    previous = (pl.col("date") > start - dt.timedelta(days=window_days)) & ~window
    late = (pl.col("paid_date") - pl.col("due_date")).dt.total_days()
    paid = invoice & window & late.is_not_null()
    # unpaid: no payment date, and not marked paid (Odoo, ERPNext and NAV give no date)
    unpaid = pl.col("paid_date").is_null() & ~pl.col("settled")
    overdue = invoice & unpaid & (pl.col("due_date") < as_of)
    amount = pl.col("amount").cast(EXACT)  # rounded to millionths: exact sums
    # Per-row columns, then plain sums, min and max: they stream; filters inside
    # an aggregation do not.
    return (
        snapshot.sales()
        .select(
            "customer_id",
            first_sale=pl.col("date"),
            last_invoice=pl.when(invoice).then(pl.col("date")),
            invoices=invoice,
            revenue=amount,
            revenue_w=pl.when(window).then(amount).otherwise(0),
            invoices_w=invoice & window,
            revenue_prev_w=pl.when(previous).then(amount).otherwise(0),
            days_late_w=pl.when(paid).then(late.clip(lower_bound=0)),
            paid_w=paid,
            paid_late_w=paid & (late > 0),
            overdue_amount=pl.when(overdue).then(amount).otherwise(0),
            overdue_days=pl.when(overdue).then(
                (pl.lit(as_of) - pl.col("due_date")).dt.total_days()
            ),
        )
        .group_by("customer_id")
        .agg(
            pl.col("first_sale").min(),
            pl.col("last_invoice").max(),
            pl.col("invoices", "revenue", "revenue_w", "invoices_w", "revenue_prev_w").sum(),
            pl.col("days_late_w").mean(),
            pl.col("paid_w", "paid_late_w", "overdue_amount").sum(),
            pl.col("overdue_days").max(),
        )
        .with_columns(pl.col(MONEY).cast(pl.Float64))
        .select(COLUMNS)
    )
