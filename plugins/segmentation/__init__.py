"""The segmentation plugin: RFM, ABC, XYZ, the segment x product matrix, next best offer.

See ``docs/plugins/segmentation.md`` for the formulas, the defaults and the
class distribution on the demo data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from crm_bridge import Field, Snapshot, hookimpl
from crm_bridge.i18n import N_, _

from . import abc_xyz, offers, rfm

RANGE = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1, "maximum": 5},
    "minItems": 2,
    "maxItems": 2,
}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rfm_window_days": {"type": "integer", "minimum": 30, "maximum": 3650, "default": 365},
        "rfm_rules": {
            "description": "Ordered [segment key, [R min, R max], [FM min, FM max]]; first match.",
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"enum": [k for k, _ in rfm.SEGMENT_CHOICES]}, RANGE, RANGE],
                "minItems": 3,
                "maxItems": 3,
            },
        },
        "abc_basis": {"enum": ["revenue", "margin"], "default": "revenue"},
        "abc_window_days": {"type": "integer", "minimum": 30, "maximum": 3650, "default": 365},
        "abc_thresholds": {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "minItems": 2,
            "maxItems": 2,
            "default": [0.8, 0.95],
        },
        "xyz_months": {"type": "integer", "minimum": 3, "maximum": 60, "default": 12},
        "xyz_basis": {"enum": ["revenue", "quantity"], "default": "revenue"},
        "xyz_thresholds": {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0},
            "minItems": 2,
            "maxItems": 2,
            "default": [1.0, 2.5],
        },
        "offer_segment_by": {
            "enum": ["rfm_segment", "abc_class", "industry"],
            "default": "abc_class",
        },
        "target_products": {
            "description": "Segment -> product codes to offer; '*' for every segment. "
            "Default: every product for every segment.",
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


@hookimpl
def config_schema() -> dict[str, Any]:
    return CONFIG_SCHEMA


@hookimpl
def declare_fields() -> list[Field]:
    return [
        *rfm.fields(),
        Field(
            "abc_class",
            "selection",
            "ABC class",
            "A: the customers making the first 80% of net revenue in the last 365 days, "
            "B: the next 15%, C: the rest.",
            choices=[("A", "A"), ("B", "B"), ("C", "C")],
            list_column=True,
        ),
        Field(
            "xyz_class",
            "selection",
            "XYZ class",
            "Steadiness of monthly revenue over the last 12 months (coefficient of variation,"
            " months without purchase count as 0): X <= 1.0, Y <= 2.5, Z above.",
            choices=[("X", "X"), ("Y", "Y"), ("Z", "Z")],
        ),
        Field(
            "abc_xyz",
            "selection",
            "ABC/XYZ class",
            "ABC class and XYZ class combined.",
            choices=[(a + x, a + x) for a in "ABC" for x in "XYZ"],
            list_column=True,
        ),
        Field(
            "demand_cv",
            "numeric",
            "Demand variation (CV)",
            "Population standard deviation / mean of monthly revenue, last 12 months.",
            minimum=0,
            digits=3,
        ),
        Field(
            "next_best_offer",
            "char",
            "Next best offer",
            "The product most bought by customers of the same ABC class that this customer "
            "has never bought, been quoted or refused.",
            list_column=True,
        ),
    ]


def segments(snapshot: Snapshot, settings: Mapping[str, Any]) -> pl.DataFrame:
    """customer_id with every segmentation column; shared with reports."""
    rules: list[rfm.Rule] = [
        (k, (r[0], r[1]), (fm[0], fm[1])) for k, r, fm in settings.get("rfm_rules", [])
    ]
    out = rfm.compute(
        snapshot, int(settings.get("rfm_window_days", 365)), rules or rfm.DEFAULT_RULES
    )
    values = abc_xyz.value_per_customer(
        snapshot, settings.get("abc_basis", "revenue"), int(settings.get("abc_window_days", 365))
    )
    a, b = settings.get("abc_thresholds", abc_xyz.ABC_DEFAULT)
    classes = abc_xyz.abc(values, (a, b))
    cv = abc_xyz.monthly_cv(
        snapshot, int(settings.get("xyz_months", 12)), settings.get("xyz_basis", "revenue")
    )
    x, y = settings.get("xyz_thresholds", abc_xyz.XYZ_DEFAULT)
    return (
        out.join(
            classes.select("customer_id", "abc_class"), on="customer_id", how="full", coalesce=True
        )
        .join(cv, on="customer_id", how="full", coalesce=True)
        .with_columns(xyz_class=abc_xyz.xyz(pl.col("demand_cv"), (x, y)))
        .with_columns(
            abc_xyz=pl.col("abc_class") + pl.col("xyz_class"),
            demand_cv=pl.col("demand_cv").round(3),
        )
    )


@hookimpl
def compute(snapshot: Snapshot, settings: Mapping[str, Any]) -> pl.DataFrame:
    seg = segments(snapshot, settings)
    by = settings.get("offer_segment_by", "abc_class")
    source = snapshot.customers if by == "industry" else seg
    nbo = offers.next_best_offer(
        snapshot,
        source.select("customer_id", segment=pl.col(by)).filter(pl.col("segment").is_not_null()),
        settings.get("target_products", {}),
    )
    return seg.join(nbo, on="customer_id", how="left")


@hookimpl
def report_views(
    snapshot: Snapshot, values: pl.DataFrame, settings: Mapping[str, Any]
) -> dict[str, pl.DataFrame]:
    """The segment x product matrix: customers grouped by segment, one column per
    target product, each cell bought / quoted / refused with its date, or not offered."""
    by = settings.get("offer_segment_by", "abc_class")
    source = snapshot.customers if by == "industry" else values
    if by not in source.columns:
        return {}
    segments = source.select(pl.col("customer_id").cast(pl.String), segment=pl.col(by)).filter(
        pl.col("segment").is_not_null()
    )
    cells = offers.matrix(
        snapshot,
        segments.with_columns(pl.col("customer_id").cast(pl.Categorical)),
        settings.get("target_products", {}),
    )
    if cells.height == 0:
        return {}
    names = snapshot.products.select("product_id", product=pl.col("name"))
    text = pl.concat_str(
        pl.col("status").replace_strict(
            {
                "bought": _("bought"),
                "quoted": _("quoted"),
                "refused": _("refused"),
                "not_offered": _("not offered"),
            },
            default=pl.col("status"),
        ),
        pl.when(pl.col("date").is_not_null()).then(pl.lit(" ") + pl.col("date").cast(pl.String)),
        pl.when(pl.col("reason").is_not_null()).then(pl.lit(" (") + pl.col("reason") + pl.lit(")")),
        ignore_nulls=True,
    )
    wide = (
        cells.join(names, on="product_id")
        .with_columns(cell=text)
        .pivot(
            "product", index=["segment", "customer_id"], values="cell", aggregate_function="first"
        )
    )
    customers = snapshot.customers.select("customer_id", customer=pl.col("name"))
    out = wide.join(customers, on="customer_id").sort("segment", "customer")
    products = [c for c in out.columns if c not in ("segment", "customer_id", "customer")]
    return {
        N_("Segment × product matrix"): out.select(
            "segment", "customer", *[pl.col(p).fill_null("—") for p in sorted(products)]
        )
    }
