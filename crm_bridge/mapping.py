"""Mapping files: how a declarative adapter (REST or SOAP) speaks to one ERP.

A mapping file is TOML, validated against ``schemas/mapping.schema.json``;
the profiles shipped with crm-bridge are mapping files too (see
``crm_bridge.adapters.profiles``).  This module holds what both declarative
adapters share: loading and validating a mapping, ``{placeholder}`` templates,
dotted paths into ERP records, and turning ERP records into canonical rows.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from crm_bridge import config as config_mod
from crm_bridge import jsonschemas
from crm_bridge.errors import ConfigError
from crm_bridge.snapshot import TABLES

PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")
_MISSING = object()


@dataclass(frozen=True)
class MappingFile:
    """A validated mapping file and the folder its relative paths start from."""

    name: str
    data: dict[str, Any]
    folder: Path

    @property
    def protocol(self) -> str:
        return str(self.data["protocol"])

    def table(self, name: str) -> dict[str, Any] | None:
        tables: dict[str, Any] = self.data.get("tables", {})
        return tables.get(name)


def profiles() -> dict[str, Path]:
    """The mapping files shipped with crm-bridge, by profile name."""
    folder = resources.files("crm_bridge.adapters.profiles")
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load(ref: str, base: Path | None = None) -> MappingFile:
    """Load the profile named ``ref``, or the mapping file at path ``ref``."""
    named = profiles()
    if ref in named:
        path = named[ref]
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"mapping file {path} cannot be read ({exc.strerror})",
            hint=f"erp.mapping is a path or one of the profiles: {', '.join(sorted(named))}",
        ) from None
    # Parsed and validated once a process per text (15 ms a profile).
    return MappingFile(path.stem, copy.deepcopy(_validated(str(path), text)), path.parent)


def shipped(name: str) -> MappingFile:
    """The shipped profile ``name`` as written, read once a process and not
    checked against the schema (the tests check every shipped profile): what
    registering its adapter reads.  Do not change it; ``load`` it to use it."""
    path = profiles()[name]
    return MappingFile(name, _parsed(str(path), path.read_text("utf-8")), path.parent)


@functools.lru_cache(maxsize=64)
def _parsed(path: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {path} is not valid TOML: {exc}") from None


@functools.lru_cache(maxsize=64)
def _validated(path: str, text: str) -> dict[str, Any]:
    where = f"mapping file {path}"
    data = _parsed(path, text)
    config_mod.validate(
        data,
        jsonschemas.load("mapping"),
        what=f"{where}: key",
        hint="fix the mapping file (docs/adapters.md describes every key)",
    )
    for table, first in data.get("tables", {}).items():
        for spec in (first, *first.get("more", ())):  # every source of the table
            unknown = set(spec.get("fields", {})) - set(TABLES[table])
            if unknown:
                raise ConfigError(
                    f"{where}: key tables.{table}.fields.{sorted(unknown)[0]}: "
                    f"not a column of {table}",
                    hint=f"the columns are: {', '.join(TABLES[table])}",
                )
    return data


# -- templates ----------------------------------------------------------------
def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Fill ``{name}`` placeholders in strings, lists and tables.

    A string that is exactly one placeholder becomes the variable's value with
    its type (a list of ids stays a list); elsewhere values are formatted in.
    A table entry whose value renders to ``None``, or to an empty table when its
    template was not empty (``{options = "{selection}"}`` without a selection), is
    left out.
    """
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole:
            return _variable(whole.group(1), variables)
        return PLACEHOLDER.sub(lambda m: str(_variable(m.group(1), variables)), template)
    if isinstance(template, Mapping):
        out = {k: render(v, variables) for k, v in template.items()}
        return {
            k: v
            for k, v in out.items()
            if v is not None and not (v == {} and isinstance(template[k], Mapping) and template[k])
        }
    if isinstance(template, list):
        return [render(v, variables) for v in template]
    return template


def _variable(name: str, variables: Mapping[str, Any]) -> Any:
    value = get(variables, name, _MISSING)
    if value is _MISSING:
        raise ConfigError(
            f"the mapping uses {{{name}}}, which is not set",
            hint=f"set erp.{name} in crm-bridge.toml, or fix the mapping file",
        )
    return value


def records(answer: Any, path: str) -> list[Any]:
    """The records at ``path`` in an answer: a list, one record, or with a final
    ``*`` the values of a table keyed by name (each gets its key as ``_key``)."""
    if path == "*" or path.endswith(".*"):
        table = get(answer, path[:-2] if path != "*" else "")
        if not isinstance(table, Mapping):
            return []
        return [{**v, "_key": k} if isinstance(v, Mapping) else v for k, v in table.items()]
    found = get(answer, path)
    if isinstance(found, Mapping):
        return [found]
    return list(found or [])


def get(record: Any, path: str, default: Any = None) -> Any:
    """The value at dotted ``path`` (``partner_id.0``, ``links.next``); "" is the record."""
    value = record
    for key in path.split(".") if path else ():
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
        elif isinstance(value, list | tuple) and key.lstrip("-").isdigit():
            value = value[int(key)] if -len(value) <= int(key) < len(value) else _MISSING
        else:
            value = _MISSING
        if value is _MISSING:
            return default
    return value


def name_template(template: str) -> tuple[str, str]:
    """The prefix and suffix around ``{name}`` in an ERP field-name template."""
    prefix, _, suffix = template.partition("{name}")
    return prefix, suffix


def erp_name(template: str, name: str) -> str:
    return template.replace("{name}", name)


