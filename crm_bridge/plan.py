"""Plan: the cells whose desired value differs from what the ERP holds.

The comparison is against the values read back from the ERP, so a value a
person edited by hand is put back (crm-bridge owns its fields) and a value
already right costs nothing.  A null desired value never blanks an existing
one, unless the field is declared ``clear_when_empty``.  Each changed customer
gets its full set of crm-bridge values (fields of disabled plugins kept as
they are); customers with identical sets share one batch, which the adapter
writes in one multi-record call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.adapter import Batch
from crm_bridge.fields import Field, encode
from crm_bridge.validate import Desired


@dataclass(frozen=True)
class Change:
    customer_id: str
    field: str
    old: Any
    new: Any


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    # Cells a person changed in the ERP since crm-bridge last wrote them:
    # (customer, field, value crm-bridge wrote, value found); kept when the
    # field's policy is "keep", overwritten (and listed in changes) otherwise.
    drift: list[tuple[str, str, Any, Any]] = field(default_factory=list)

    @property
    def customers(self) -> int:
        return sum(len(b.customer_ids) for b in self.batches)

    def per_field(self) -> dict[str, int]:
        return dict(sorted(Counter(c.field for c in self.changes).items()))


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: the JSON text compared, after the cheap test that settles
    nearly every cell of a nightly run (equal values of one type)."""
    return (type(a) is type(b) and a == b) or encode(a) == encode(b)


def make_plan(
    desired: Desired,
    current: Mapping[str, Mapping[str, Any]],
    fields: Mapping[str, Field],
    previous: Mapping[str, Mapping[str, Any]] | None = None,
    keep: frozenset[str] = frozenset(),
) -> Plan:
    """``previous``: the values last written (drift is measured against them);
    ``keep``: fields whose hand-edited values are left as the person set them."""
    plan = Plan()
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for cid in sorted(desired):
        now = {
            k: fields[k].normalize(v) if k in fields else v for k, v in current.get(cid, {}).items()
        }
        new = {k: v for k, v in desired[cid].items() if v is not None}
        last = (previous or {}).get(cid, {})
        for k in sorted(set(now) & set(last)):
            if not _same(now[k], last[k]):
                plan.drift.append((cid, k, last[k], now[k]))
                if k in keep:
                    new.pop(k, None)
        cleared = {
            k
            for k, v in desired[cid].items()
            if v is None and k in now and fields[k].clear_when_empty
        }
        changed = [k for k, v in new.items() if k not in now or not _same(v, now[k])]
        if not changed and not cleared:
            continue
        plan.changes.extend(
            Change(cid, k, now.get(k), new.get(k)) for k in sorted([*changed, *cleared])
        )
        full = {k: v for k, v in {**now, **new}.items() if k not in cleared}
        key = "\x1f".join(f"{k}={encode(v)}" for k, v in sorted(full.items()))
        groups.setdefault(key, ([], full))[0].append(cid)
    plan.batches = [Batch(tuple(ids), values) for ids, values in groups.values()]
    return plan


def chunk(batches: list[Batch], size: int) -> list[list[Batch]]:
    """Split batches into write calls of at most ``size`` customers each."""
    calls: list[list[Batch]] = []
    call: list[Batch] = []
    room = size
    for batch in batches:
        ids = batch.customer_ids
        while ids:
            take, ids = ids[:room], ids[room:]
            call.append(Batch(take, batch.values))
            room -= len(take)
            if room == 0:
                calls.append(call)
                call, room = [], size
    if call:
        calls.append(call)
    return calls
