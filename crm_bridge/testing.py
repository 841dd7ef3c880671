"""Helpers for testing plugins and the pipeline without an ERP.

For plugin authors: :func:`run_plugin` runs one plugin through the core in
memory (settings checked against its schema with the defaults filled in,
compute, validation against its declared fields, plan) and returns what the
core would write; :func:`customer`, :func:`invoice`, :func:`payment` and
:func:`quote` build the rows of ``Snapshot.from_rows``.

For the core's own tests: ``MemoryAdapter`` implements the adapter contract
over a snapshot held in memory: the pipeline runs unchanged, and tests look at
what was written.  ``AdapterConformance`` (from :mod:`crm_bridge.conformance`)
is the suite every adapter passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from crm_bridge import config as config_mod
from crm_bridge.adapter import AdapterSpec, Batch, Capabilities, Check, WriteResult
from crm_bridge.conformance import CONFORMANCE_FIELDS, AdapterConformance
from crm_bridge.fields import Field
from crm_bridge.hookspecs import hookimpl
from crm_bridge.plan import Plan
from crm_bridge.snapshot import Snapshot
from crm_bridge.validate import Rejection


class MemoryAdapter:
    """An ERP in memory: the snapshot's tables, and crm-bridge's values per customer,
    changed key by key where they still hold the values expected."""

    capabilities = Capabilities(multi_record_write=True, conditional_writes=True)

    def __init__(self, snapshot: Snapshot, require_provisioning: bool = False) -> None:
        """``require_provisioning``: fields must be provisioned before they are
        written, as in a real ERP (else any declared field is accepted)."""
        self.snapshot = snapshot
        self.require_provisioning = require_provisioning
        # {customer: {field: value}}, or a frame (``customer_id`` and a column per
        # field): the adapter then answers ``current_values`` in columns.
        self.values: dict[str, dict[str, Any]] | pl.DataFrame = {
            k: dict(v) for k, v in snapshot.current.items()
        }
        self.provisioned: dict[str, Field] = {}
        self.write_calls: list[list[Batch]] = []

    def check(self, fields: Sequence[Field]) -> list[Check]:
        missing = sorted({f.name for f in fields} - set(self.provisioned))
        return [Check("fields", not missing, f"missing: {missing}" if missing else "ok")]

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]] | pl.DataFrame]:
        yield getattr(self.snapshot, table)

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]] | pl.DataFrame]:
        if isinstance(self.values, pl.DataFrame):  # an ERP answering in columns
            yield from self.values.iter_slices(100_000)
            return
        yield [(k, dict(v)) for k, v in self.values.items() if v]

    def _rows(self) -> dict[str, dict[str, Any]]:
        """``values`` as rows (given as a frame: ``customer_id`` and a column per field)."""
        if isinstance(self.values, pl.DataFrame):
            self.values = {
                str(row.pop("customer_id")): {k: v for k, v in row.items() if v is not None}
                for row in self.values.iter_rows(named=True)
            }
        return self.values

    def provision(self, fields: Sequence[Field]) -> list[str]:
        changed = [f.name for f in fields if self.provisioned.get(f.name) != f]
        self.provisioned.update({f.name: f for f in fields})
        return changed

    def field_status(self, fields: Sequence[Field]) -> dict[str, str]:
        if not self.require_provisioning:
            return {}
        return {
            f.name: "missing" if f.name not in self.provisioned else "changed"
            for f in fields
            if self.provisioned.get(f.name) != f
        }

    def retire(self, name: str) -> int:
        rows = self._rows()
        held = [cid for cid, values in rows.items() if name in values]
        for cid in held:
            del rows[cid][name]
        self.provisioned.pop(name, None)
        return len(held)

    def write(self, batches: Sequence[Batch]) -> WriteResult:
        self.write_calls.append(list(batches))
        result = WriteResult()
        rows = self._rows()
        for batch in batches:
            for cid in batch.customer_ids:
                held = rows.setdefault(cid, {})
                for key, new in batch.values.items():
                    found = held.get(key)
                    if found == new:
                        continue
                    if key in batch.expected and found != batch.expected[key]:
                        result.conflicts.setdefault(cid, {})[key] = found
                    elif new is None:
                        del held[key]
                    else:
                        held[key] = new
                result.written.append(cid)
        return result

    def close(self) -> None:
        pass


class MemoryAdapterPlugin:
    """Register with ``plugins.register(MemoryAdapterPlugin(adapter), "memory")``
    and set ``[erp] adapter = "memory"``."""

    def __init__(self, adapter: MemoryAdapter) -> None:
        self.adapter = adapter

    @hookimpl
    def register_adapters(self, register: Any) -> None:
        def factory(settings: Mapping[str, Any]) -> MemoryAdapter:
            return self.adapter

        register(AdapterSpec("memory", factory, {"type": "object"}, "in-memory test adapter"))


@dataclass
class PluginRun:
    """What :func:`run_plugin` found.

    ``values``: {customer: {field: value}} as the core would write them
    (normalised: numerics as ``Decimal`` rounded to the field's digits, dates as
    ``datetime.date``); empty when the plugin was rejected.  ``rejections``: why
    the core refused the plugin's output (each with plugin, reason, field and
    example).  ``warnings``: what the core would warn about (a declared field
    with no column in the output).  ``plan``: the cells that would change
    against ``snapshot.current``.  ``settings``: the settings compute received,
    with the schema's defaults.  ``frame``: the plugin's output as returned.
    """

    values: dict[str, dict[str, Any]]
    rejections: list[Rejection]
    warnings: list[str]
    plan: Plan
    settings: dict[str, Any]
    fields: dict[str, Field] = field(default_factory=dict)
    frame: pl.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return not self.rejections

    def column(self, name: str) -> dict[str, Any]:
        """{customer: value} of one field, customers without a value left out."""
        return {c: v[name] for c, v in self.values.items() if v.get(name) is not None}


def run_plugin(
    plugin: Any,
    snapshot: Snapshot,
    settings: Mapping[str, Any] | None = None,
    name: str = "plugin",
) -> PluginRun:
    """Run ``plugin`` (a module or object with hook implementations) through the
    core on ``snapshot``, in memory, as ``sync --dry-run`` would.

    ``settings`` is the plugin's ``[plugins.NAME]`` table: it is checked against
    the plugin's ``config_schema`` (a bad one raises
    :class:`crm_bridge.errors.ConfigError` naming the key) and the schema's
    defaults are filled in.  Returns a :class:`PluginRun`.
    """
    from crm_bridge.compute import compute
    from crm_bridge.plan import make_plan
    from crm_bridge.plugin_manager import Plugins
    from crm_bridge.sync import _ran
    from crm_bridge.validate import missing_columns, validate

    plugins = Plugins()
    plugins.register(plugin, name)
    schema = plugins.config_schemas().get(name)
    given = dict(settings or {})
    if schema is not None:
        config_mod.validate(given, schema, prefix=("plugins", name))
    effective = config_mod.with_defaults(given, schema)
    fields = plugins.fields()
    outputs = compute(plugins, snapshot, lambda _name: effective)
    customers = snapshot.customers["customer_id"]
    desired, rejections = validate(outputs, fields, customers)
    missing = missing_columns(outputs, fields, rejections)
    notes = [
        f"plugin {p!r} returned no column for its declared field(s) {', '.join(names)}: "
        "left as the ERP holds them"
        for p, names in missing.items()
    ]
    plan = make_plan(
        desired,
        snapshot.current,
        fields,
        snapshot.previous,
        ran=_ran(outputs, rejections),
        customers=customers,
    )
    values = desired.rows(fields)
    frame = outputs[0].frame if outputs else None
    return PluginRun(values, rejections, notes, plan, effective, fields, frame)


def customer(
    customer_id: str, name: str | None = None, active: bool = True, **extra: Any
) -> dict[str, Any]:
    """A canonical customer row: ``customer_id``, ``name`` (default: the id),
    ``active``; optional ``code``, ``industry``, ``created_at`` (ISO text)."""
    return {"customer_id": customer_id, "name": name or customer_id, "active": active, **extra}


def payment(
    payment_id: str,
    customer_id: str,
    date: dt.date,
    amount: float,
    invoice_id: str | None = None,
) -> dict[str, Any]:
    """A canonical payment row: a payment received on ``date`` (for ``invoice_id``
    when given)."""
    return {
        "payment_id": payment_id,
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "date": date,
        "amount": amount,
    }


def quote(
    order_id: str,
    customer_id: str,
    date: dt.date,
    amount: float,
    state: str = "quotation",
) -> dict[str, Any]:
    """A canonical sale order row (``sale_orders``): an open quote by default;
    ``state`` is one of draft, quotation (open quote), confirmed (accepted),
    cancelled (refused)."""
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "date": date,
        "state": state,
        "amount": amount,
    }


def invoice(
    invoice_id: str,
    customer_id: str,
    date: dt.date,
    amount: float,
    kind: str = "invoice",
    state: str | None = None,
    *,
    paid: dt.date | None = None,
    due: dt.date | None = None,
) -> dict[str, Any]:
    """A canonical invoice row for ``Snapshot.from_rows``: posted, or paid when
    ``paid`` is given, due 30 days after its date unless ``due`` says otherwise.

    ``kind``: invoice or credit_note (give a credit note a negative amount);
    ``state``: draft, posted, paid or cancelled; the currency is EUR."""
    return {
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "kind": kind,
        "state": state or ("paid" if paid else "posted"),
        "date": date,
        "currency": "EUR",
        "amount": amount,
        "due_date": due or date + dt.timedelta(days=30),
        "paid_date": paid,
    }


__all__ = [
    "CONFORMANCE_FIELDS",
    "AdapterConformance",
    "MemoryAdapter",
    "MemoryAdapterPlugin",
    "PluginRun",
    "customer",
    "invoice",
    "payment",
    "quote",
    "run_plugin",
]
