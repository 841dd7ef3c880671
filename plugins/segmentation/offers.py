"""The segment x product matrix and the next best offer.

For each customer and each target product of its segment, the status is the
first that applies of: ``bought`` (date of the last purchase), ``quoted`` (an
open quote holds it: its date), ``refused`` (a cancelled quote or a lost
opportunity holds it: the latest date and the recorded reason) and
``not_offered``.  The next best offer is the customer's ``not_offered`` target
product that most customers of the same segment have bought (ties: product
code); customers whose targets are all offered get none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from crm_bridge import Snapshot

STATUSES = ("bought", "quoted", "refused", "not_offered")


def targets_frame(
    snapshot: Snapshot, segments: pl.DataFrame, targets: Mapping[str, Sequence[str]]
) -> pl.DataFrame:
    """segment, product_id for the configured target product codes (``*``: any segment)."""
    products = snapshot.products.select("product_id", "code")
    all_segments = segments["segment"].drop_nulls().unique().to_list()
    rows = [
        (seg, code)
        for key, codes in targets.items()
        for seg in (all_segments if key == "*" else [key])
        for code in codes
    ]
    if not targets:
        rows = [(seg, code) for seg in all_segments for code in products["code"].to_list()]
    wanted = pl.DataFrame(rows, schema={"segment": pl.String, "code": pl.String}, orient="row")
    return wanted.join(products, on="code").select("segment", "product_id").unique()


def _pairs(snapshot: Snapshot) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(customer, product) pairs bought, quoted (open) and refused, with dates."""
    bought = (
        snapshot.sales_lines()
        .filter(pl.col("kind") == "invoice")
        .group_by("customer_id", "product_id")
        .agg(bought=pl.col("date").max())
    )
    order_lines = snapshot.sale_order_lines.join(
        snapshot.sale_orders.select("order_id", "date", "state"), on="order_id"
    )
    quoted = (
        order_lines.filter(pl.col("state") == "quotation")
        .group_by("customer_id", "product_id")
        .agg(quoted=pl.col("date").max())
    )
    refusals = pl.concat(
        [
            order_lines.filter(pl.col("state") == "cancelled").select(
                "customer_id",
                "product_id",
                "date",
                reason=pl.lit("Quote cancelled", dtype=pl.String),
            ),
            snapshot.opportunities.filter(pl.col("state") == "lost").select(
                "customer_id",
                "product_id",
                "date",
                reason=pl.col("lost_reason").fill_null("Opportunity lost (no reason recorded)"),
            ),
        ]
    )
    refused = (
        refusals.sort("date")
        .group_by("customer_id", "product_id")
        .agg(refused=pl.col("date").last(), reason=pl.col("reason").last())
    )
    return bought, quoted, refused


def matrix(
    snapshot: Snapshot, segments: pl.DataFrame, targets: Mapping[str, Sequence[str]]
) -> pl.DataFrame:
    """customer_id, segment, product_id, status, date, reason for every target cell."""
    cells = segments.join(targets_frame(snapshot, segments, targets), on="segment")
    bought, quoted, refused = _pairs(snapshot)
    keys = ["customer_id", "product_id"]
    out = (
        cells.join(bought, on=keys, how="left")
        .join(quoted, on=keys, how="left")
        .join(refused, on=keys, how="left")
    )
    return out.select(
        "customer_id",
        "segment",
        "product_id",
        status=pl.when(pl.col("bought").is_not_null())
        .then(pl.lit("bought"))
        .when(pl.col("quoted").is_not_null())
        .then(pl.lit("quoted"))
        .when(pl.col("refused").is_not_null())
        .then(pl.lit("refused"))
        .otherwise(pl.lit("not_offered")),
        date=pl.coalesce("bought", "quoted", "refused"),
        reason=pl.when(pl.col("bought").is_null() & pl.col("quoted").is_null()).then("reason"),
    )


def next_best_offer_from_matrix(snapshot: Snapshot, cells: pl.DataFrame) -> pl.DataFrame:
    """customer_id, next_best_offer (product name) from the full matrix (the reference)."""
    popularity = (
        cells.filter(pl.col("status") == "bought")
        .group_by("segment", "product_id")
        .agg(buyers=pl.len())
    )
    names = snapshot.products.select("product_id", "code", "name")
    return (
        cells.filter(pl.col("status") == "not_offered")
        .join(popularity, on=["segment", "product_id"], how="left")
        .join(names, on="product_id")
        .with_columns(pl.col("buyers").fill_null(0))
        .sort(["customer_id", "buyers", "code"], descending=[False, True, False])
        .group_by("customer_id", maintain_order=True)
        .agg(next_best_offer=pl.col("name").first())
    )


def next_best_offer(
    snapshot: Snapshot, segments: pl.DataFrame, targets: Mapping[str, Sequence[str]]
) -> pl.DataFrame:
    """customer_id, next_best_offer without building the customer x product matrix.

    Each customer's bought/quoted/refused products become one integer bit mask,
    and each segment's target products, most bought first, one when-chain over
    those masks: a group-by and a pass over the customers instead of a join of
    customers x targets rows.  Falls back to the matrix past 63 target products.
    """
    wanted = targets_frame(snapshot, segments, targets)
    target_ids = sorted(set(wanted["product_id"].to_list()))
    if not target_ids or len(target_ids) > 63:
        return next_best_offer_from_matrix(snapshot, matrix(snapshot, segments, targets))
    bit = {p: 1 << i for i, p in enumerate(target_ids)}
    bought, quoted, refused = _pairs(snapshot)
    events = pl.concat([f.select("customer_id", "product_id") for f in (bought, quoted, refused)])
    masks = (
        events.filter(pl.col("product_id").is_in(target_ids))
        .unique()
        .group_by("customer_id")
        .agg(mask=pl.col("product_id").replace_strict(bit, return_dtype=pl.Int64).sum())
    )
    buyers = (
        bought.join(segments, on="customer_id")
        .group_by("segment", "product_id")
        .agg(buyers=pl.len())
    )
    ranked = (
        wanted.join(buyers, on=["segment", "product_id"], how="left")
        .join(snapshot.products.select("product_id", "code", "name"), on="product_id")
        .with_columns(pl.col("buyers").fill_null(0))
        .sort(["segment", "buyers", "code"], descending=[False, True, False])
    )
    mask = pl.col("mask").fill_null(0)
    choice: Any = None
    for (segment,), group in ranked.group_by("segment", maintain_order=True):
        pick: Any = None
        for product_id, name in group.select("product_id", "name").iter_rows():
            free = (mask & bit[product_id]) == 0
            pick = (
                pl.when(free).then(pl.lit(name))
                if pick is None
                else pick.when(free).then(pl.lit(name))
            )
        is_segment = pl.col("segment") == segment
        choice = (
            pl.when(is_segment).then(pick) if choice is None else choice.when(is_segment).then(pick)
        )
    if choice is None:
        return pl.DataFrame(schema={"customer_id": pl.Categorical, "next_best_offer": pl.String})
    return (
        segments.join(masks, on="customer_id", how="left")
        .select("customer_id", next_best_offer=choice)
        .filter(pl.col("next_best_offer").is_not_null())
    )
