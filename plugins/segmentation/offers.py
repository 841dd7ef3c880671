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

import polars as pl

from crm_bridge import Snapshot
from crm_bridge.i18n import _

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
    bought = snapshot.bought().rename({"last_bought": "bought"})
    order_lines = snapshot.scan("sale_order_lines").join(
        snapshot.scan("sale_orders").select("order_id", "date", "state"), on="order_id"
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
                reason=pl.lit(_("Quote cancelled"), dtype=pl.String),
            ),
            snapshot.scan("opportunities")
            .filter(pl.col("state") == "lost")
            .select(
                "customer_id",
                "product_id",
                "date",
                reason=pl.col("lost_reason").fill_null(_("Opportunity lost (no reason recorded)")),
            ),
        ]
    )
    refused = (
        refusals.sort("date")
        .group_by("customer_id", "product_id")
        .agg(refused=pl.col("date").last(), reason=pl.col("reason").last())
    )
    return tuple(pl.collect_all([bought, quoted, refused]))  # type: ignore[return-value]


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


def _offered(snapshot: Snapshot) -> pl.LazyFrame:
    """customer_id, product_id of every open or cancelled quote and lost opportunity."""
    quotes = (
        snapshot.scan("sale_orders")
        .filter(pl.col("state").is_in(["quotation", "cancelled"]))
        .select("order_id")
    )
    return pl.concat(
        [
            snapshot.scan("sale_order_lines")
            .join(quotes, on="order_id")
            .select("customer_id", "product_id"),
            snapshot.scan("opportunities")
            .filter(pl.col("state") == "lost")
            .select("customer_id", "product_id"),
        ]
    )


def next_best_offer(
    snapshot: Snapshot, segments: pl.DataFrame, targets: Mapping[str, Sequence[str]]
) -> pl.DataFrame:
    """customer_id, next_best_offer without building the customer x product matrix.

    Each segment's target products are ranked, most bought first (ties: code);
    each customer's bought/quoted/refused targets become one bit mask over the
    ranks of its own segment, and the offer is the product at the lowest rank
    whose bit is clear: integer work on the (customer, product) events, joined
    to the segments once, never a row per customer and target.  Falls back to
    the matrix past 63 target products in a segment.
    """
    wanted = targets_frame(snapshot, segments, targets)
    events = (
        pl.concat(
            [
                snapshot.bought().select("customer_id", "product_id", bought=pl.lit(True)),
                _offered(snapshot).with_columns(bought=pl.lit(False)),
            ]
        )
        .join(segments.lazy(), on="customer_id")
        .collect()
    )
    buyers = events.filter("bought").group_by("segment", "product_id").agg(buyers=pl.len())
    ranked = (
        wanted.join(buyers, on=["segment", "product_id"], how="left")
        .join(snapshot.products.select("product_id", "code", "name"), on="product_id")
        .with_columns(pl.col("buyers").fill_null(0))
        .sort(["segment", "buyers", "code"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len(), dtype=pl.UInt32).over("segment"))
    )
    if ranked.height == 0 or ranked["rank"].max() >= 63:  # type: ignore[operator]
        return next_best_offer_from_matrix(snapshot, matrix(snapshot, segments, targets))
    bits = ranked.select("segment", "product_id", bit=pl.lit(2, dtype=pl.Int64).pow("rank"))
    masks = (
        events.lazy()
        .join(bits.lazy(), on=["segment", "product_id"])
        .group_by("customer_id")
        .agg(mask=pl.col("bit").bitwise_or())
    )
    first_clear = (~pl.col("mask").fill_null(0)).bitwise_trailing_zeros()
    return (
        segments.lazy()
        .join(masks, on="customer_id", how="left")
        .with_columns(rank=first_clear)
        .join(
            ranked.lazy().select("segment", "rank", next_best_offer="name"), on=["segment", "rank"]
        )
        .select("customer_id", "next_best_offer")
        .collect()
    )
