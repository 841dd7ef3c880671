"""Validate: check each plugin's output against the fields it declared.

A plugin whose output has an undeclared column, a value of the wrong type, an
out-of-range value or an unknown customer is rejected as a whole before
anything is planned; the other plugins' values go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from crm_bridge import columns
from crm_bridge.columns import Values
from crm_bridge.compute import PluginOutput
from crm_bridge.fields import Field

Desired = dict[str, dict[str, Any]]  # customer id -> field -> normalised value


@dataclass(frozen=True)
class Rejection:
    """A plugin's output refused as a whole: why, and where known the field and
    an example (customer and value) that shows it; kept in the run record."""

    plugin: str
    reason: str
    field: str | None = None
    example: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "plugin": self.plugin,
            "field": self.field,
            "reason": self.reason,
            "example": self.example,
        }


# reason, and where known: field, example
Problem = tuple[str, str | None, str | None]


INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
KINDS: dict[str, tuple[type[pl.DataType], ...]] = {
    "integer": INTEGERS,
    "numeric": (*INTEGERS, pl.Float32, pl.Float64, pl.Decimal),
    "boolean": (pl.Boolean,),
    "date": (pl.Date,),
    "char": (pl.String, pl.Categorical, pl.Enum),
    "selection": (pl.String, pl.Categorical, pl.Enum),
}


def _first_bad(frame: pl.DataFrame, column: str, bad: pl.Expr, field: Field) -> Problem | None:
    rows = frame.filter(bad.fill_null(False)).select("customer_id", column).head(1)
    if rows.height == 0:
        return None
    cid, value = rows.row(0)
    reason = f"field {column!r} for customer {cid!r}: {field.check(value) or 'invalid value'}"
    return reason, column, f"customer {cid!r}: {value!r}"


def _check_column(frame: pl.DataFrame, column: str, field: Field) -> Problem | list[pl.Expr]:
    """Vectorised form of ``Field.check`` over one output column: the problem of
    a column of the wrong type, else the bad-row expressions to look for."""
    dtype = frame.schema[column]
    if dtype != pl.Null and not isinstance(dtype, KINDS[field.type]):
        value = frame[column].drop_nulls().head(1).to_list()
        got = f"{type(value[0]).__name__} {value[0]!r}" if value else str(dtype)
        cid = frame.filter(pl.col(column).is_not_null())["customer_id"].head(1).to_list()
        where = cid[0] if cid else "?"
        reason = f"field {column!r} for customer {where!r}: expects {field.type}, got {got}"
        return reason, column, f"customer {where!r}: {got}"
    col = pl.col(column)
    checks = []
    if field.type == "numeric" and dtype in (pl.Float32, pl.Float64):
        checks.append(col.is_nan() | col.is_infinite())
    if field.type in ("integer", "numeric"):
        if field.minimum is not None:
            checks.append(col < field.minimum)
        if field.maximum is not None:
            checks.append(col > field.maximum)
    if field.type == "selection":
        checks.append(~col.cast(pl.String).is_in([k for k, _ in field.choices]))
    return checks


def check_output(
    out: PluginOutput, fields: Mapping[str, Field], customers: pl.Series
) -> str | None:
    """Why the plugin's output is refused, or None."""
    problem = _problem(out, fields, customers)
    return problem[0] if problem else None


def _problem(
    out: PluginOutput, fields: Mapping[str, Field], customers: pl.Series
) -> Problem | None:
    frame = out.frame
    assert frame is not None
    if "customer_id" not in frame.columns:
        return "its output has no customer_id column", None, None
    for column in frame.columns:
        if column == "customer_id":
            continue
        owner = fields[column].owner if column in fields else None
        if owner != out.plugin:
            return f"it returned the field {column!r}, which it did not declare", column, None
    ids = frame["customer_id"]
    if ids.dtype != customers.dtype:  # compared as text; ids of one type as they are (5x faster)
        ids, customers = ids.cast(pl.String), customers.cast(pl.String)
    if ids.n_unique() != ids.len():  # counting distinct ids: 4x faster than flagging repeats
        twice = ids.filter(ids.is_duplicated()).cast(pl.String).min()
        return "its output has several rows for one customer", None, f"customer {twice!r}"
    unknown = ids.filter(~ids.is_in(customers.implode()) | ids.is_null()).cast(pl.String)
    if unknown.len():
        reason = f"its output names {unknown.len()} unknown customer(s), e.g. {unknown.min()!r}"
        return reason, None, f"customer {unknown.min()!r}"
    checks: list[tuple[str, pl.Expr]] = []
    for column in frame.columns:
        if column != "customer_id":
            found = _check_column(frame, column, fields[column])
            if isinstance(found, tuple):
                return found
            checks.extend((column, bad) for bad in found)
    if not checks:
        return None
    # Every check in one pass; the first that flags a row is then shown.
    flagged = frame.select(
        bad.fill_null(False).any().alias(str(i)) for i, (_, bad) in enumerate(checks)
    ).row(0)
    for (column, bad), hit in zip(checks, flagged, strict=True):
        if hit:
            return _first_bad(frame, column, bad, fields[column])
    return None


def validate(
    outputs: Sequence[PluginOutput], fields: Mapping[str, Field], customers: pl.Series
) -> tuple[Values, list[Rejection]]:
    """The accepted outputs' values as keys (``columns``: one typed column per
    field, no Python value per cell), and the rejected plugins."""
    parts = []
    rejections = []
    for out in outputs:
        if out.error:
            rejections.append(Rejection(out.plugin, out.error))
            continue
        if out.frame is None:
            continue
        problem = _problem(out, fields, customers)
        if problem:
            rejections.append(Rejection(out.plugin, *problem))
            continue
        parts.append(columns.output_keys(out.frame, fields))
    return columns.join(parts, order=customers), rejections


def missing_columns(
    outputs: Sequence[PluginOutput], fields: Mapping[str, Field], rejections: Sequence[Rejection]
) -> dict[str, list[str]]:
    """{plugin: declared fields its accepted output has no column for}.

    Reported as a warning, not a rejection: the plugin's other fields are good.
    Such a field is left as the ERP holds it (it is not among the fields that
    ran, so its values are not cleared).
    """
    rejected = {r.plugin for r in rejections}
    out: dict[str, list[str]] = {}
    for o in outputs:
        if o.frame is None or o.plugin in rejected:
            continue
        missing = sorted(
            name
            for name, f in fields.items()
            if f.owner == o.plugin and name not in o.frame.columns
        )
        if missing:
            out[o.plugin] = missing
    return out
