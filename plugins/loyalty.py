"""The loyalty plugin: tiers with hysteresis, financial conditions, and points.

Tiers are checked from the best down; a customer qualifies for a tier when every
threshold it sets is met over the rolling window (net spend, number of
invoices, gross margin) and its financial conditions hold today (average days
late on invoices paid in the window, the oldest overdue invoice).

- Upgrade as soon as the thresholds are met.
- Downgrade only after ``grace_days`` spent below the current tier's thresholds
  (``loyalty_below_since`` records when that started; it is read back from the
  state store, the values crm-bridge last wrote, so the rule holds across runs).
- Financial conditions have no grace: a Gold customer with an invoice 90 days
  overdue is capped at once at the best tier whose conditions still hold.

Points: ``points_per_unit`` per currency unit of net invoiced amount (credit
notes deduct), expiring ``points_expiry_days`` after the invoice date; the ERP
records no redemptions, so none are deducted.  Customers who never bought get
no loyalty values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from crm_bridge import Field, Snapshot, hookimpl
from crm_bridge.i18n import _, frame_format, ngettext, number

from .customer_sales import customer_sales, money_sum

TIER_KEYS = ("platinum", "gold", "silver", "bronze")
NONE = "member"
DEFAULT_TIERS: list[dict[str, Any]] = [
    {
        "key": "gold",
        "min_spend": 10000,
        "min_purchases": 4,
        "discount": 10,
        "max_avg_days_late": 30,
        "max_overdue_days": 60,
    },
    {"key": "silver", "min_spend": 3000, "min_purchases": 2, "discount": 5},
    {"key": "bronze", "min_spend": 500, "discount": 2},
]
TIER_SCHEMA = {
    "type": "object",
    "required": ["key"],
    "additionalProperties": False,
    "properties": {
        "key": {"enum": list(TIER_KEYS)},
        "min_spend": {"type": "number", "minimum": 0},
        "min_purchases": {"type": "integer", "minimum": 0},
        "min_margin": {"type": "number"},
        "discount": {"type": "number", "minimum": 0, "maximum": 100},
        "max_avg_days_late": {"type": "number", "minimum": 0},
        "max_overdue_days": {"type": "integer", "minimum": 0},
    },
}


@hookimpl
def config_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "window_days": {"type": "integer", "minimum": 30, "maximum": 3650, "default": 365},
            "grace_days": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 90},
            "tiers": {
                "type": "array",
                "items": TIER_SCHEMA,
                "minItems": 1,
                "maxItems": 4,
                "description": "Best tier first; keys platinum, gold, silver, bronze.",
            },
            "points_per_unit": {"type": "number", "minimum": 0, "default": 1},
            "points_expiry_days": {"type": "integer", "minimum": 1, "default": 365},
        },
    }


@hookimpl
def declare_fields() -> list[Field]:
    return [
        Field(
            "loyalty_tier",
            "selection",
            "Loyalty tier",
            "Best tier whose thresholds are met over the last 365 days (upgrade at once); "
            "downgrade only after 90 days below the current tier's thresholds.",
            choices=[(k, k.capitalize()) for k in (*TIER_KEYS, NONE)],
            list_column=True,
        ),
        Field(
            "loyalty_reason",
            "char",
            "Loyalty tier reason",
            "Why the customer has this tier, in numbers.",
        ),
        Field(
            "loyalty_discount",
            "numeric",
            "Suggested discount %",
            "The discount of the customer's tier.",
            minimum=0,
            maximum=100,
            digits=1,
        ),
        Field(
            "loyalty_points",
            "integer",
            "Loyalty points",
            "1 point per currency unit of net invoiced amount, each invoice's points "
            "expiring 365 days after its date.",
            minimum=0,
        ),
        Field(
            "loyalty_points_expiring",
            "integer",
            "Points expiring in 30 days",
            "Points of the balance that expire in the next 30 days.",
            minimum=0,
        ),
        Field(
            "loyalty_next_expiry",
            "date",
            "Next points expiry",
            "Date on which the oldest points of the balance expire.",
        ),
        Field(
            "loyalty_below_since",
            "date",
            "Below tier since",
            "First day the customer was below the current tier's thresholds "
            "(the grace period runs from here); empty when not below.",
        ),
    ]


def metrics(snapshot: Snapshot, window_days: int) -> pl.DataFrame:
    """Per customer who ever bought: spend, purchases, margin, days late, overdue days."""
    as_of = snapshot.as_of
    since = as_of - dt.timedelta(days=window_days)
    margin = (
        snapshot.sales_lines()
        .filter(pl.col("date").is_between(since, as_of, closed="right"))
        .group_by("customer_id")
        .agg(margin=money_sum(pl.col("amount") - pl.col("cost").fill_null(0)))
    )
    per = customer_sales(snapshot, window_days).select(
        "customer_id",
        "overdue_days",
        spend="revenue_w",
        purchases=pl.col("invoices_w").cast(pl.Int64),
        avg_days_late="days_late_w",
    )
    return (
        per.join(margin, on="customer_id", how="left")
        .with_columns(
            pl.col("margin").fill_null(0.0),
            pl.col("avg_days_late").fill_null(0.0),
            pl.col("overdue_days").fill_null(0),
        )
        .collect(engine="streaming")  # reads lines: stream them
    )


def _rank(key: pl.Expr, keys: list[str]) -> pl.Expr:
    return key.replace_strict(keys, list(range(len(keys))), default=None, return_dtype=pl.Int64)


def tiers(
    m: pl.DataFrame,
    tier_list: list[dict[str, Any]],
    as_of: dt.date,
    grace_days: int,
    previous: pl.DataFrame,
) -> pl.DataFrame:
    """Apply thresholds, financial caps and hysteresis; ``previous`` holds
    customer_id, prev_tier, prev_below_since (nulls when unknown)."""
    keys = [t["key"] for t in tier_list] + [NONE]
    none_rank = len(tier_list)
    thresholds = pl.lit(none_rank)
    financial = pl.lit(none_rank)
    for rank in reversed(range(len(tier_list))):
        t = tier_list[rank]
        ok = (
            (pl.col("spend") >= t.get("min_spend", 0))
            & (pl.col("purchases") >= t.get("min_purchases", 0))
            & (pl.col("margin") >= t.get("min_margin", float("-inf")))
        )
        fin = (pl.col("avg_days_late") <= t.get("max_avg_days_late", float("inf"))) & (
            pl.col("overdue_days") <= t.get("max_overdue_days", 10**9)
        )
        thresholds = pl.when(ok).then(pl.lit(rank)).otherwise(thresholds)
        financial = pl.when(fin).then(pl.lit(rank)).otherwise(financial)
    previous = previous.with_columns(pl.col("customer_id").cast(m.schema["customer_id"]))
    df = m.with_columns(qualified=thresholds, cap=financial).join(
        previous, on="customer_id", how="left"
    )
    prev = _rank(pl.col("prev_tier"), keys)
    since = pl.col("prev_below_since")
    grace_over = (pl.lit(as_of) - since).dt.total_days() >= grace_days
    below = prev.is_not_null() & (pl.col("qualified") > prev)
    held = below & (since.is_null() | ~grace_over)
    df = df.with_columns(
        hyst=pl.when(held).then(prev).otherwise(pl.col("qualified")),
        below_since=pl.when(held).then(pl.coalesce(since, pl.lit(as_of))),
    )
    df = df.with_columns(rank=pl.max_horizontal("hyst", "cap"))
    df = df.with_columns(
        below_since=pl.when(pl.col("rank") == pl.col("hyst")).then(pl.col("below_since"))
    )
    discounts = [float(t.get("discount", 0)) for t in tier_list] + [0.0]
    return df.with_columns(
        loyalty_tier=pl.col("rank").replace_strict(list(range(len(keys))), keys),
        loyalty_discount=pl.col("rank").replace_strict(list(range(len(keys))), discounts),
    )


def _reason(tier_list: list[dict[str, Any]], window_days: int, counts: list[int]) -> pl.Expr:
    """Why each customer has its tier, in numbers, in the ``[locale] language`` of the run."""
    label = pl.col("loyalty_tier").replace_strict(
        {k: _(k.capitalize()) for k in (*TIER_KEYS, NONE)}, default=pl.col("loyalty_tier")
    )
    spend = pl.col("spend").round(0).cast(pl.Int64)
    invoices = pl.col("purchases").replace_strict(
        {n: ngettext("{count} invoice", "{count} invoices", n).format(count=n) for n in counts},
        default=pl.col("purchases").cast(pl.String),
        return_dtype=pl.String,
    )
    payment = (
        pl.when(pl.col("overdue_days") > 0)
        .then(frame_format(_("oldest overdue invoice {days} days"), days=pl.col("overdue_days")))
        .when(pl.col("avg_days_late") > 0)
        .then(
            frame_format(
                _("paid {days} days late on average"),
                days=pl.col("avg_days_late").round(0).cast(pl.Int64),
            )
        )
        .otherwise(pl.lit(_("paid on time")))
    )
    facts = frame_format(
        _("{window}-day spend {spend}, {invoices}; {payment}"),
        window=pl.lit(window_days),
        spend=spend,
        invoices=invoices,
        payment=payment,
    )
    why: Any = (
        pl.when(pl.col("below_since").is_not_null())
        .then(
            frame_format(
                _("below thresholds since {date}, kept during the grace period"),
                date=pl.col("below_since"),
            )
        )
        .when(pl.col("cap") > pl.col("hyst"))
        .then(pl.lit(_("capped by payment conditions")))
    )
    for rank, t in enumerate(tier_list):
        text = _("meets spend >= {spend}").format(spend=number(t.get("min_spend", 0)))
        if t.get("min_purchases"):
            text += _(", >= {count} invoices").format(count=t["min_purchases"])
        why = why.when(pl.col("rank") == rank).then(pl.lit(text))
    why = why.otherwise(pl.lit(_("below every tier")))
    return frame_format(_("{tier}: {facts} ({why})"), tier=label, facts=facts, why=why)


def points(snapshot: Snapshot, per_unit: float, expiry_days: int) -> pl.DataFrame:
    as_of = snapshot.as_of
    live_since = as_of - dt.timedelta(days=expiry_days)
    earned = snapshot.sales().filter(pl.col("date").is_between(live_since, as_of, closed="right"))
    earned = earned.with_columns(pts=(pl.col("amount") * per_unit).floor().cast(pl.Int64))
    soon = pl.col("date") <= live_since + dt.timedelta(days=30)
    return (
        earned.group_by("customer_id")
        .agg(
            loyalty_points=pl.col("pts").sum().clip(lower_bound=0),
            loyalty_points_expiring=pl.when(soon)
            .then(pl.col("pts"))
            .otherwise(0)
            .sum()
            .clip(lower_bound=0),
            loyalty_next_expiry=(
                pl.when(pl.col("pts") > 0).then(pl.col("date")).min()
                + pl.duration(days=expiry_days)
            ),
        )
        .collect()
    )


def _previous(snapshot: Snapshot) -> pl.DataFrame:
    """Each customer's tier and "below since" as last written (from the state store),
    else as the ERP holds them."""
    names = ["loyalty_tier", "loyalty_below_since"]
    written = snapshot.values("previous", names)
    held = snapshot.values("current", names).join(written, on="customer_id", how="anti")
    return (
        pl.concat([written, held], how="vertical_relaxed")
        .filter(pl.col("loyalty_tier").cast(pl.String).fill_null("") != "")
        .select(
            pl.col("customer_id").cast(pl.String).cast(pl.Categorical),
            pl.col("loyalty_tier").cast(pl.String).alias("prev_tier"),
            pl.col("loyalty_below_since").cast(pl.Date).alias("prev_below_since"),
        )
    )


@hookimpl
def compute(snapshot: Snapshot, settings: Mapping[str, Any]) -> pl.DataFrame:
    window = int(settings.get("window_days", 365))
    tier_list = list(settings.get("tiers", DEFAULT_TIERS))
    m = metrics(snapshot, window)
    out = tiers(
        m, tier_list, snapshot.as_of, int(settings.get("grace_days", 90)), _previous(snapshot)
    )
    pts = points(
        snapshot,
        float(settings.get("points_per_unit", 1)),
        int(settings.get("points_expiry_days", 365)),
    )
    return (
        out.with_columns(
            loyalty_reason=_reason(tier_list, window, out["purchases"].unique().to_list())
        )
        .join(pts, on="customer_id", how="left")
        .select(
            "customer_id",
            "loyalty_tier",
            "loyalty_reason",
            "loyalty_discount",
            pl.col("loyalty_points").fill_null(0),
            pl.col("loyalty_points_expiring").fill_null(0),
            "loyalty_next_expiry",
            loyalty_below_since="below_since",
        )
    )
