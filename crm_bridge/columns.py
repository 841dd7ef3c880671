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
from typing import Any, Literal

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
VALUE_TYPES = {**KEY_TYPES, "numeric": pl.Float64()}
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

    def values_frame(self, fields: Mapping[str, Field], names: Iterable[str]) -> pl.DataFrame:
        """``customer_id`` and the named fields' values as columns (numerics as
        Float64; an odd cell as null, unless a number): for code that reads a few
        fields of every customer, e.g. a plugin looking at what the ERP holds."""
        exprs: list[pl.Expr] = [pl.col("customer_id")]
        for name in names:
            f = fields[name]
            if name not in self.frame.columns:
                exprs.append(pl.lit(None, VALUE_TYPES[f.type]).alias(name))
                continue
            value = pl.col(name)
            if f.type == "numeric":
                value = value.cast(pl.Float64) / float(10**f.digits)
                odd = {c: float(v) for (c, n), v in self.odd.items() if n == name}
                if odd:  # -0.00, NaN, huge numbers
                    value = pl.col("customer_id").replace_strict(
                        odd, default=value, return_dtype=pl.Float64
                    )
            exprs.append(value.alias(name))
        return self.frame.select(exprs)


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
    """The keys of a plugin's output, checked by ``validate``: every column in one
    Polars query, a Python value only for the floats that lie next to a rounding
    half (or are too large to round in binary) and for Decimal columns.  The ids
    stay as the plugin gave them (categorical, as the snapshot reads them, lets
    ``join`` match them by their codes)."""
    exprs: list[pl.Expr] = [pl.col("customer_id")]  # as given: ``join`` makes it text
    exact: list[str] = []  # numeric columns made the exact way, cell by cell
    near: list[str] = []  # float columns: the cells next to a half, the exact way
    for name in frame.columns[1:]:
        f = fields[name]
        dtype = frame.schema[name]
        if f.type != "numeric" or dtype == pl.Null:
            exprs.append(pl.col(name).cast(KEY_TYPES[f.type]))
        elif dtype.is_float():
            exprs.extend(_float_keys(name, f.digits))
            near.append(name)
        elif dtype.is_integer() and _fits(frame[name], f.digits):
            exprs.append(pl.col(name).cast(pl.Int64) * 10**f.digits)
        else:  # Decimal, huge integers: rare
            exprs.append(pl.lit(None, pl.Int64).alias(name))
            exact.append(name)
    keys = frame.select(exprs)
    odd: dict[tuple[str, str], Any] = {}
    ids = keys["customer_id"]
    keys = _redo_near(keys, frame, near, fields, odd)
    for name in exact:
        fixed = _exact_keys(fields[name], name, ids.to_list(), frame[name].to_list(), odd)
        keys = keys.with_columns(pl.Series(name, fixed, dtype=pl.Int64))
    return Values(keys, odd)


def _fits(column: pl.Series, digits: int) -> bool:
    largest = column.cast(pl.Float64).abs().max()
    return largest is None or float(largest) * 10**digits < INT64 / 2  # type: ignore[arg-type]


def _float_keys(name: str, digits: int) -> list[pl.Expr]:
    """A float column's keys (rounded half to even in binary) and a flag for the
    cells to redo exactly: next to a half, too large (NaN and infinities too), or
    a negative zero (-0.004 is written as -0.00: a key of 0 would lose the sign)."""
    x = pl.col(name).cast(pl.Float64)
    y = x * float(10**digits)
    rounded = y.round(0, mode="half_to_even")
    negative = (x < 0) | ((x == 0) & (1.0 / x < 0))
    slow = (
        ~(y.abs() < FAST_LIMIT)
        | ((y - y.floor() - 0.5).abs() < NEAR_HALF)
        | ((rounded == 0) & negative)
    ) & x.is_not_null()
    key = pl.when(slow).then(None).otherwise(rounded).cast(pl.Int64, strict=False)
    return [key.alias(name), slow.alias("\x00slow" + name)]


def _redo_near(
    keys: pl.DataFrame,
    frame: pl.DataFrame,
    near: list[str],
    fields: Mapping[str, Field],
    odd: dict[tuple[str, str], Any],
) -> pl.DataFrame:
    """The float cells ``_float_keys`` flagged, keyed the exact way (``Field.parse``:
    the shortest decimal text, rounded as ``Field.normalize`` rounds it); the flags
    dropped."""
    ids = keys["customer_id"]
    for name in near:
        flag = "\x00slow" + name
        rows = keys[flag].arg_true().to_list()
        if rows:
            f = fields[name]
            values = [f.parse(v) for v in frame[name].cast(pl.Float64).gather(rows).to_list()]
            fixed = _keys_one_by_one(f, ids.gather(rows).to_list(), values, odd, True)
            keys = keys.with_columns(keys[name].scatter(rows, pl.Series(fixed, dtype=pl.Int64)))
        keys = keys.drop(flag)
    return keys


