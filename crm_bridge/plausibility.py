"""Plausibility: ERP records that are readable but cannot be true.

A record can pass every type check and still be absurd: an invoice dated
1900-01-01 (46,000 days of recency), one dated 2999-12-31, an amount of
-999,999,999,999.99 that moves every customer's CLV, the same invoice twice.
These rules find them; ``crm_bridge.quarantine`` sets them aside with the
reason and counts them in the run record, like a broken record.

The rules, configured in the ``[quality]`` table (defaults in brackets):

- a ``date`` before the earliest plausible date: ``quality.earliest_date``
  when set, else the start of the company's first fiscal year when the adapter
  knows it (Tryton), else [1990-01-01];
- a ``date`` after the analysis date, or after today when ``as_of`` is in the
  past (a historical analysis does not set aside what it only does not look at
  yet), plus ``quality.future_days`` [1] of slack for time zones;
- an ``amount`` whose absolute value is beyond ``quality.amount_factor`` [1000]
  times the 99th percentile of the absolute amounts of its table (computed on at
  least 20 non-zero amounts; the percentile of a base with fewer than 1 % of
  absurd values ignores them), or beyond ``quality.max_amount`` when set; an
  amount (or a line's cost) that is not a finite number (NaN, or an infinity: a
  sum of it would be meaningless, and exact sums cannot hold one);
- a posted or paid invoice whose number was already seen on a posted or paid
  invoice of the same customer, kind and calendar year of its date (the first one
  read is kept).  Numbering restarts
  at most once a year in the ERPs we know (Tryton: per fiscal year), so the same
  number in another year is another invoice.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import polars as pl


class Rule(NamedTuple):
    """A reason, the rows it flags, and whether it may flag any: an aggregate
    that is never false when a row is flagged (it may be true when none is; the
    rows are then looked at one rule at a time).  ``unless``, when given, is a
    cheaper aggregate that is true only when no row is flagged (it may be false
    when none is): tried first, ``any`` is then needed only where it is false."""

    reason: str
    bad: pl.Expr
    any: pl.Expr
    unless: pl.Expr | None = None

    @classmethod
    def of(cls, reason: str, bad: pl.Expr) -> Rule:
        return cls(reason, bad, bad.fill_null(False).any())


def repeated(reason: str, *key: pl.Expr, among: pl.Expr | None = None) -> Rule:
    """The rows whose ``key`` (one or more columns) an earlier row (of those
    ``among``) already had: the first is kept.  Whether any is known from the
    number of distinct hashes (7x faster than flagging): as many as rows means no
    repeat; fewer (a repeat, or two keys with one hash) means the rows are flagged
    the exact way.  Categorical keys are hashed by their codes (one code, one
    text; 8x faster than hashing the text)."""
    hashes = functools.reduce(
        operator.xor, (k.to_physical().hash(seed) for seed, k in enumerate(key, 7))
    )
    whole = pl.struct(*key) if len(key) > 1 else key[0]
    if among is None:
        ordered = ascending(key[0]) if len(key) == 1 else None
        return Rule(reason, ~whole.is_first_distinct(), hashes.n_unique() < pl.len(), ordered)
    whole = pl.struct(whole.alias("key"), among.alias("among"))  # repeats among ``among``
    return Rule(
        reason, among & ~whole.is_first_distinct(), hashes.filter(among).n_unique() < among.sum()
    )


def ascending(key: pl.Expr) -> pl.Expr:
    """Whether each value is above the one before it, ids compared as numbers
    where they are numbers (by length, then text: "9" < "10", "L9" < "L10"): then
    no value repeats.  True of the ids an ERP serves in the order of its keys, and
    a single pass (2x faster than counting distinct hashes)."""
    text = key.cast(pl.String)
    size = text.str.len_bytes()
    after = (size > size.shift(1)) | ((size == size.shift(1)) & (text > text.shift(1)))
    return after.fill_null(False).slice(1).all()


DEFAULT_EARLIEST = dt.date(1990, 1, 1)
QUANTILE = 0.99
MIN_AMOUNTS = 20
# table -> the amount column checked against the table's own range
AMOUNTS = {
    "invoices": "amount",
    "invoice_lines": "amount",
    "payments": "amount",
    "sale_orders": "amount",
    "sale_order_lines": "amount",
    "opportunities": "amount",
}
# Tables whose ``date`` is checked against the earliest and latest plausible dates.
DATED = ("invoices", "payments", "sale_orders", "opportunities", "complaints")


@dataclass(frozen=True)
class Plausibility:
    """The bounds a run's records are checked against."""

    earliest: dt.date
    earliest_source: str
    latest: dt.date
    amount_factor: float = 1000.0
    max_amount: float | None = None

    @classmethod
    def of(
        cls,
        settings: Mapping[str, Any] | None,
        as_of: dt.date,
        first_fiscal_date: dt.date | None = None,
        today: dt.date | None = None,
    ) -> Plausibility:
        """The bounds from the ``[quality]`` table, the analysis date and the ERP's
        first fiscal year (None when the ERP has none or the adapter cannot tell)."""
        settings = settings or {}
        if settings.get("earliest_date"):
            earliest = dt.date.fromisoformat(str(settings["earliest_date"]))
            source = "quality.earliest_date"
        elif first_fiscal_date:
            earliest, source = first_fiscal_date, "start of the first fiscal year"
        else:
            earliest, source = DEFAULT_EARLIEST, "default earliest date"
        ahead = dt.timedelta(days=int(settings.get("future_days", 1)))
        cap = settings.get("max_amount")
        return cls(
            earliest=earliest,
            earliest_source=source,
            latest=max(as_of, today or dt.date.today()) + ahead,
            amount_factor=float(settings.get("amount_factor", 1000.0)),
            max_amount=float(cap) if cap is not None else None,
        )

    def checks(self, table: str, frame: pl.DataFrame) -> list[Rule]:
        """The rules for the rows of ``table``, in the order to apply.

        Amount bounds are computed from ``frame`` as it is: pass it once the broken
        records are gone, so that they do not skew the range.
        """
        out: list[Rule] = []
        if table in DATED:
            date = pl.col("date")
            out.append(
                Rule.of(
                    f"date before {self.earliest} ({self.earliest_source})", date < self.earliest
                )
            )
            late = f"date after {self.latest} (later than the analysis date and today)"
            out.append(Rule.of(late, date > self.latest))
        if table in AMOUNTS:
            column = AMOUNTS[table]
            amount = pl.col(column)
            out.append(Rule.of(f"{column} is not a finite number", ~amount.is_finite()))
            bound = self.amount_bound(frame[column])
            if bound is not None:
                limit, why = bound
                out.append(Rule.of(f"{column} beyond ±{limit:,.2f} ({why})", amount.abs() > limit))
        if "cost" in frame.columns:  # a line's cost goes into its margin
            out.append(Rule.of("cost is not a finite number", ~pl.col("cost").is_finite()))
        if table == "invoices":  # among the invoices that count (drafts may share "/")
            year = pl.col("date").dt.year()
            counts = pl.col("state").is_in(["posted", "paid"])
            out.append(
                repeated(
                    "duplicate number for the same customer and year",
                    pl.col("customer_id"),
                    pl.col("kind"),
                    pl.col("number"),
                    year,
                    among=pl.col("number").is_not_null() & counts,
                )
            )
        return out

    def amount_bound(self, amounts: pl.Series) -> tuple[float, str] | None:
        """The largest plausible absolute amount of a column, and how it was found."""
        bounds = []
        if self.max_amount is not None:
            bounds.append((self.max_amount, "quality.max_amount"))
        if self.amount_factor > 0:
            sizes = amounts.filter(amounts.is_finite()).abs()  # not null, NaN or infinite
            sizes = sizes.filter(sizes > 0)
            if sizes.len() >= MIN_AMOUNTS:
                high = percentile(sizes, QUANTILE)
                if high is not None and high > 0:
                    bounds.append(
                        (
                            float(high) * self.amount_factor,
                            f"{self.amount_factor:g}x the 99th percentile {float(high):,.2f}",
                        )
                    )
        return min(bounds) if bounds else None


def percentile(values: pl.Series, q: float) -> float | None:
    """``values.quantile(q, interpolation="lower")`` by a partial sort (3x faster
    at ten million amounts): the smallest of the ``n - floor(q (n - 1))`` largest."""
    n = values.len()
    if n == 0:
        return None
    largest = values.top_k(n - math.floor(q * (n - 1)))
    return float(largest.min())  # type: ignore[arg-type]
