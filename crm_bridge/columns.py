"""Field values as columns: the form in which the plan compares them.

Every value is compared by its *key*, one typed column per field: a numeric
value as the integer ``value * 10**digits`` (rounded exactly as
``Field.normalize`` rounds it: the shortest decimal text of the number,
half to even), an integer as Int64, a boolean, a date and a text as they are.
Two normalised values have equal keys exactly when the plan's rule calls them
the same (equal values of one type; ``Decimal`` equality for numerics, so
``5.0`` written with other digits before is still ``5.00``).

A value with no key (an ERP answer of an unexpected type, a negative zero that
must be written as ``-0.00``, a number too large for Int64) is an *odd* cell:
its key is null and the value is kept aside, and the plan looks at that
customer's cells one by one, the way it always has.  Everything else is
settled column-wise, without a Python object per cell.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import polars as pl

from crm_bridge.fields import Field

KEY_TYPES: dict[str, pl.DataType] = {
    "numeric": pl.Int64(),
    "integer": pl.Int64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "char": pl.String(),
    "selection": pl.String(),
}
# Floats whose scaled value is below this are rounded in binary; the error of
# that (under 1e-6 of a unit) cannot cross a rounding boundary unless the value
# lies that close to a half, and those are rounded the exact way, in Python.
FAST_LIMIT = 1e9
NEAR_HALF = 1e-6
INT64 = 2**63


class _Odd(Exception):
    """A value that has no key."""


@dataclass
class Values:
    """Values per customer and field: ``frame`` holds ``customer_id`` (text) and
    a key column per field; ``odd`` the cells without a key, {(customer, field):
    value} (their key is null)."""

    frame: pl.DataFrame
    odd: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return self.frame.columns[1:]

    def drop(self, names: Iterable[str]) -> Values:
        gone = set(names) & set(self.names)
        if not gone:
            return self
        odd = {k: v for k, v in self.odd.items() if k[1] not in gone}
        return Values(self.frame.drop(sorted(gone)), odd)

    def rows(self, fields: Mapping[str, Field], nulls: bool = True) -> dict[str, dict[str, Any]]:
        """As Python: {customer: {field: value}} (with nulls unless ``nulls`` is False)."""
        return rows_of(self.frame, self.odd, fields, self.names, nulls)

    @staticmethod
    def empty() -> Values:
        return Values(pl.DataFrame({"customer_id": pl.Series([], dtype=pl.String)}))


def value_of(f: Field, key: Any) -> Any:
    """The normalised Python value of a key."""
    if key is None or f.type != "numeric":
        return key
    return Decimal(key).scaleb(-f.digits)


def rows_of(
    frame: pl.DataFrame,
    odd: Mapping[tuple[str, str], Any],
    fields: Mapping[str, Field],
    names: Iterable[str],
    nulls: bool = True,
) -> dict[str, dict[str, Any]]:
    names = [n for n in names if n in frame.columns]
    ids = frame["customer_id"].to_list()
    out: dict[str, dict[str, Any]] = {cid: {} for cid in ids}
    for name in names:
        f = fields[name]
        column = frame[name].to_list()
        for cid, key in zip(ids, column, strict=True):
            value = odd.get((cid, name), key) if key is None else value_of(f, key)
            if value is not None or nulls:
                out[cid][name] = value
    return out


def key_of(f: Field, value: Any) -> Any:
    """The key of a value as read back or remembered (None for no value); raises
    ``_Odd`` when it has none."""
    if value is None:
        return None
    kind = f.type
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise _Odd
        try:
            number = f.normalize(value) if not isinstance(value, Decimal) else value
            if not number.is_finite() or (number.is_signed() and not number):
                raise _Odd
            scaled = number.scaleb(f.digits)
            if scaled != scaled.to_integral_value():
                raise _Odd
        except (InvalidOperation, ValueError, TypeError, ArithmeticError):
            raise _Odd from None
        key = int(scaled)
        if not -INT64 <= key < INT64:
            raise _Odd
        return key
    if kind == "integer":
        if type(value) is not int or not -INT64 <= value < INT64:
            raise _Odd
        return value
    if kind == "boolean":
        if type(value) is not bool:
            raise _Odd
        return value
    if kind == "date":
        if type(value) is not dt.date:
            raise _Odd
        return value
    if type(value) is not str:
        raise _Odd
    return value


def of_rows(
    rows: Mapping[str, Mapping[str, Any]], fields: Mapping[str, Field], normalise: bool = True
) -> Values:
    """Values from {customer: {field: value}} (fields not declared are left out).

    ``normalise``: numerics given in any form are normalised first (values read
    back); otherwise a numeric value is taken as it is (values remembered as
    written, perhaps with other digits).  A column of values of the field's own
    type is converted at once; another value makes that column go cell by cell.
    """
    names = sorted({n for cells in rows.values() for n in cells if n in fields})
    ids = list(rows)
    cells = list(rows.values())
    odd: dict[tuple[str, str], Any] = {}
    columns: dict[str, pl.Series] = {"customer_id": pl.Series(ids, dtype=pl.String)}
    for name in names:
        f = fields[name]
        values = [c.get(name) for c in cells]
        keys = _keys_at_once(f, values)
        if keys is None:
            keys = pl.Series(
                name, _keys_one_by_one(f, ids, values, odd, normalise), KEY_TYPES[f.type]
            )
        columns[name] = keys.alias(name)
    return Values(pl.DataFrame(columns), odd)


_TYPES: dict[str, type] = {"integer": int, "boolean": bool, "date": dt.date, "char": str}


def _keys_at_once(f: Field, values: list[Any]) -> pl.Series | None:
    """The keys of a column whose values all have the field's own type (numerics:
    ``Decimal`` rounded to the field's digits), or None."""
    if f.type == "numeric":
        if any(type(v) is not Decimal for v in values if v is not None):
            return None
        text = pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)
        shape = rf"^-?[0-9]+\.[0-9]{{{f.digits}}}$" if f.digits else r"^-?[0-9]+$"
        fine = text.str.contains(shape) & ~text.str.contains(r"^-[0.]+$")
        if not fine.fill_null(True).all():
            return None
        keys = text.str.replace(".", "", literal=True).cast(pl.Int64, strict=False)
        return keys if keys.null_count() == text.null_count() else None  # else: too large
    kind = _TYPES.get(f.type, str)
    if any(type(v) is not kind for v in values if v is not None):
        return None
    try:
        return pl.Series(values, dtype=KEY_TYPES[f.type], strict=True)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        return None