def _exact_keys(
    f: Field, name: str, ids: list[str], values: list[Any], odd: dict[tuple[str, str], Any]
) -> list[Any]:
    """Keys the exact way (``Field.normalize``); a value without one is odd."""
    keys: list[Any] = []
    for cid, value in zip(ids, values, strict=True):
        try:
            keys.append(None if value is None else _exact_key(f, value))
        except _Odd:
            odd[cid, name] = f.normalize(value)
            keys.append(None)
    return keys


def read_keys(frame: pl.DataFrame, fields: Mapping[str, Field]) -> Values:
    """The keys of values read back from the ERP as a frame (``customer_id`` and a
    column per field, values as the ERP holds them), exactly as
    ``of_rows(read_back(rows))`` makes them from the same values as rows: a column
    of the field's own type is converted in one Polars query; any other column
    (numbers as text, dates as timestamps...) cell by cell through
    ``Field.parse``.  Columns of no declared field are left out."""
    exprs: list[pl.Expr] = [pl.col("customer_id").cast(pl.String)]
    near: list[str] = []  # float columns: the cells next to a half, the exact way
    slow: list[str] = []  # parsed cell by cell
    for name in frame.columns[1:]:
        if name not in fields:
            continue
        f, dtype = fields[name], frame.schema[name]
        col = pl.col(name)
        if dtype == pl.Null:
            exprs.append(pl.lit(None, KEY_TYPES[f.type]).alias(name))
        elif f.type == "numeric" and dtype.is_float():
            exprs.extend(_float_keys(name, f.digits))
            near.append(name)
        elif f.type == "numeric" and dtype.is_integer() and _fits(frame[name], f.digits):
            exprs.append(col.cast(pl.Int64) * 10**f.digits)
        elif f.type == "integer" and dtype.is_integer() and dtype != pl.UInt64:
            exprs.append(col.cast(pl.Int64))
        elif (f.type, dtype) in (("boolean", pl.Boolean), ("date", pl.Date)):
            exprs.append(col)
        elif f.type in ("char", "selection") and isinstance(dtype, pl.String | pl.Categorical):
            text = col.cast(pl.String)
            exprs.append(pl.when(text != "").then(text).alias(name))  # "" is no value
        else:
            exprs.append(pl.lit(None, KEY_TYPES[f.type]).alias(name))
            slow.append(name)
    keys = frame.select(exprs)
    odd: dict[tuple[str, str], Any] = {}
    ids = keys["customer_id"]
    keys = _redo_near(keys, frame, near, fields, odd)
    for name in slow:
        f = fields[name]
        values = [f.parse(v) for v in frame[name].to_list()]
        fixed = _keys_one_by_one(f, ids.to_list(), values, odd, True)
        keys = keys.with_columns(pl.Series(name, fixed, dtype=KEY_TYPES[f.type]))
    return Values(keys, odd)


def stack(parts: list[Values]) -> Values:
    """Values of several reads, one row per customer: a customer read twice holds
    what the later read gave (all of it, as a page of rows replaces a customer's
    values)."""
    parts = [p for p in parts if p.frame.height or p.frame.width > 1]
    if not parts:
        return Values.empty()
    if len(parts) == 1:
        return parts[0]
    ids = pl.concat([p.frame["customer_id"] for p in parts])
    if ids.hash(11).n_unique() == ids.len():  # no customer read twice: the pages as they are
        together = pl.concat([p.frame for p in parts], how="diagonal")
        return Values(together, {k: v for p in parts for k, v in p.odd.items()})
    frame = pl.concat(
        [p.frame.with_columns(pl.lit(i, pl.Int32).alias("\x00part")) for i, p in enumerate(parts)],
        how="diagonal",
    ).unique("customer_id", keep="last", maintain_order=True)
    odd: dict[tuple[str, str], Any] = {}
    for i, part in enumerate(parts):  # the odd cells of the rows kept
        if part.odd:
            kept = set(frame.filter(pl.col("\x00part") == i)["customer_id"].to_list())
            odd.update({k: v for k, v in part.odd.items() if k[0] in kept})
    return Values(frame.drop("\x00part"), odd)


def _codes(ids: Iterable[pl.Series]) -> list[pl.Series] | None:
    """The categorical codes of id columns that all share one categorical type
    (two equal codes: one id), or None."""
    given = list(ids)
    kind = given[0].dtype
    if not isinstance(kind, pl.Categorical) or any(s.dtype != kind for s in given):
        return None
    return [s.to_physical() for s in given]


def _where(codes: pl.Series, size: int, at: pl.Series | None = None) -> pl.Series:
    """A lookup from code to row (``at``: the rows, default 0, 1, ...): indexed
    by code, null for a code not in ``codes``."""
    rows = pl.int_range(codes.len(), dtype=pl.UInt32, eager=True) if at is None else at
    return pl.repeat(None, size, dtype=pl.UInt32, eager=True).scatter(codes, rows)


