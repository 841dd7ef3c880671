"""ABC by revenue (or gross margin) and XYZ by the steadiness of monthly demand.

ABC: customers sorted by value, descending (ties by customer id); A are the
customers making the first ``a`` share of the total (the customer that crosses
the line is in A), B the next up to ``b``, C the rest, including customers whose
value is zero or negative.

XYZ: the coefficient of variation (population std / mean) of the customer's
monthly revenue (or quantity) over the last ``months`` calendar months, the
current one included.  Months without a purchase count as zero - steadiness is
the point - but months before the customer's first purchase do not, so a new
customer is not penalised.  A customer with fewer than 3 observed months or a
non-positive mean gets no class.  With equal amounts, buying in k of 12 months
gives CV = sqrt((12 - k) / k): 0 for every month, 1.0 for 6 months, 1.73 for 3,
2.24 for 2, 3.32 for 1.  The classic product thresholds (0.10 / 0.25) would put
nearly every customer in Z, so the defaults are X <= 1.0 (buys in about half
the months or more), Y <= 2.5 (buys in at least two months), Z above.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_bridge import Snapshot

from ..customer_sales import customer_sales, money_sum

ABC_DEFAULT = (0.80, 0.95)
XYZ_DEFAULT = (1.0, 2.5)


def value_per_customer(snapshot: Snapshot, basis: str, window_days: int) -> pl.DataFrame:
    """Net revenue (or gross margin) per customer over the window.

    Every customer who ever bought is listed; no sale in the window is a value of 0.
    """
    since = snapshot.as_of - dt.timedelta(days=window_days)
    in_window = pl.col("date").is_between(since, snapshot.as_of, closed="right")
    if basis == "margin":
        value = (
            snapshot.sales_lines()
            .filter(in_window)
            .group_by("customer_id")
            .agg(value=money_sum(pl.col("amount") - pl.col("cost").fill_null(0)))
        )
        buyers = snapshot.sales().select("customer_id").unique()
        value = buyers.join(value, on="customer_id", how="left")
    else:
        value = customer_sales(snapshot, window_days).select("customer_id", value="revenue_w")
    return value.with_columns(pl.col("value").fill_null(0.0)).collect()


def abc(values: pl.DataFrame, thresholds: tuple[float, float] = ABC_DEFAULT) -> pl.DataFrame:
    """customer_id, value, share, cum_share_before, abc_class."""
    a, b = thresholds
    ranked = values.sort(
        [pl.col("value"), pl.col("customer_id").cast(pl.String)], descending=[True, False]
    )
    positive = ranked["value"].clip(lower_bound=0).to_numpy()
    total = positive.sum()
    # A true division (Polars multiplies by 1/total, which overflows for a tiny total).
    ranked = ranked.with_columns(share=positive / total if total > 0 else 0.0)
    ranked = ranked.with_columns(before=pl.col("share").cum_sum() - pl.col("share"))
    return ranked.with_columns(
        abc_class=pl.when(pl.col("value") <= 0)
        .then(pl.lit("C"))
        .when(pl.col("before") < a)
        .then(pl.lit("A"))
        .when(pl.col("before") < b)
        .then(pl.lit("B"))
        .otherwise(pl.lit("C"))
    )


def monthly_cv(snapshot: Snapshot, months: int, basis: str) -> pl.DataFrame:
    """customer_id, demand_cv over the last ``months`` calendar months."""
    end = snapshot.as_of.replace(day=1)
    start = pl.select(pl.lit(end).dt.offset_by(f"-{months - 1}mo")).item()
    recent = pl.col("date").is_between(start, snapshot.as_of)
    if basis == "quantity":
        lines = snapshot.sales_lines().select("customer_id", "date", value=pl.col("quantity"))
    else:
        lines = snapshot.sales().select("customer_id", "date", value=pl.col("amount"))
    first = customer_sales(snapshot, 365).select("customer_id", first="first_sale")
    monthly = (
        lines.filter(recent)
        .group_by("customer_id", month=pl.col("date").dt.month_start())
        .agg(v=pl.col("value").sum())
    )
    per = monthly.group_by("customer_id").agg(
        total=pl.col("v").sum(), sum_sq=(pl.col("v") ** 2).sum()
    )
    opened = pl.max_horizontal(pl.col("first"), pl.lit(start))
    per = per.join(first, on="customer_id").with_columns(
        n=((end.year - opened.dt.year()) * 12 + end.month - opened.dt.month() + 1).cast(pl.Float64)
    )
    mean = pl.col("total") / pl.col("n")
    var = (pl.col("sum_sq") / pl.col("n") - mean**2).clip(lower_bound=0)
    return per.select(
        "customer_id",
        demand_cv=pl.when((pl.col("n") >= 3) & (mean > 0)).then(var.sqrt() / mean),
    ).collect()


def xyz(cv: pl.Expr, thresholds: tuple[float, float] = XYZ_DEFAULT) -> pl.Expr:
    x, y = thresholds
    return (
        pl.when(cv.is_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(cv <= x)
        .then(pl.lit("X"))
        .when(cv <= y)
        .then(pl.lit("Y"))
        .otherwise(pl.lit("Z"))
    )
