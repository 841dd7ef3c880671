"""Quarantine: set aside ERP records that cannot be analysed, and say why.

A record the ERP could not even serve (an adapter yields ``{key: id,
UNREADABLE: error}`` for it), a record with a missing id, a missing or
unreadable required value (a null or impossible date, a non-numeric amount), a
value outside its allowed set, a duplicate id, an implausible value (see
``crm_bridge.plausibility``), or a reference to a customer, invoice, order or
product that was not read or was set aside is removed from the snapshot before
any plugin sees it.  The run record counts them per table and reason, with an
example id, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from crm_bridge import jsonschemas
from crm_bridge.plausibility import Plausibility, Rule, repeated
from crm_bridge.snapshot import RECORDS, Snapshot

# table -> (column, parent table, parent key); a product reference is checked
# only when the adapter reads products (the table is not empty).
REFERENCES = {
    "invoice_lines": [
        ("invoice_id", "invoices", "invoice_id"),
        ("product_id", "products", "product_id"),
    ],
    "sale_order_lines": [
        ("order_id", "sale_orders", "order_id"),
        ("product_id", "products", "product_id"),
    ],
}
# The key of a row an adapter yields for a record the ERP failed to serve:
# {primary key: id, UNREADABLE: the ERP's error}, in a page of such rows only.
UNREADABLE = "__unreadable__"
UNREADABLE_REASON = "the ERP cannot read it"


def _rules(record: str) -> tuple[str, str, list[Rule]]:
    """(table, primary key, rules)."""
    doc = jsonschemas.load(f"records/{record}")
    props = doc["properties"]
    key = next(iter(props))
    rules = []
    for column in doc["required"]:
        rules.append(Rule.of(f"missing or unreadable {column}", pl.col(column).is_null()))
    for column, spec in props.items():
        allowed = [v for v in spec.get("enum", []) if v is not None]
        if allowed:
            rules.append(
                Rule.of(
                    f"{column} not one of {', '.join(allowed)}",
                    pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed),
                )
            )
    rules.append(repeated(f"duplicate {key}", pl.col(key)))
    return doc["x-table"], key, rules


def quarantine(
    snapshot: Snapshot,
    plausibility: Plausibility | None = None,
    unreadable: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Remove unusable rows from ``snapshot`` in place; return {table: {reason: info}}.

    ``info`` is ``{"count": n, "example": an id}`` (plus ``"error"``, the ERP's
    message, for records it could not serve).  ``unreadable`` is {table: {id:
    error}}: the records the adapter could not read.  Without ``plausibility``
    only broken records are set aside.
    """
    report: dict[str, dict[str, Any]] = {}
    set_aside: dict[str, set[str]] = {}

    for table, failed in (unreadable or {}).items():
        if failed:
            example = min(failed, key=_id_order)
            report.setdefault(table, {})[UNREADABLE_REASON] = {
                "count": len(failed),
                "example": example,
                "error": failed[example],
            }
            set_aside.setdefault(table, set()).update(failed)

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
            ids = rejected[key].drop_nulls().cast(pl.String).to_list()
            set_aside.setdefault(table, set()).update(ids)
            setattr(snapshot, table, flagged.filter(~pl.col("_bad")).drop("_bad"))

    # Every table as read, checked at once (Polars releases the GIL); a table is
    # looked at again, rule by rule, when one of its checks flags a row or a
    # parent of it had rows set aside (its references then change).
    with ThreadPoolExecutor(pl.thread_pool_size()) as pool:
        checked = pool.map(lambda record: _usable(snapshot, plausibility, record), RECORDS)
        usable = dict(zip(RECORDS, checked, strict=True))
    for record in RECORDS:
        table, key, rules = _rules(record)
        refs = _refs(snapshot, table)
        known = {parent: getattr(snapshot, parent)[k] for _, parent, k in refs}
        if usable[record] and not any(set_aside.get(parent) for _, parent, _ in refs):
            continue
        # Parents come first in RECORDS: a row of a record set aside says so first.
        for column, parent, _ in refs:
            if set_aside.get(parent):
                aside = pl.Series(sorted(set_aside[parent]), dtype=pl.String).implode()
                value = pl.col(column).cast(pl.String)
                bad = value.is_in(aside) & _unknown(getattr(snapshot, table), column, known[parent])
                drop(table, key, f"{column.removesuffix('_id')} set aside", bad)
        for rule in rules:
            drop(table, key, rule.reason, rule.bad)
        if plausibility is not None:
            for rule in plausibility.checks(table, getattr(snapshot, table)):
                drop(table, key, rule.reason, rule.bad)
        for column, parent, _ in refs:  # products only when the adapter reads them
            missing = _unknown(getattr(snapshot, table), column, known[parent])
            drop(table, key, f"unknown {column.removesuffix('_id')}", missing)
    return report


