"""RFM: recency, frequency and monetary scores, and a named segment.

Recency is the days since the last invoice (all history); frequency the
number of invoices and monetary the net revenue (credit notes deducted) in the
window.  Scores 1-5 are quantile based with ties kept together: a customer's
score is 1 + floor(5 x share of customers strictly worse), so equal values
always get equal scores.  When half the customers bought exactly once they all
get F = 1, and the others spread over F = 3..5 (F = 2 stays empty).  The
segment comes from R and FM = round((F + M) / 2) through an ordered rule table.
Customers who never bought get no RFM values.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from crm_bridge import Field, Snapshot

from ..customer_sales import customer_sales

# Ordered rules: (segment, R range, FM range); the first match wins.
DEFAULT_SEGMENTS: list[tuple[str, tuple[int, int], tuple[int, int]]] = [
    ("Champions", (4, 5), (4, 5)),
    ("Can't lose", (1, 2), (5, 5)),
    ("At risk", (1, 2), (3, 4)),
    ("Loyal", (3, 3), (4, 5)),
    ("Potential loyalist", (4, 5), (2, 3)),
    ("New", (5, 5), (1, 1)),
    ("Promising", (4, 4), (1, 1)),
    ("Need attention", (3, 3), (3, 3)),
    ("About to sleep", (3, 3), (1, 2)),
    ("Hibernating", (2, 2), (1, 2)),
    ("Lost", (1, 1), (1, 2)),
]
SEGMENT_KEYS = {
    name: name.lower().replace("'", "").replace(" ", "_") for name, *_ in DEFAULT_SEGMENTS
}


SEGMENT_CHOICES = [(SEGMENT_KEYS[name], name) for name, *_ in DEFAULT_SEGMENTS]
Rule = tuple[str, tuple[int, int], tuple[int, int]]
DEFAULT_RULES: list[Rule] = [(SEGMENT_KEYS[n], r, fm) for n, r, fm in DEFAULT_SEGMENTS]


def fields() -> list[Field]:
    return [
        Field(
            "rfm_segment",
            "selection",
            "RFM segment",
            "Segment from the recency score R and FM = round((F+M)/2): Champions R4-5 FM4-5, "
            "Can't lose R1-2 FM5, At risk R1-2 FM3-4, Loyal R3 FM4-5, Potential loyalist "
            "R4-5 FM2-3, New R5 FM1, Promising R4 FM1, Need attention R3 FM3, About to sleep "
            "R3 FM1-2, Hibernating R2 FM1-2, Lost R1 FM1-2.",
            choices=SEGMENT_CHOICES,
            list_column=True,
        ),
        Field(
            "rfm_score",
            "char",
            "RFM score",
            "R, F and M scores (1-5 each, 5 best): 1 + floor(5 x share of customers who "
            "bought with a strictly worse value); ties share a score.",
        ),
        Field(
            "rfm_recency_days",
            "integer",
            "Days since last purchase",
            "Days from the last posted invoice (credit notes excluded) to the analysis date.",
            minimum=0,
        ),
        Field(
            "rfm_frequency",
            "integer",
            "Invoices in RFM window",
            "Posted invoices in the RFM window (default 365 days).",
            minimum=0,
        ),
        Field(
            "rfm_monetary",
            "numeric",
            "Net revenue in RFM window",
            "Untaxed invoiced amount minus credit notes in the RFM window, company currency.",
            digits=2,
        ),
    ]


def score(expr: pl.Expr, n: pl.Expr) -> pl.Expr:
    """1 + floor(5 x share strictly below): ties share a score, 1..5."""
    below = expr.rank("min") - 1
    return (1 + (5 * below / n).floor()).clip(1, 5).cast(pl.Int64)


def segment(r: pl.Expr, fm: pl.Expr, rules: list[Rule] = DEFAULT_RULES) -> pl.Expr:
    """The first rule whose R and FM ranges both hold names the segment."""
    rule: Any = None
    for key, (r_lo, r_hi), (fm_lo, fm_hi) in rules:
        cond = r.is_between(r_lo, r_hi) & fm.is_between(fm_lo, fm_hi)
        rule = (
            pl.when(cond).then(pl.lit(key)) if rule is None else rule.when(cond).then(pl.lit(key))
        )
    assert rule is not None
    return rule.otherwise(pl.lit(None, dtype=pl.String))


def compute(
    snapshot: Snapshot, window: int = 365, rules: list[Rule] = DEFAULT_RULES
) -> pl.DataFrame:
    """One row per customer who ever bought: the five RFM fields."""
    as_of = pl.lit(snapshot.as_of)
    per_customer = customer_sales(snapshot, window).select(
        "customer_id", last="last_invoice", frequency="invoices_w", monetary="revenue_w"
    )
    n = pl.len()
    return (
        per_customer.filter(pl.col("last").is_not_null())
        .with_columns(
            recency=(as_of - pl.col("last")).dt.total_days().cast(pl.Int64),
        )
        .with_columns(
            r=score(-pl.col("recency"), n),
            f=score(pl.col("frequency"), n),
            m=score(pl.col("monetary"), n),
        )
        .with_columns(fm=((pl.col("f") + pl.col("m") + 1) // 2))
        .select(
            "customer_id",
            rfm_segment=segment(pl.col("r"), pl.col("fm"), rules),
            rfm_score=pl.format("{}{}{}", "r", "f", "m"),
            rfm_recency_days=pl.col("recency"),
            rfm_frequency=pl.col("frequency").cast(pl.Int64),
            rfm_monetary=pl.col("monetary").round(2),
        )
        .collect()
    )