def crm_name(template: str, erp: str) -> str | None:
    prefix, suffix = name_template(template)
    if erp.startswith(prefix) and erp.endswith(suffix) and len(erp) > len(prefix) + len(suffix):
        return erp[len(prefix) : len(erp) - len(suffix) or None]
    return None


# -- ERP records -> canonical rows ---------------------------------------------
def coerce(value: Any, dtype: pl.DataType, zone: dt.tzinfo = dt.UTC) -> Any:
    """An ERP value as the canonical column type wants it.

    Handles the quirks the shipped profiles meet: numbers sent as strings
    (Dolibarr), unix timestamps (Dolibarr), ``false`` for "empty" (Odoo), a
    many2one sent as ``[id, name]`` (Odoo), dates with a time part.  A unix
    timestamp read as a date is taken in ``zone``, the ERP's timezone (Dolibarr
    sends a date as the timestamp of its midnight where its PHP runs); as a
    date-time it stays UTC.  A value that still does not fit is passed through:
    the snapshot nulls it and the quarantine sets the record aside with the reason.
    """
    if value is None or value == "" or (value is False and dtype != pl.Boolean):
        return None
    if isinstance(value, list | tuple):
        if not value:
            return None
        value = value[0]
    try:
        if dtype == pl.Date:
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, int | float) and not isinstance(value, bool):
                return dt.datetime.fromtimestamp(value, zone).date()
            if isinstance(value, str):
                return dt.date.fromisoformat(value[:10])
        elif dtype == pl.Datetime:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
            if isinstance(value, str):
                return dt.datetime.fromisoformat(value.replace(" ", "T")[:19])
        elif dtype == pl.Float64:
            return float(value)
        elif dtype == pl.Int64:
            return int(float(value))
        elif dtype == pl.Boolean:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "y", "t")
            return bool(value)
        elif isinstance(value, float) and value.is_integer():
            return str(int(value))
        else:
            return str(value)
    except (ValueError, TypeError, OverflowError, OSError):
        return value
    return value


class RowMapper:
    """Turns ERP records into canonical rows of one table, per a mapping's ``fields``.

    A field spec is a dotted path, or a table with ``path``, ``map`` (ERP value
    -> canonical value), ``default`` (when the ERP gives nothing), ``times``
    (a path to multiply by: line cost = unit cost x quantity) and ``negate_if``
    (a ``{path, value}`` pair: credit notes sent with positive amounts), ``negate``
    (always: a page of credit memos sent with positive amounts), ``when`` (a
    ``{path, value}`` condition on the record: without ``then`` the value is
    taken only when it holds: a paid date only for a paid invoice; with ``then``
    the column is ``then`` when it holds: a cancelled Odoo invoice whatever its
    payment state) and ``via`` (a table read earlier: the value is the id of one
    of its rows, and the row's column of the same name is taken: a line's
    customer from its invoice), ``utc`` (a UTC date-time whose day is taken in the
    ERP's timezone: Odoo's quote date).  Paths starting ``parent.`` read the enclosing
    record of an exploded list.  Unix timestamps read as dates are taken in
    ``zone`` (see :func:`coerce`).
    """

    def __init__(
        self,
        table: str,
        fields: Mapping[str, Any],
        rows_by_id: Mapping[str, Mapping[str, dict[str, Any]]] | None = None,
        zone: dt.tzinfo = dt.UTC,
    ) -> None:
        self.schema = TABLES[table]
        self.zone = zone
        self.rows_by_id = rows_by_id if rows_by_id is not None else {}
        self.specs = [
            (column, spec if isinstance(spec, Mapping) else {"path": spec})
            for column, spec in fields.items()
        ]

    def row(self, record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column, spec in self.specs:
            value = get(record, spec["path"]) if "path" in spec else None
            when = spec.get("when")
            if when and "then" not in when and str(get(record, when["path"])) != str(when["value"]):
                value = None
            if "via" in spec:  # the id of a row read earlier: take its column
                found = self.rows_by_id.get(spec["via"], {}).get(str(coerce(value, pl.String())))
                value = found.get(column) if found else None
            if "map" in spec:
                value = spec["map"].get(
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
            if (value is None or value == "" or value is False) and "default" in spec:
                value = spec["default"]
            if when and "then" in when and str(get(record, when["path"])) == str(when["value"]):
                value = when["then"]
            if spec.get("utc") and isinstance(value, str) and len(value) > 10:
                moment = coerce(value, pl.Datetime())  # a UTC date-time: its day in the zone
                if isinstance(moment, dt.datetime):
                    value = moment.replace(tzinfo=dt.UTC).astimezone(self.zone).date()
            value = coerce(value, self.schema[column], self.zone)
            if value is not None and "times" in spec:
                factor = coerce(get(record, spec["times"]), pl.Float64())
                value = value * factor if isinstance(factor, float) else None
            negate = spec.get("negate_if")
            if isinstance(value, float) and (
                spec.get("negate")
                or (negate and str(get(record, negate["path"])) == str(negate["value"]))
            ):
                value = -abs(value)
            out[column] = value
        return out

    def rows(self, records: Iterable[Any], explode: str | None = None) -> list[dict[str, Any]]:
        if not explode:
            return [self.row(r) for r in records]
        out = []
        for parent in records:
            for child in get(parent, explode) or []:
                out.append(self.row(_Child(child, parent)))
        return out


class _Child(dict[str, Any]):
    """A record of an exploded list that also answers ``parent.<path>``."""

    def __init__(self, child: Any, parent: Any) -> None:
        super().__init__(child if isinstance(child, Mapping) else {"value": child})
        self["parent"] = parent
