"""Quarantine: set aside ERP records that cannot be analysed, and say why.

A record with a missing id, a missing or unreadable required value (a null or
impossible date, a non-numeric amount), a value outside its allowed set, a
duplicate id, or a reference to a customer, invoice or order that was not read
is removed from the snapshot before any plugin sees it.  The run record counts
them per table and reason, with an example id, and the run goes on.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from crm_bridge import jsonschemas
from crm_bridge.snapshot import RECORDS, Snapshot

# table -> (column, parent table, parent key)
REFERENCES = {
    "invoice_lines": [("invoice_id", "invoices", "invoice_id")],
    "sale_order_lines": [("order_id", "sale_orders", "order_id")],
}


def _rules(record: str) -> tuple[str, str, list[tuple[str, pl.Expr]]]:
    """(table, primary key, [(reason, bad-row expression)])."""
    doc = jsonschemas.load(f"records/{record}")
    props = doc["properties"]
    key = next(iter(props))
    rules = []
    for column in doc["required"]:
        rules.append((f"missing or unreadable {column}", pl.col(column).is_null()))
    for column, spec in props.items():
        allowed = [v for v in spec.get("enum", []) if v is not None]
        if allowed:
            rules.append(
                (
                    f"{column} not one of {', '.join(allowed)}",
                    pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed),
                )
            )
    rules.append((f"duplicate {key}", pl.int_range(pl.len()).over(key) > 0))
    return doc["x-table"], key, rules


def quarantine(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """Remove unusable rows from ``snapshot`` in place; return {table: {reason: info}}."""
    report: dict[str, dict[str, Any]] = {}

    def drop(table: str, key: str, reason: str, bad: pl.Expr) -> None:
        df = getattr(snapshot, table)
        flagged = df.with_columns(_bad=bad.fill_null(False))
        rejected = flagged.filter(pl.col("_bad"))
        if rejected.height:
            example = rejected[key].drop_nulls().head(1).to_list()
            report.setdefault(table, {})[reason] = {
                "count": rejected.height,
                "example": str(example[0]) if example else None,
            }
            setattr(snapshot, table, flagged.filter(~pl.col("_bad")).drop("_bad"))

    keys = {}
    for record in RECORDS:
        table, key, rules = _rules(record)
        keys[table] = key
        for reason, bad in rules:
            drop(table, key, reason, bad)
    customers = snapshot.customers["customer_id"].cast(pl.String).implode()
    for table, key in keys.items():
        if table != "customers" and "customer_id" in getattr(snapshot, table).columns:
            drop(
                table,
                key,
                "unknown customer",
                ~pl.col("customer_id").cast(pl.String).is_in(customers),
            )
    for table, refs in REFERENCES.items():
        key = keys[table]
        for column, parent, parent_key in refs:
            known = getattr(snapshot, parent)[parent_key].cast(pl.String).implode()
            drop(
                table,
                key,
                f"unknown {column.removesuffix('_id')}",
                ~pl.col(column).cast(pl.String).is_in(known),
            )
    return report
