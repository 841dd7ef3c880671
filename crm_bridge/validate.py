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

from crm_bridge.compute import PluginOutput
from crm_bridge.fields import Field

Desired = dict[str, dict[str, Any]]  # customer id -> field -> normalised value


@dataclass(frozen=True)
class Rejection:
    plugin: str
    reason: str


INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
KINDS: dict[str, tuple[type[pl.DataType], ...]] = {
    "integer": INTEGERS,
    "numeric": (*INTEGERS, pl.Float32, pl.Float64, pl.Decimal),
    "boolean": (pl.Boolean,),
    "date": (pl.Date,),
    "char": (pl.String, pl.Categorical, pl.Enum),
    "selection": (pl.String, pl.Categorical, pl.Enum),
}


def _first_bad(frame: pl.DataFrame, column: str, bad: pl.Expr, field: Field) -> str | None:
    rows = frame.filter(bad.fill_null(False)).select("customer_id", column).head(1)
    if rows.height == 0:
        return None
    cid, value = rows.row(0)
    return f"field {column!r} for customer {cid!r}: {field.check(value) or 'invalid value'}"


def _check_column(frame: pl.DataFrame, column: str, field: Field) -> str | None:
    """Vectorised form of ``Field.check`` over one output column."""
    dtype = frame.schema[column]
    if dtype != pl.Null and not isinstance(dtype, KINDS[field.type]):
        value = frame[column].drop_nulls().head(1).to_list()
        got = f"{type(value[0]).__name__} {value[0]!r}" if value else str(dtype)
        cid = frame.filter(pl.col(column).is_not_null())["customer_id"].head(1).to_list()
        return (
            f"field {column!r} for customer {cid[0] if cid else '?'!r}: expects "
            f"{field.type}, got {got}"
        )
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
    for bad in checks:
        problem = _first_bad(frame, column, bad, field)
        if problem:
            return problem
    return None


def check_output(
    out: PluginOutput, fields: Mapping[str, Field], customers: pl.Series
) -> str | None:
    frame = out.frame
    assert frame is not None
    if "customer_id" not in frame.columns:
        return "its output has no customer_id column"
    for column in frame.columns:
        if column == "customer_id":
            continue
        owner = fields[column].owner if column in fields else None
        if owner != out.plugin:
            return f"it returned the field {column!r}, which it did not declare"
    ids = frame["customer_id"]
    if ids.dtype != customers.dtype:  # compared as text; ids of one type as they are (5x faster)
        ids, customers = ids.cast(pl.String), customers.cast(pl.String)
    if ids.is_duplicated().any():
        return "its output has several rows for one customer"
    unknown = ids.filter(~ids.is_in(customers.implode()) | ids.is_null()).cast(pl.String)
    if unknown.len():
        return f"its output names {unknown.len()} unknown customer(s), e.g. {unknown.min()!r}"
    for column in frame.columns:
        if column != "customer_id":
            problem = _check_column(frame, column, fields[column])
            if problem:
                return problem
    return None


def validate(
    outputs: Sequence[PluginOutput], fields: Mapping[str, Field], customers: pl.Series
) -> tuple[Desired, list[Rejection]]:
    desired: Desired = {}
    rejections = []
    for out in outputs:
        if out.error:
            rejections.append(Rejection(out.plugin, out.error))
            continue
        if out.frame is None:
            continue
        problem = check_output(out, fields, customers)
        if problem:
            rejections.append(Rejection(out.plugin, problem))
            continue
        # Column by column: one normalising call and one Python list per column.
        ids = out.frame["customer_id"].cast(pl.String).to_list()
        rows = [desired.setdefault(cid, {}) for cid in ids]
        for name in out.frame.columns[1:]:
            values = fields[name].normalize_all(out.frame[name].to_list())
            for cells, value in zip(rows, values, strict=True):
                cells[name] = value
    return desired, rejections
