"""The KPI plugin: value, dynamics, churn risk, CLV, payment discipline, funnel.

Windows are the last 365 days before the analysis date ("12 months") and the
365 days before those.  Only posted and paid documents count; credit notes
deduct from revenue.  Days since the last purchase is ``rfm_recency_days`` of
the segmentation plugin and is not repeated here.  Tryton records no contacts
or tasks per customer, so no KPI is computed for them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from crm_bridge import Field, Snapshot, hookimpl
from crm_bridge.i18n import _, frame_format

from . import clv
from .customer_sales import customer_sales


def _n(name: str, label: str, help: str, digits: int = 2, **kw: Any) -> Field:
    return Field(name, "numeric", label, help, digits=digits, **kw)


def _i(name: str, label: str, help: str) -> Field:
    return Field(name, "integer", label, help, minimum=0)


@hookimpl
def config_schema() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": {}}


@hookimpl
def declare_fields() -> list[Field]:
    return [
        _n(
            "kpi_aov",
            "Average invoice value (12m)",
            "Net invoiced amount / number of invoices, last 12 months.",
        ),
        _n(
            "kpi_purchases_per_year",
            "Purchases per year",
            "Invoices per year since the first purchase (at least one year counted).",
            minimum=0,
        ),
        _i(
            "kpi_distinct_products",
            "Distinct products bought",
            "Number of different products ever invoiced to the customer.",
        ),
        _n(
            "kpi_revenue_12m",
            "Revenue (12m)",
            "Net invoiced amount, last 12 months.",
            list_column=True,
            list_total=True,
        ),
        _n(
            "kpi_revenue_growth",
            "Revenue growth % (12m)",
            "Revenue of the last 12 months against the 12 before, in %; empty when the "
            "12 before had none.",
            digits=1,
        ),
        _n(
            "kpi_interpurchase_days",
            "Typical days between purchases",
            "Average days between purchase days: (last - first) / (purchase days - 1); empty "
            "below 2 purchase days.",
            digits=1,
            minimum=0,
        ),
        _n(
            "kpi_churn_risk",
            "Churn risk",
            "1 - exp(-days since last purchase / typical days between purchases): 0.63 after "
            "one typical gap of silence, 0.95 after three. One-time buyers use the median "
            "gap of all customers.",
            digits=2,
            minimum=0,
            maximum=1,
            list_column=True,
        ),
        _n("kpi_clv_historic", "Historic CLV", "Net invoiced amount since the first purchase."),
        _n(
            "kpi_clv_12m",
            "Predicted CLV (12m)",
            "BG/NBD expected purchases in the next 52 weeks x Gamma-Gamma expected purchase "
            "value; rewritten when it moves by more than 1 %.",
            minimum=0,
            # The model is refitted on every run: a move under 1 % is the refit, not news.
            relative_tolerance=0.01,
            list_column=True,
        ),
        _n(
            "kpi_avg_days_late",
            "Average days late",
            "Days between due date and payment, invoices of the last 12 months paid so far "
            "(early counts as 0).",
            digits=1,
            minimum=0,
            list_column=True,
        ),
        _n(
            "kpi_paid_late_share",
            "Share paid late %",
            "Invoices of the last 12 months paid after their due date, in % of those paid.",
            digits=1,
            minimum=0,
            maximum=100,
        ),
        _n(
            "kpi_overdue_amount",
            "Overdue amount",
            "Unpaid invoices past their due date today.",
            minimum=0,
            list_column=True,
            list_total=True,
        ),
        _n(
            "kpi_quote_conversion",
            "Quote conversion %",
            "Accepted quotes / (accepted + refused), all time; open quotes not counted.",
            digits=1,
            minimum=0,
            maximum=100,
        ),
        _i("kpi_opportunities_won", "Opportunities won", "Won opportunities, all time."),
        _i("kpi_opportunities_lost", "Opportunities lost", "Lost opportunities, all time."),
        Field(
            "kpi_last_refusal",
            "char",
            "Last refusal",
            "Date, stage (quote or opportunity) and reason of the latest refusal; on one day "
            "a refused quote first, then the reason last in alphabetical order.",
        ),
        _i("kpi_complaints_12m", "Complaints (12m)", "Complaints received, last 12 months."),
    ]


def _sums(snapshot: Snapshot) -> pl.LazyFrame:
    """The per-customer sums of the last 365 days, shared with the other plugins."""
    return customer_sales(snapshot, 365).select(
        "customer_id",
        "invoices",
        revenue_12m="revenue_w",
        revenue_prev="revenue_prev_w",
        invoices_12m="invoices_w",
        clv_historic="revenue",
        kpi_avg_days_late=pl.col("days_late_w").round(1),
        kpi_paid_late_share=pl.when(pl.col("paid_w") > 0)
        .then(pl.col("paid_late_w") / pl.col("paid_w") * 100)
        .round(1),
        kpi_overdue_amount=pl.col("overdue_amount").round(2),
    )


PAYMENT = ("kpi_avg_days_late", "kpi_paid_late_share", "kpi_overdue_amount")


def _value_kpis(snapshot: Snapshot, days: pl.DataFrame, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """The value KPIs from the per-customer sums and the customers' purchase days
    (``clv.purchase_days``); ``keep`` columns of the sums pass on."""
    as_of = pl.lit(snapshot.as_of)
    gap = pl.when(pl.col("days") > 1).then(
        (pl.col("last") - pl.col("first")).dt.total_days() / (pl.col("days") - 1)
    )
    products = snapshot.bought().group_by("customer_id").agg(distinct_products=pl.len())
    recency = (as_of - pl.col("last")).dt.total_days()
    years = ((as_of - pl.col("first")).dt.total_days() / 365.0).clip(lower_bound=1.0)
    typical = pl.col("interpurchase").median().fill_null(365.0)  # for one-time buyers
    return (
        days.lazy()
        .join(_sums(snapshot), on="customer_id")
        .with_columns(interpurchase=gap)
        .join(products, on="customer_id", how="left")
        .select(
            "customer_id",
            *keep,
            kpi_aov=pl.when(pl.col("invoices_12m") > 0)
            .then(pl.col("revenue_12m") / pl.col("invoices_12m"))
            .round(2),
            kpi_purchases_per_year=(pl.col("invoices") / years).round(2),
            kpi_distinct_products=pl.col("distinct_products").fill_null(0).cast(pl.Int64),
            kpi_revenue_12m=pl.col("revenue_12m").round(2),
            kpi_revenue_growth=pl.when(pl.col("revenue_prev") > 0)
            .then((pl.col("revenue_12m") / pl.col("revenue_prev") - 1) * 100)
            .round(1),
            kpi_interpurchase_days=pl.col("interpurchase").round(1),
            kpi_churn_risk=(1 - (-recency / pl.col("interpurchase").fill_null(typical)).exp())
            .clip(0, 1)
            .round(2),
            kpi_clv_historic=pl.col("clv_historic").round(2),
        )
    )


def value_kpis(snapshot: Snapshot) -> pl.DataFrame:
    return _value_kpis(snapshot, clv.purchase_days(snapshot)).collect()


def payment_kpis(snapshot: Snapshot) -> pl.DataFrame:
    """Customers with an invoice: days late, share paid late, overdue amount."""
    return _sums(snapshot).filter(pl.col("invoices") > 0).select("customer_id", *PAYMENT).collect()


def _funnel(snapshot: Snapshot) -> pl.LazyFrame:
    y1 = snapshot.as_of - dt.timedelta(days=365)
    state = pl.col("state")
    # The last refusal is put in words per row and the greatest text kept: the text
    # starts with the ISO date, so that is the latest refusal; on one day a refused
    # quote comes before a lost opportunity ("q" > "o"), and two opportunities lost
    # the same day by their reasons, so the row order never decides.
    quotes = (
        snapshot.scan("sale_orders")
        .select(
            "customer_id",
            accepted=state == "confirmed",
            refused=state == "cancelled",
            refusal=pl.when(state == "cancelled").then(
                pl.format("{} quote refused", pl.col("date"))
            ),
        )
        .group_by("customer_id")
        .agg(pl.col("accepted", "refused").sum(), pl.col("refusal").max())
    )
    reason = pl.col("lost_reason").fill_null("no reason recorded")
    opportunities = (
        snapshot.scan("opportunities")
        .select(
            "customer_id",
            kpi_opportunities_won=state == "won",
            kpi_opportunities_lost=state == "lost",
            lost=pl.when(state == "lost").then(
                pl.format("{} opportunity lost: {}", pl.col("date"), reason)
            ),
        )
        .group_by("customer_id")
        .agg(
            pl.col("kpi_opportunities_won", "kpi_opportunities_lost").sum().cast(pl.Int64),
            pl.col("lost").max(),
        )
    )
    complaints = (
        snapshot.scan("complaints")
        .filter(pl.col("date") > y1)
        .group_by("customer_id")
        .agg(kpi_complaints_12m=pl.len().cast(pl.Int64))
    )
    total = pl.col("accepted") + pl.col("refused")
    return (
        quotes.join(opportunities, on="customer_id", how="full", coalesce=True)
        .join(complaints, on="customer_id", how="full", coalesce=True)
        .select(
            "customer_id",
            kpi_quote_conversion=pl.when(total > 0).then(pl.col("accepted") / total * 100).round(1),
            kpi_opportunities_won="kpi_opportunities_won",
            kpi_opportunities_lost="kpi_opportunities_lost",
            kpi_last_refusal=_in_words(pl.max_horizontal("refusal", "lost")),
            kpi_complaints_12m="kpi_complaints_12m",
        )
    )


def _in_words(refusal: pl.Expr) -> pl.Expr:
    """The last refusal in the ``[locale] language`` of the run (chosen in English above,
    where the order of the words decides a tie)."""
    date, rest = refusal.str.slice(0, 10), refusal.str.slice(11)
    reason = rest.str.strip_prefix("opportunity lost: ")
    return (
        pl.when(rest == "quote refused")
        .then(frame_format(_("{date} quote refused"), date=date))
        .when(rest.str.starts_with("opportunity lost: "))
        .then(
            frame_format(
                _("{date} opportunity lost: {reason}"),
                date=date,
                reason=pl.when(reason == "no reason recorded")
                .then(pl.lit(_("no reason recorded")))
                .otherwise(reason),
            )
        )
        .otherwise(refusal)
    )


def funnel_kpis(snapshot: Snapshot) -> pl.DataFrame:
    return _funnel(snapshot).collect()


@hookimpl
def compute(snapshot: Snapshot, settings: Mapping[str, Any]) -> pl.DataFrame:
    days = clv.purchase_days(snapshot)
    s = clv.summary(snapshot, days)
    predicted = clv.predict(s, clv.fit(s)).select(
        "customer_id", kpi_clv_12m=pl.col("clv_12m").round(2)
    )
    return (
        _value_kpis(snapshot, days, keep=PAYMENT)
        .join(predicted.lazy(), on="customer_id", how="left")
        .join(_funnel(snapshot), on="customer_id", how="full", coalesce=True)
        .join(snapshot.scan("customers").select("customer_id"), on="customer_id", how="semi")
        .with_columns(
            pl.col("kpi_complaints_12m").fill_null(0),
            pl.col("kpi_opportunities_won").fill_null(0),
            pl.col("kpi_opportunities_lost").fill_null(0),
        )
        .collect()
    )