def _keys_one_by_one(
    f: Field, ids: list[str], values: list[Any], odd: dict[tuple[str, str], Any], normalise: bool
) -> list[Any]:
    keys: list[Any] = []
    for cid, value in zip(ids, values, strict=True):
        if f.type == "numeric" and not normalise and not isinstance(value, Decimal | None):
            odd[cid, f.name] = value
            keys.append(None)
            continue
        try:
            keys.append(key_of(f, value))
        except _Odd:
            odd[cid, f.name] = value
            keys.append(None)
    return keys


def _exact_key(f: Field, value: Any) -> Any:
    """The key of a computed value the slow, exact way (``Field.normalize``)."""
    return key_of(f, f.normalize(value))


def output_keys(frame: pl.DataFrame, fields: Mapping[str, Field]) -> Values:
    """The keys of a plugin's output, checked by ``validate``: a column at a time,
    a Python value only for the floats that lie next to a rounding half."""
    ids = frame["customer_id"].cast(pl.String)
    columns = [ids.alias("customer_id")]
    odd: dict[tuple[str, str], Any] = {}
    for name in frame.columns:
        if name == "customer_id":
            continue
        f = fields[name]
        column = frame[name]
        if f.type == "numeric":
            keys, odd_rows = _numeric_keys(column, f)
            for row, value in odd_rows:
                odd[ids[row], name] = value
            columns.append(keys.alias(name))
        elif column.dtype == pl.Null:
            columns.append(pl.Series(name, [None] * len(column), dtype=KEY_TYPES[f.type]))
        else:
            columns.append(column.cast(KEY_TYPES[f.type]).alias(name))
    return Values(pl.DataFrame(columns), odd)


def _numeric_keys(column: pl.Series, f: Field) -> tuple[pl.Series, list[tuple[int, Any]]]:
    """(keys, odd cells as (row, normalised value)) of a numeric output column."""
    scale = 10**f.digits
    odd: list[tuple[int, Any]] = []
    if column.dtype == pl.Null:
        return pl.Series([None] * len(column), dtype=pl.Int64), odd
    largest = column.cast(pl.Float64).abs().max() if column.dtype.is_integer() else None
    if column.dtype.is_integer() and (largest is None or float(largest) * scale < INT64 / 2):  # type: ignore[arg-type]
        return column.cast(pl.Int64) * scale, odd
    if not column.dtype.is_float():  # Decimal, huge integers: rare, the exact way
        exact: list[Any] = []
        for row, value in enumerate(column.to_list()):
            try:
                exact.append(_exact_key(f, value))
            except _Odd:
                odd.append((row, f.normalize(value)))
                exact.append(None)
        return pl.Series(exact, dtype=pl.Int64), odd
    x = column.cast(pl.Float64).to_numpy()
    nulls = column.is_null().to_numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        y = x * float(scale)
        rounded = np.rint(y)
        slow = ~nulls & (
            ~(np.abs(y) < FAST_LIMIT) | (np.abs(np.abs(y - np.trunc(y)) - 0.5) < NEAR_HALF)
        )
        # -0.004 is written as -0.00: a key of 0 would lose the sign
        slow |= ~nulls & (rounded == 0) & np.signbit(x)
    keys = np.where(nulls | slow, 0, rounded).astype(np.int64)
    for row in np.flatnonzero(slow).tolist():
        value = float(x[row])
        try:
            keys[row] = _exact_key(f, value)
        except _Odd:
            odd.append((row, f.normalize(value)))
    series = pl.Series(keys, dtype=pl.Int64)
    invalid = nulls.copy()
    for row, _ in odd:
        invalid[row] = True
    if invalid.any():
        series = series.set(pl.Series(invalid), None)
    return series, odd


def join(parts: Iterable[Values]) -> Values:
    """Several plugins' keys as one: a row per customer, a column per field."""
    frames = [p for p in parts]
    if not frames:
        return Values.empty()
    frame = frames[0].frame
    odd = dict(frames[0].odd)
    for part in frames[1:]:
        frame = frame.join(part.frame, on="customer_id", how="full", coalesce=True)
        odd.update(part.odd)
    return Values(frame, odd)
