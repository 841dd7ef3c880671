"""Helpers for testing plugins and the pipeline without an ERP.

``MemoryAdapter`` implements the adapter contract over a snapshot held in
memory: the pipeline runs unchanged, and tests look at what was written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crm_bridge.adapter import AdapterSpec, Batch, Check, WriteResult
from crm_bridge.fields import Field
from crm_bridge.hookspecs import hookimpl
from crm_bridge.snapshot import Snapshot


class MemoryAdapter:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.values: dict[str, dict[str, Any]] = {k: dict(v) for k, v in snapshot.current.items()}
        self.provisioned: dict[str, Field] = {}
        self.write_calls: list[list[Batch]] = []

    def check(self, fields: Sequence[Field]) -> list[Check]:
        missing = sorted({f.name for f in fields} - set(self.provisioned))
        return [Check("fields", not missing, f"missing: {missing}" if missing else "ok")]

    def extract(self, table: str) -> Iterator[list[dict[str, Any]]]:
        yield getattr(self.snapshot, table).to_dicts()

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        yield [(k, dict(v)) for k, v in self.values.items() if v]

    def provision(self, fields: Sequence[Field]) -> list[str]:
        changed = [f.name for f in fields if self.provisioned.get(f.name) != f]
        self.provisioned.update({f.name: f for f in fields})
        return changed

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
                self.values[cid] = dict(batch.values)
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
    ``paid`` is given, due 30 days after its date unless ``due`` says otherwise."""
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
