"""The snapshot: the canonical tables read from the ERP for one run.

Table layouts come from the JSON Schemas in ``schemas/records``; this module
turns them into Polars schemas, so an adapter's rows and the generator's frames
end up with the same columns and types, whatever ERP they came from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from crm_bridge import jsonschemas
from crm_bridge.columns import Values
from crm_bridge.fields import Field

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
# The kind of the invoices in Snapshot.sales(): an Enum is a byte a row, a string 16.
KIND = pl.Enum(["invoice", "credit_note"])


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


def of_frame(table: str, page: pl.DataFrame) -> pl.DataFrame:
    """A canonical table from a page an adapter gives as a frame: its columns cast
    to the table's types as ``frame`` reads dict rows (missing columns null, a
    value that cannot be read null, other columns dropped)."""
    schema = TABLES[table]
    return page.select(
        (pl.col(c) if c in page.columns else pl.lit(None)).cast(t, strict=False).alias(c)
        for c, t in schema.items()
    )


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


class _Table:
    """A canonical table of a :class:`Snapshot`, read as a DataFrame.

    A table given lazily (a Parquet scan) is collected on first access and kept;
    plugins that need a few columns of a big table use ``Snapshot.scan`` instead
    and never load the rest.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, snapshot: Snapshot | None, owner: type | None = None) -> pl.DataFrame:
        if snapshot is None:  # looked up on the class (help(), documentation tools)
            return empty(self.name)
        source = snapshot._tables[self.name]
        if isinstance(source, pl.LazyFrame):
            source = snapshot._tables[self.name] = source.collect()
        return source

    def __set__(self, snapshot: Snapshot, frame: pl.DataFrame) -> None:
        snapshot._tables[self.name] = frame
        snapshot._shared.clear()


