"""Custom-field declarations and the check of values against them.

A plugin declares each field it writes; the declaration is what is provisioned
in the ERP (type, label, help text, choices) and what every computed value is
validated against before anything is planned.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

FieldType = Literal["char", "integer", "numeric", "boolean", "date", "selection"]
_quote = json.encoder.encode_basestring_ascii
FIELD_TYPES: tuple[str, ...] = FieldType.__args__  # type: ignore[attr-defined]
NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


@dataclass(frozen=True)
class Field:
    """One custom field on the customer record, owned by one plugin.

    ``choices`` (selection only) maps stored keys to labels; ``minimum`` and
    ``maximum`` bound integer and numeric values; ``digits`` is the number of
    decimals a numeric value is rounded to; ``tolerance`` and
    ``relative_tolerance`` say how far a number may move before it is worth
    writing (a material change).  When the plugin ran and has no
    value for a customer (a null, or no row), the value the ERP holds no longer
    applies and is cleared; ``keep_last_value`` keeps it instead (for a field
    that means "the last one seen").  ``list_column`` makes it a headline
    value: a column of the ERP's customer list and a filter there, as far as
    the ERP allows (docs/adapters/*.md); ``list_total`` also totals that column
    (a sum across customers that means something: money).  ``owner`` is filled
    in by the core with the name of the plugin that declared the field.
    """

    name: str
    type: FieldType
    label: str
    help: str = ""
    choices: Sequence[tuple[str, str]] = ()
    minimum: float | None = None
    maximum: float | None = None
    digits: int = 2
    keep_last_value: bool = False
    # A numeric or integer value that moved by no more than this (absolute), or
    # by no more than this share of the value held (relative), is not a change:
    # a model refit moving every prediction in its fourth digit rewrites nobody.
    tolerance: float = 0
    relative_tolerance: float = 0
    list_column: bool = False
    list_total: bool = False
    # Accepted for plugins written when nulls were not cleared by default;
    # clearing is now what every field does, so it changes nothing.
    clear_when_empty: bool = field(default=False, compare=False)
    owner: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(
                f"field name {self.name!r} must be 2-63 characters of a-z, 0-9 and _, "
                "starting with a letter"
            )
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name!r}: type must be one of {', '.join(FIELD_TYPES)}")
        if self.type == "selection" and not self.choices:
            raise ValueError(f"field {self.name!r}: a selection needs choices")
        if self.list_total and not (self.list_column and self.type in ("integer", "numeric")):
            raise ValueError(
                f"field {self.name!r}: list_total needs list_column and an integer or numeric type"
            )

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not valid for this field, or None if it is."""
        if value is None:
            return None
        kind = self.type
        if kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "numeric":
            ok = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
            if ok and value != value:  # NaN
                return "is not a number (NaN)"
        elif kind == "date":
            ok = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        else:
            ok = isinstance(value, str)
        if not ok:
            return f"expects {kind}, got {type(value).__name__} {value!r}"
        if kind == "selection" and value not in {k for k, _ in self.choices}:
            return f"{value!r} is not one of its choices"
        if kind in ("integer", "numeric"):
            if self.minimum is not None and value < self.minimum:
                return f"{value} is below the minimum {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return f"{value} is above the maximum {self.maximum}"
        return None

    def parse(self, raw: Any) -> Any:
        """A value read back from the ERP, as this field's Python type.

        ERPs send numbers as strings, dates as unix timestamps or ISO text,
        booleans as 0/1, and Odoo sends ``false`` for "no value".  What cannot be
        read is returned as it is, so the plan sees a difference and rewrites it.
        """
        kind = self.type
        if raw is None or raw == "" or (raw is False and kind != "boolean"):
            return None
        try:
            if (
                kind == "numeric"
                and isinstance(raw, str | int | float)
                and not isinstance(raw, bool)
            ):
                return self.normalize(Decimal(str(raw)))
            if kind == "integer" and isinstance(raw, str | float):
                return int(Decimal(str(raw)))
            if kind == "boolean" and isinstance(raw, str | int):
                return str(raw).strip().lower() in ("1", "true", "yes")
            if kind == "date" and isinstance(raw, dt.datetime):
                return raw.date()
            if kind == "date" and isinstance(raw, int | float):
                return dt.datetime.fromtimestamp(raw, dt.UTC).date()
            if kind == "date" and isinstance(raw, str):
                return dt.date.fromisoformat(raw[:10])
        except (ArithmeticError, ValueError, OverflowError, OSError):
            return raw
        return raw

    def within_tolerance(self, new: Any, held: Any) -> bool:
        """Whether ``new`` is too close to the ``held`` number to be worth writing."""
        if not (self.tolerance or self.relative_tolerance) or self.type not in (
            "integer",
            "numeric",
        ):
            return False
        if not isinstance(held, int | float | Decimal) or isinstance(held, bool):
            return False
        moved = abs(Decimal(str(new)) - Decimal(str(held)))
        allowed = max(
            Decimal(str(self.tolerance)),
            Decimal(str(self.relative_tolerance)) * abs(Decimal(str(held))),
        )
        return moved <= allowed

    def normalize(self, value: Any) -> Any:
        """The value as it is stored and compared: numerics as rounded Decimals."""
        if value is None or self.type != "numeric":
            return value
        return Decimal(str(value)).quantize(_quantum(self.digits))

    def normalize_all(self, values: list[Any]) -> list[Any]:
        """:meth:`normalize` over a column's values, without a call per cell."""
        if self.type != "numeric":
            return values
        quantum = _quantum(self.digits)
        return [None if v is None else Decimal(str(v)).quantize(quantum) for v in values]


@functools.cache
def _quantum(digits: int) -> Decimal:
    return Decimal(1).scaleb(-digits)


def decode(text: str) -> Any:
    """The inverse of :func:`encode`."""
    return decoded(json.loads(text))


def decoded(value: Any) -> Any:
    """A value :func:`encode` wrote, once parsed as JSON (part of a larger document)."""
    if isinstance(value, dict) and "decimal" in value:
        return Decimal(value["decimal"])
    if isinstance(value, dict) and "date" in value:
        return dt.date.fromisoformat(value["date"])
    return value


def encode(value: Any) -> str:
    """Canonical JSON text of a normalised value: what plans compare and the store keeps.

    Called for every cell of every plan, so the common types skip ``json.dumps``;
    the text is the same as ``json.dumps`` would give.
    """
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if kind is Decimal:
        return f'{{"decimal": "{value}"}}'
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is dt.date:
        return f'{{"date": "{value.isoformat()}"}}'
    if isinstance(value, dt.date):
        return json.dumps({"date": value.isoformat()})
    if isinstance(value, Decimal):
        return json.dumps({"decimal": str(value)})
    return json.dumps(value)
