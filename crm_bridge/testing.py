"""Helpers for testing plugins and the pipeline without an ERP.

For plugin authors: :func:`run_plugin` runs one plugin through the core in
memory (settings checked against its schema with the defaults filled in,
compute, validation against its declared fields, plan) and returns what the
core would write; :func:`customer`, :func:`invoice`, :func:`payment` and
:func:`quote` build the rows of ``Snapshot.from_rows``.

For the core's own tests: ``MemoryAdapter`` implements the adapter contract
over a snapshot held in memory: the pipeline runs unchanged, and tests look at
what was written.  ``AdapterConformance`` is the suite every adapter passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

from crm_bridge import config as config_mod
from crm_bridge.adapter import AdapterSpec, Batch, Capabilities, Check, WriteResult
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
        self.values: dict[str, dict[str, Any]] = {k: dict(v) for k, v in snapshot.current.items()}
        self.provisioned: dict[str, Field] = {}
        self.write_calls: list[list[Batch]] = []

    def check(self, fields: Sequence[Field]) -> list[Check]:
        missing = sorted({f.name for f in fields} - set(self.provisioned))
        return [Check("fields", not missing, f"missing: {missing}" if missing else "ok")]

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]] | pl.DataFrame]:
        yield getattr(self.snapshot, table)

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        yield [(k, dict(v)) for k, v in self.values.items() if v]

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
        held = [cid for cid, values in self.values.items() if name in values]
        for cid in held:
            del self.values[cid][name]
        self.provisioned.pop(name, None)
        return len(held)

    def write(self, batches: Sequence[Batch]) -> WriteResult:
        self.write_calls.append(list(batches))
        result = WriteResult()
        for batch in batches:
            for cid in batch.customer_ids:
                held = self.values.setdefault(cid, {})
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


# -- the adapter conformance suite ----------------------------------------------
CONFORMANCE_FIELDS: tuple[Field, ...] = (
    Field("conf_segment", "selection", "Segment", choices=(("gold", "Gold"), ("iron", "Iron"))),
    Field("conf_score", "integer", "Score", minimum=0, maximum=100),
    Field("conf_spend", "numeric", "Spend", digits=2),
    Field("conf_since", "date", "Since"),
    Field("conf_note", "char", "Note"),
    Field("conf_flag", "boolean", "Flag"),
)


class AdapterConformance:
    """The behaviour every adapter owes the core, as tests.

    Subclass it as ``TestMyAdapter`` in a pytest module and implement
    :meth:`make_adapter` (a fresh adapter on an ERP holding a few customers
    with invoices and lines) and :meth:`foreign` (the values of fields
    crm-bridge does not own, read without the adapter).
    """

    fields: tuple[Field, ...] = CONFORMANCE_FIELDS

    def make_adapter(self) -> Any:
        raise NotImplementedError

    def foreign(self, customer_id: str) -> dict[str, Any]:
        """Values of a few fields crm-bridge does not own, read straight from the ERP."""
        raise NotImplementedError

    # helpers
    def _read(self, adapter: Any) -> dict[str, list[dict[str, Any]]]:
        from crm_bridge.snapshot import TABLES

        return {t: [r for page in adapter.extract(t) for r in page] for t in TABLES}

    def _values(self, adapter: Any) -> dict[str, dict[str, Any]]:
        from crm_bridge.extract import read_back

        raw = {cid: v for page in adapter.current_values() for cid, v in page}
        return read_back(raw, {f.name: f for f in self.fields})

    def _provisioned(self) -> Any:
        adapter = self.make_adapter()
        adapter.provision(self.fields)
        adapter.close()
        return self.make_adapter()

    # the suite
    def test_declares_capabilities(self) -> None:
        adapter = self.make_adapter()
        assert isinstance(adapter.capabilities, Capabilities)
        assert adapter.capabilities.concurrent_writes >= 1

    def test_extracts_canonical_tables(self) -> None:
        from crm_bridge.snapshot import TABLES, frame

        adapter = self.make_adapter()
        tables = self._read(adapter)
        assert tables["customers"], "no customers read"
        assert tables["invoices"] and tables["invoice_lines"], "no invoices or lines read"
        customers = {r["customer_id"] for r in tables["customers"]}
        for table, rows in tables.items():
            key = next(iter(TABLES[table]))
            ids = [r[key] for r in rows]
            assert len(ids) == len(set(ids)), f"{table}: duplicate ids across pages"
            assert all(isinstance(i, str) and i for i in ids), f"{table}: ids must be text"
            built = frame(table, rows)  # every value fits its canonical column
            assert built.height == len(rows)
            for row in rows:
                assert set(row) <= set(TABLES[table]), f"{table}: unknown columns"
            if "customer_id" in TABLES[table] and table != "customers":
                assert {r["customer_id"] for r in rows} <= customers, f"{table}: unknown customer"
        invoices = {r["invoice_id"]: r for r in tables["invoices"]}
        for line in tables["invoice_lines"]:
            assert line["invoice_id"] in invoices
            assert line["customer_id"] == invoices[line["invoice_id"]]["customer_id"]
        assert {r["kind"] for r in tables["invoices"]} <= {"invoice", "credit_note"}
        assert {r["state"] for r in tables["invoices"]} <= {"draft", "posted", "paid", "cancelled"}

    def test_incremental_reads_what_changed_since(self) -> None:
        tables = self.make_adapter().capabilities.incremental
        adapter = self.make_adapter()
        for table in tables:
            everything = [r for page in adapter.extract(table) for r in page]
            since_epoch = [
                r for page in adapter.extract(table, dt.datetime(1971, 1, 1)) for r in page
            ]
            assert since_epoch == everything, f"{table}: since 1971 must read every row"
            later = dt.datetime(2999, 1, 1)
            assert [r for page in adapter.extract(table, later) for r in page] == []

    def test_provision_is_idempotent_and_checked(self) -> None:
        adapter = self.make_adapter()
        if not adapter.capabilities.provisioning:
            from crm_bridge.errors import ErpError

            checks = {c.name: c for c in adapter.check(self.fields)}
            try:
                adapter.provision(self.fields)
            except ErpError as exc:  # an admin adds the fields: the message lists them
                assert all(f.name in str(exc) or "fields" in checks for f in self.fields)
            return
        first = adapter.provision(self.fields)
        assert sorted(first) == sorted(f"created {f.name}" for f in self.fields)
        assert self.make_adapter().provision(self.fields) == []
        checks = {c.name: c for c in self.make_adapter().check(self.fields)}
        assert checks["fields"].ok, checks["fields"]

    def test_writes_and_reads_back_only_its_fields(self) -> None:
        adapter = self._provisioned()
        customers = [r["customer_id"] for r in self._read(adapter)["customers"]][:3]
        before = {cid: self.foreign(cid) for cid in customers}
        gold = {
            "conf_segment": "gold",
            "conf_score": 87,
            "conf_spend": Decimal("1234.50"),
            "conf_since": dt.date(2024, 2, 29),
            "conf_note": "Gold: spend 1,234.50 ≥ 1,000",
            "conf_flag": True,
        }
        iron = {**gold, "conf_segment": "iron", "conf_score": 3, "conf_flag": False}
        result = adapter.write([Batch(tuple(customers[:2]), gold), Batch((customers[2],), iron)])
        assert sorted(result.written) == sorted(customers) and not result.rejected
        back = self._values(self.make_adapter())
        assert back[customers[0]] == gold and back[customers[1]] == gold
        assert back[customers[2]] == iron
        assert {cid: self.foreign(cid) for cid in customers} == before

    def test_writes_change_only_the_keys_sent(self) -> None:
        adapter = self._provisioned()
        customers = [r["customer_id"] for r in self._read(adapter)["customers"]][:2]
        first = {"conf_score": 7, "conf_note": "keep me", "conf_segment": "gold"}
        assert sorted(adapter.write([Batch(tuple(customers), first)]).written) == sorted(customers)
        # One key changed, one cleared (None); the third is not sent and stays.
        change = Batch((customers[0],), {"conf_score": 8, "conf_note": None})
        result = self.make_adapter().write([change])
        assert result.written == [customers[0]] and not result.rejected
        back = self._values(self.make_adapter())
        keys = sorted(first)  # (an ERP may read a boolean never written as false)
        assert {k: back[customers[0]].get(k) for k in keys} == {
            "conf_note": None,
            "conf_score": 8,
            "conf_segment": "gold",
        }
        assert {k: back[customers[1]].get(k) for k in keys} == first

    def test_a_write_checks_the_values_it_expects_where_it_can(self) -> None:
        adapter = self._provisioned()
        (cid,) = [r["customer_id"] for r in self._read(adapter)["customers"]][:1]
        adapter.write([Batch((cid,), {"conf_score": 5, "conf_segment": "iron"})])
        # The plan saw 4 and gold, but the ERP holds 5 and iron (edited since).
        stale = Batch((cid,), {"conf_score": 6, "conf_segment": "gold"}, {"conf_score": 4})
        result = self.make_adapter().write([stale])
        back = self._values(self.make_adapter())[cid]
        assert back["conf_segment"] == "gold"  # no expectation: written
        if adapter.capabilities.conditional_writes:
            assert result.conflicts == {cid: {"conf_score": 5}}
            assert back["conf_score"] == 5  # left as found
            # A key that already holds its new value is settled: no conflict.
            again = self.make_adapter().write(
                [Batch((cid,), {"conf_segment": "gold"}, {"conf_segment": "iron"})]
            )
            assert again.written == [cid] and not again.conflicts
        else:  # documented: this ERP cannot check, the write wins
            assert not result.conflicts and back["conf_score"] == 6

    def test_refused_record_is_reported_and_the_rest_written(self) -> None:
        adapter = self._provisioned()
        customers = [r["customer_id"] for r in self._read(adapter)["customers"]][:2]
        ghost = "999999"
        values = {"conf_score": 5}
        result = adapter.write([Batch((customers[0], ghost, customers[1]), values)])
        assert sorted(result.written) == sorted(customers)
        assert list(result.rejected) == [ghost] and result.rejected[ghost]
        back = self._values(self.make_adapter())
        assert all(back[c]["conf_score"] == 5 for c in customers)

    def test_retire_clears_a_field(self) -> None:
        adapter = self._provisioned()
        customers = [r["customer_id"] for r in self._read(adapter)["customers"]][:2]
        adapter.write([Batch(tuple(customers), {"conf_note": "x", "conf_score": 1})])
        assert self.make_adapter().retire("conf_note") == 2
        back = self._values(self.make_adapter())
        assert all("conf_note" not in back.get(c, {}) for c in customers)
        assert all(back[c]["conf_score"] == 1 for c in customers)