def _refs(snapshot: Snapshot, table: str) -> list[tuple[str, str, str]]:
    """(column, parent table, parent key) of the references ``table`` must keep."""
    refs = list(REFERENCES.get(table, []))
    if table != "customers" and "customer_id" in getattr(snapshot, table).columns:
        refs.insert(0, ("customer_id", "customers", "customer_id"))
    return [
        ref for ref in refs if not (ref[1] == "products" and getattr(snapshot, ref[1]).is_empty())
    ]


def _usable(snapshot: Snapshot, plausibility: Plausibility | None, record: str) -> bool:
    """Whether no rule flags a row of ``record``'s table as it is now: its rules,
    then its references."""
    table, _, rules = _rules(record)
    df = getattr(snapshot, table)
    if not df.height:
        return True
    if plausibility is not None:
        rules = rules + plausibility.checks(table, df)
    return not _may_flag(df, rules) and not any(
        _any_unknown(df, column, getattr(snapshot, parent)[key])
        for column, parent, key in _refs(snapshot, table)
    )


def _may_flag(df: pl.DataFrame, rules: list[Rule]) -> bool:
    """Whether any of ``rules`` may flag a row of ``df``: one eager pass (the lazy
    engine counted distinct hashes 2x slower) of their ``any``, or of ``unless``
    where a rule has one; a second of the ``any`` of those ``unless`` left open."""
    quick = [(rule.any, rule.unless) for rule in rules if rule.unless is not None]
    plain = [rule.any for rule in rules if rule.unless is None] or [pl.lit(False)]
    first = df.select(
        pl.any_horizontal(plain).alias("\x00any"),
        *(unless.alias(f"\x00{i}") for i, (_, unless) in enumerate(quick)),
    ).row(0)
    if first[0]:
        return True
    left = [may for (may, _), proven in zip(quick, first[1:], strict=True) if not proven]
    return bool(left) and bool(df.select(pl.any_horizontal(left)).item())


def _unknown(df: pl.DataFrame, column: str, known: pl.Series) -> pl.Expr:
    """Rows whose ``column`` names no id in ``known``: compared as they are when of
    one type (20x faster for categorical ids), else as text."""
    if df.schema[column] == known.dtype:
        return ~pl.col(column).is_in(known.implode())
    return ~pl.col(column).cast(pl.String).is_in(known.cast(pl.String).implode())


def _any_unknown(df: pl.DataFrame, column: str, known: pl.Series) -> bool:
    """Whether a row's ``column`` names an id not in ``known`` (nulls are another
    rule's), the quick way: categorical ids of one type by their codes (a lookup,
    no hashing); others by 64-bit hashes of their text (an anti-join of integers
    on the streaming engine: 3x faster than of text, 2x than the eager join).  An
    unknown id passes only if its hash is that of a known one (odds about 1 in
    2**64 / len(known), 3e-13 for five million invoices); when any is flagged,
    the rows are looked at exactly (``_unknown``)."""
    ids = df[column].drop_nulls()
    if isinstance(ids.dtype, pl.Categorical) and ids.dtype == known.dtype:
        codes, there = ids.to_physical(), known.drop_nulls().to_physical()
        size = max(int(codes.max() or 0), int(there.max() or 0)) + 1  # type: ignore[arg-type]
        seen = pl.repeat(False, size, dtype=pl.Boolean, eager=True).scatter(there, True)
        return not seen.gather(codes).all()

    def hashes(s: pl.Series) -> pl.LazyFrame:
        return s.cast(pl.String).hash(11).alias("id").to_frame().lazy()

    strangers = hashes(ids).join(hashes(known), on="id", how="anti")
    return strangers.select(pl.len()).collect(engine="streaming").item() > 0


def _id_order(value: str) -> tuple[int, str]:
    """Numeric ids in numeric order (ERP keys are text), then the others."""
    return (int(value), "") if value.isdigit() else (2**63, value)
