"""The order in which an accountant reads the CRM values: topic by topic.

Where an ERP shows crm-bridge's fields in an order it is told (Tryton's CRM tab,
by each key's ``sequence``; Dolibarr's card, by each extrafield's position; the
columns of Odoo's contacts list), they follow these topics: segment and value,
loyalty, sales dynamics, payment discipline, funnel and complaints.  A field not
listed here (a third-party plugin's) comes after them, in declaration order.
"""

from __future__ import annotations

from collections.abc import Sequence

from crm_bridge.fields import Field

TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "segment and value",
        (
            "rfm_segment",
            "abc_xyz",
            "abc_class",
            "xyz_class",
            "kpi_revenue_12m",
            "kpi_clv_12m",
            "kpi_clv_historic",
            "next_best_offer",
            "rfm_score",
            "rfm_recency_days",
            "rfm_frequency",
            "rfm_monetary",
            "demand_cv",
        ),
    ),
    (
        "loyalty",
        (
            "loyalty_tier",
            "loyalty_reason",
            "loyalty_discount",
            "loyalty_points",
            "loyalty_points_expiring",
            "loyalty_next_expiry",
            "loyalty_below_since",
        ),
    ),
    (
        "sales dynamics",
        (
            "kpi_revenue_growth",
            "kpi_aov",
            "kpi_purchases_per_year",
            "kpi_interpurchase_days",
            "kpi_distinct_products",
            "kpi_churn_risk",
        ),
    ),
    ("payment discipline", ("kpi_overdue_amount", "kpi_avg_days_late", "kpi_paid_late_share")),
    (
        "funnel and complaints",
        (
            "kpi_quote_conversion",
            "kpi_opportunities_won",
            "kpi_opportunities_lost",
            "kpi_last_refusal",
            "kpi_complaints_12m",
        ),
    ),
)
SEQUENCES = {
    name: 100 * (topic + 1) + position
    for topic, (_, names) in enumerate(TOPICS)
    for position, name in enumerate(names)
}


def sequences(fields: Sequence[Field]) -> dict[str, int]:
    """The position of each field: by topic, then the others as declared."""
    others = (f.name for f in fields if f.name not in SEQUENCES)
    return {**SEQUENCES, **{name: 1000 + i for i, name in enumerate(others)}}


def reading_order(fields: Sequence[Field]) -> list[Field]:
    """``fields`` sorted topic by topic, the others after them as declared."""
    position = sequences(fields)
    return sorted(fields, key=lambda f: position[f.name])
