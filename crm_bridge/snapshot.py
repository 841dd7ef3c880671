"""The snapshot: the canonical tables read from the ERP for one run.

Table layouts come from the JSON Schemas in ``schemas/records``; this module
turns them into Polars schemas, so an adapter's rows and the generator's frames
end up with the same columns and types, whatever ERP they came from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from crm_bridge import jsonschemas

RECORDS = (
    "customer",
    "product",
    "invoice",
    "invoice_line",
    "payment",
    "sale_order",
    "sale_order_line",
    "opportunity",
    "complaint",
)


# Customer and product ids repeat millions of times across tables, and group-bys
# and joins on them are the bulk of the analytics: dictionary-encoded, they cost
# 2-3x less.  Ids that are unique per row (lines, invoices...) stay plain text:
# a dictionary of ten million distinct strings costs more than the strings.
CATEGORICAL = frozenset({"customer_id", "product_id"})


def _dtype(name: str, spec: Mapping[str, Any]) -> pl.DataType:
    if name in CATEGORICAL:
        return pl.Categorical()
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    kind = next(k for k in kinds if k != "null")
    if kind == "string":
        return {"date": pl.Date(), "date-time": pl.Datetime("us")}.get(
            spec.get("format", ""), pl.String()
        )
    return {"number": pl.Float64(), "integer": pl.Int64(), "boolean": pl.Boolean()}[kind]


def _table_schemas() -> dict[str, pl.Schema]:
    out = {}
    for record in RECORDS:
        doc = jsonschemas.load(f"records/{record}")
        out[doc["x-table"]] = pl.Schema({k: _dtype(k, v) for k, v in doc["properties"].items()})
    return out


TABLES: dict[str, pl.Schema] = _table_schemas()


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=TABLES[table])


def frame(table: str, rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a canonical table from dict rows (missing keys become null).

    A value that cannot be read as its column's type (a non-numeric amount, an
    impossible date) becomes null; ``crm_bridge.quarantine`` then sets such rows
    aside with the reason instead of letting one bad record stop the run.
    """
    schema = TABLES[table]
    rows = list(rows)
    if not rows:
        return empty(table)
    try:
        return pl.DataFrame(rows, schema=schema, strict=False, orient="row")
    except (pl.exceptions.ComputeError, TypeError, ValueError, OverflowError):
        coerced = [{c: _coerce(r.get(c), t) for c, t in schema.items()} for r in rows]
        return pl.DataFrame(coerced, schema=schema, strict=False, orient="row")


def _coerce(value: Any, dtype: pl.DataType) -> Any:
    """``value`` as a Python value of ``dtype``, or None when it cannot be one."""
    if value is None:
        return None
    try:
        if dtype == pl.Float64:
            return float(value) if not isinstance(value, bool) else None
        if dtype == pl.Int64:
            return int(value) if not isinstance(value, bool) else None
        if dtype == pl.Boolean:
            return value if isinstance(value, bool) else None
        if dtype == pl.Date:
            if isinstance(value, dt.datetime):
                return value.date()
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if isinstance(dtype, pl.Datetime):
            if isinstance(value, dt.datetime):
                return value
            if isinstance(value, dt.date):
                return dt.datetime(value.year, value.month, value.day)
            return dt.datetime.fromisoformat(str(value))
        return str(value)
    except (TypeError, ValueError, OverflowError):
        return None


def conform(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """Cast ``df`` to the canonical layout of ``table`` (column order, types)."""
    schema = TABLES[table]
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in df.columns]
    return df.with_columns(missing).select(
        [pl.col(c).cast(t, strict=False) for c, t in schema.items()]
    )


@dataclass
class Snapshot:
    """The canonical tables of one run, plus the date the analysis is made on.

    Plugins read it; nothing writes to it after extraction.
    """

    as_of: dt.date
    customers: pl.DataFrame = field(default_factory=lambda: empty("customers"))
    products: pl.DataFrame = field(default_factory=lambda: empty("products"))
    invoices: pl.DataFrame = field(default_factory=lambda: empty("invoices"))
    invoice_lines: pl.DataFrame = field(default_factory=lambda: empty("invoice_lines"))
    payments: pl.DataFrame = field(default_factory=lambda: empty("payments"))
    sale_orders: pl.DataFrame = field(default_factory=lambda: empty("sale_orders"))
    sale_order_lines: pl.DataFrame = field(default_factory=lambda: empty("sale_order_lines"))
    opportunities: pl.DataFrame = field(default_factory=lambda: empty("opportunities"))
    complaints: pl.DataFrame = field(default_factory=lambda: empty("complaints"))
    # The values crm-bridge's own fields hold in the ERP now: {customer: {field: value}}.
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The values crm-bridge last wrote and the ERP confirmed, from the state
    # store: {customer: {field: value}}.  Plugins that need history across runs
    # (loyalty's grace period) read it here.
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Records set aside by crm_bridge.quarantine: {table: {reason: {count, example}}}.
    quarantined: dict[str, dict[str, Any]] = field(default_factory=dict)
    _derived: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_frames(cls, as_of: dt.date, **tables: pl.DataFrame) -> Snapshot:
        """Build a snapshot from frames, conforming each to its canonical layout."""
        conformed: dict[str, Any] = {name: conform(name, df) for name, df in tables.items()}
        return cls(as_of=as_of, **conformed)

    @classmethod
    def from_rows(cls, as_of: dt.date, **tables: Iterable[Mapping[str, Any]]) -> Snapshot:
        """Build a snapshot from literal rows; handy in tests and plugin examples."""
        frames: dict[str, Any] = {name: frame(name, rows) for name, rows in tables.items()}
        return cls(as_of=as_of, **frames)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name).height for name in TABLES}

    def sales_lines(self) -> pl.DataFrame:
        """Lines of the invoices in :meth:`sales`, with the invoice's ``date`` and
        ``kind``.  Computed once per snapshot and shared by every plugin: joining
        lines to invoices is the costliest step most analyses have in common."""
        if "sales_lines" not in self._derived:
            self._derived["sales_lines"] = self.invoice_lines.drop("customer_id").join(
                self.sales().select("invoice_id", "customer_id", "date", "kind"), on="invoice_id"
            )
        return self._derived["sales_lines"]

    def sales(self) -> pl.DataFrame:
        """Invoices that count as revenue: posted or paid, credit notes included,
        dated on or before the analysis date.  Computed once per snapshot."""
        if "sales" not in self._derived:
            self._derived["sales"] = self.invoices.filter(
                pl.col("state").is_in(["posted", "paid"]) & (pl.col("date") <= self.as_of)
            )
        return self._derived["sales"]