def row_numbers(
    left: pl.Series, right: pl.Series, how: Literal["full", "left"], names: tuple[str, str]
) -> pl.DataFrame:
    """Customers matched across two id columns: ``customer_id`` (text) and each
    side's row number (``names``; null where that side lacks the customer), for
    the ids of both sides (``how="full"``) or of the left one (``"left"``).

    The left side's rows come first, in their order, then the right side's
    others (see ``aligned``).  The same ids in the same order (the values read
    back in the order the customers were read, as validate puts the computed
    ones) are matched row for row; others on 64-bit hashes of the ids (an integer
    join: 3x faster than one on text), then checked: should two ids of one hash
    be paired, the ids are matched as text instead."""
    if left.len() == right.len() and left.cast(pl.String).equals(right.cast(pl.String)):
        same = pl.int_range(left.len(), dtype=pl.UInt32, eager=True)  # one order: no join
        return pl.DataFrame({"customer_id": left.cast(pl.String), names[0]: same}).with_columns(
            pl.col(names[0]).alias(names[1])
        )
    number = pl.int_range(pl.len(), dtype=pl.UInt32)
    sides = [
        pl.DataFrame({"\x00id": ids.cast(pl.String)}).with_columns(
            pl.col("\x00id").hash(11).alias("\x00key"), number.alias(name)
        )
        for ids, name in zip((left, right), names, strict=True)
    ]
    rows = sides[0].join(sides[1], on="\x00key", how=how, coalesce=True, maintain_order="left")
    mine, theirs = rows["\x00id"], rows.get_column("\x00id_right", default=None)
    if theirs is not None and (mine != theirs).any():  # two ids, one hash: by the text
        rows = sides[0].join(sides[1], on="\x00id", how=how, coalesce=True, maintain_order="left")
        return rows.select(pl.col("\x00id").alias("customer_id"), *names)
    ids = mine.fill_null(theirs) if theirs is not None else mine
    return rows.select(ids.alias("customer_id"), *names)


def aligned(frame: pl.DataFrame, at: pl.Series) -> pl.DataFrame:
    """The rows of ``frame`` at the row numbers ``at`` (null: a row of nulls);
    without copying when ``at`` starts with all of them in order (the left side of
    ``row_numbers``)."""
    n = frame.height
    if (
        at.len() >= n
        and at.null_count() == at.len() - n
        and at.head(n).equals(pl.int_range(n, dtype=pl.UInt32, eager=True), check_names=False)
    ):
        return frame if at.len() == n else pl.concat([frame, frame.clear(at.len() - n)])
    return frame.select(pl.all().gather(at))


def join(parts: Iterable[Values], order: pl.Series | None = None) -> Values:
    """Several plugins' keys as one: a row per customer (text), a column per field.

    With ``order`` (the snapshot's customers, ids of the parts' categorical type)
    the rows follow it: matched by the ids' codes, without a join, and in the
    order the ERP gave its customers, which is the order it reads values back in,
    so the plan then matches the two sides without a join either."""
    given = list(parts)
    if not given:
        return Values.empty()
    if order is not None:
        by_order = _join_in_order(given, order)
        if by_order is not None:
            return by_order
    frame = given[0].frame.with_columns(pl.col("customer_id").cast(pl.String))
    for part in given[1:]:
        rows = row_numbers(frame["customer_id"], part.frame["customer_id"], "full", ("l", "r"))
        sides = [rows.select("customer_id")]
        for side, at in ((frame, rows["l"]), (part.frame, rows["r"])):
            if side.width > 1:
                sides.append(aligned(side.drop("customer_id"), at))
        frame = pl.concat(sides, how="horizontal")
    odd = {k: v for p in given for k, v in p.odd.items()}
    return Values(frame, odd)


def _join_in_order(given: list[Values], order: pl.Series) -> Values | None:
    """``join`` in the order of ``order``, by categorical codes; None when the ids
    are not all of one categorical type or a part names an id not in ``order``."""
    codes = _codes([order, *(p.frame["customer_id"] for p in given)])
    if codes is None or any(c.null_count() for c in codes):
        return None
    size = max(int(c.max() or 0) for c in codes) + 1  # type: ignore[arg-type]
    row_of = _where(codes[0], size)  # code -> row in order
    at = [row_of.gather(c) for c in codes[1:]]  # each part's rows in order
    if any(a.null_count() for a in at):
        return None
    present = pl.repeat(False, order.len(), dtype=pl.Boolean, eager=True)
    for a in at:
        present = present.scatter(a, True)
    rows = present.arg_true()  # the customers of any part, in order
    sides = [pl.DataFrame({"customer_id": order.gather(rows).cast(pl.String)})]
    for part, a in zip(given, at, strict=True):
        if part.frame.width > 1:
            where = _where(a, order.len()).gather(rows)  # each row's row in the part
            sides.append(aligned(part.frame.drop("customer_id"), where))
    odd = {k: v for p in given for k, v in p.odd.items()}
    return Values(pl.concat(sides, how="horizontal"), odd)