class Snapshot:
    """The canonical tables of one run, plus the date the analysis is made on.

    Plugins read it; nothing writes to it after extraction.  Each table is an
    attribute (``snapshot.invoices``, a DataFrame) and a lazy scan
    (``snapshot.scan("invoices")``): a query on the scan reads only the columns
    and rows it uses, which is what keeps ten million invoice lines in memory
    budget.
    """

    customers = _Table()
    products = _Table()
    invoices = _Table()
    invoice_lines = _Table()
    payments = _Table()
    sale_orders = _Table()
    sale_order_lines = _Table()
    opportunities = _Table()
    complaints = _Table()

    def __init__(
        self,
        as_of: dt.date,
        current: dict[str, dict[str, Any]] | None = None,
        previous: dict[str, dict[str, Any]] | None = None,
        quarantined: dict[str, dict[str, Any]] | None = None,
        **tables: pl.DataFrame | pl.LazyFrame,
    ) -> None:
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise TypeError(f"unknown snapshot tables: {', '.join(sorted(unknown))}")
        self.as_of = as_of
        self._tables: dict[str, pl.DataFrame | pl.LazyFrame] = {
            name: tables.get(name, empty(name)) for name in TABLES
        }
        # The values crm-bridge's own fields hold in the ERP now: {customer: {field:
        # value}} (see the property), or as the columns the plan compares.
        self._current: dict[str, dict[str, Any]] | None = current or {}
        self._held: tuple[Values, Mapping[str, Field]] | None = None
        # The values crm-bridge last wrote and the ERP confirmed, from the state
        # store: {customer: {field: value}}.  Plugins that need history across runs
        # (loyalty's grace period) read it here.
        self.previous: dict[str, dict[str, Any]] = previous or {}
        # Records set aside by crm_bridge.quarantine: {table: {reason: {count, example}}}.
        self.quarantined: dict[str, dict[str, Any]] = quarantined or {}
        # Frames several plugins use, computed once (see shared).
        self._shared: dict[str, pl.DataFrame] = {}

    def __repr__(self) -> str:
        return f"Snapshot(as_of={self.as_of}, {self.counts()})"

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

    @classmethod
    def from_parquet(cls, as_of: dt.date, folder: Path) -> Snapshot:
        """A snapshot over ``<table>.parquet`` files in ``folder``, read lazily:
        nothing is loaded until a table is used, and scans load only what they use."""
        tables: dict[str, Any] = {
            t: pl.scan_parquet(folder / f"{t}.parquet").cast(TABLES[t])
            for t in TABLES
            if (folder / f"{t}.parquet").exists()
        }
        return cls(as_of=as_of, **tables)

    def scan(self, table: str) -> pl.LazyFrame:
        """The table as a LazyFrame: filter, select and aggregate without a copy."""
        return self._tables[table].lazy()

    @property
    def current(self) -> dict[str, dict[str, Any]]:
        """The values crm-bridge's own fields hold in the ERP now: {customer: {field:
        value}}, numerics as ``Decimal``.  A sync holds them as columns and makes
        this mapping on first use only: a plugin reading a few fields of every
        customer is faster with :meth:`values`."""
        if self._current is None:
            assert self._held is not None
            held, fields = self._held
            rows = held.rows(fields, nulls=False)
            self._current = {cid: cells for cid, cells in rows.items() if cells}
        return self._current

    @current.setter
    def current(self, rows: dict[str, dict[str, Any]]) -> None:
        self._current, self._held = rows, None

    def hold(self, held: Values, fields: Mapping[str, Field]) -> None:
        """Set the values read back from the ERP as columns (``columns.Values``)."""
        self._current, self._held = None, (held, fields)

    def values(self, which: str, names: Sequence[str]) -> pl.DataFrame:
        """``customer_id`` and the named fields of ``current`` or ``previous`` as
        columns, one row per customer that holds any value (numerics as Float64)."""
        if which == "current" and self._current is None and self._held is not None:
            held, fields = self._held
            any_value = [pl.col(n).is_not_null() for n in held.names] or [pl.lit(False)]
            frame = held.frame.filter(pl.any_horizontal(any_value))
            return Values(frame, held.odd).values_frame(fields, names)
        rows = self.current if which == "current" else self.previous
        ids = [cid for cid, cells in rows.items() if cells]
        columns = {"customer_id": pl.Series(ids, dtype=pl.String)}
        for name in names:
            column = pl.Series(name, [rows[cid].get(name) for cid in ids], strict=False)
            columns[name] = column.cast(pl.Float64) if column.dtype == pl.Decimal else column
        return pl.DataFrame(columns)

    def counts(self) -> dict[str, int]:
        return {
            name: source.height
            if isinstance(source, pl.DataFrame)
            else source.select(pl.len()).collect().item()
            for name, source in self._tables.items()
        }

    def shared(self, key: str, query: Callable[[], pl.LazyFrame]) -> pl.LazyFrame:
        """The result of ``query``, computed once per snapshot under ``key``.

        Plugins that need the same derived frame share it this way (the built-in
        ones share the per-customer sums of the sales); replacing a table clears
        every shared frame.
        """
        if key not in self._shared:
            self._shared[key] = query().collect(engine="streaming")
        return self._shared[key].lazy()

    def sales(self) -> pl.LazyFrame:
        """Invoices that count as revenue: posted or paid, credit notes included,
        dated on or before the analysis date.

        Columns: the invoice's but ``number``, ``state`` and ``updated_at``, and
        ``settled`` (the ERP says paid: several ERPs give no payment date, and such an
        invoice is not unpaid); ``kind`` is an Enum.  Read once per snapshot and
        shared by every plugin.
        """
        return self.shared(
            "sales",
            lambda: (
                self.scan("invoices")
                .filter(pl.col("state").is_in(["posted", "paid"]) & (pl.col("date") <= self.as_of))
                .with_columns(settled=pl.col("state") == "paid")
                .select(pl.exclude("number", "state", "updated_at"))
                .with_columns(pl.col("kind").cast(KIND))
            ),
        )

    def sales_lines(self) -> pl.LazyFrame:
        """Lines of the invoices in :meth:`sales`: ``customer_id``, ``product_id``,
        ``quantity``, ``amount``, ``cost`` and the invoice's ``date`` and ``kind``.

        A lazy join, never kept: ten million lines are the biggest table there is,
        and a query over them (best collected with ``engine="streaming"``) reads
        only the columns and rows it needs.
        """
        # Joined on a 64-bit hash of the id, then checked for equal ids (so a hash
        # collision cannot pair the wrong lines): 0.6 s instead of 0.8 s on text ids
        # for ten million lines.
        hashed = pl.col("invoice_id").hash().alias("key")
        invoices = self.sales().select(
            hashed, "customer_id", "date", "kind", id_of_invoice="invoice_id"
        )
        return (
            self.scan("invoice_lines")
            .select(hashed, "invoice_id", "product_id", "quantity", "amount", "cost")
            .join(invoices, on="key")
            .filter(pl.col("invoice_id") == pl.col("id_of_invoice"))
            .drop("key", "invoice_id", "id_of_invoice")
        )

    def bought(self) -> pl.LazyFrame:
        """customer_id, product_id, last_bought: every product each customer was
        invoiced (credit notes excluded), with the date of the last such invoice.

        The costliest join the analyses share (every line to its invoice), so it
        is computed once per snapshot: distinct products, the offer matrix and
        next best offer all read it.
        """
        return self.shared(
            "bought",
            lambda: (
                self.sales_lines()
                .filter((pl.col("kind") == "invoice") & pl.col("product_id").is_not_null())
                .group_by("customer_id", "product_id")
                .agg(last_bought=pl.col("date").max())
            ),
        )
