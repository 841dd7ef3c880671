"""Plan: the cells whose desired value differs from what the ERP holds.

The comparison is against the values read back from the ERP, so a value a
person edited by hand is put back (crm-bridge owns its fields) and a value
already right costs nothing.  When a plugin ran and has no value for a
customer, the value the ERP holds no longer applies and is cleared (unless the
field is declared ``keep_last_value``); the fields of a plugin that did not run
or was rejected are left as they are.  A number that moved less than its
field's tolerance is not a change (``held_back``).

A write carries only the keys that change, each with the value the plan saw
(``Batch.expected``), so an adapter that can writes a key only where it still
holds that value; customers whose changes are the same share one batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
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
    # (customer, field, value crm-bridge wrote, value found: None if emptied);
    # kept when the field's policy is "keep", overwritten (and listed in
    # changes) otherwise.  Only values read back this run are compared.
    drift: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    # Cells that moved less than their field's tolerance: not worth a write.
    held_back: int = 0

    @property
    def customers(self) -> int:
        return sum(len(b.customer_ids) for b in self.batches)

    @property
    def cleared(self) -> int:
        return sum(c.new is None for c in self.changes)

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
    ran: Collection[str] = frozenset(),
    customers: Collection[str] | None = None,
    reread: Collection[str] | None = None,
) -> Plan:
    """``previous``: the values last written (drift is measured against them);
    ``keep``: fields whose hand-edited values are left as the person set them;
    ``ran``: the fields of the plugins whose output was accepted this run (a
    customer without a value for one has none: its ERP value is cleared);
    ``customers``: the customers read this run (only theirs are cleared; default
    every customer in ``current``); ``reread``: the customers whose values were
    read back from the ERP this run (default all): drift is claimed only there."""
    plan = Plan()
    previous = previous or {}
    ran = frozenset(ran)
    clearable = ran - {k for k in ran if k in fields and fields[k].keep_last_value}
    candidates = set(desired)
    if clearable:
        known = current.keys() if customers is None else customers
        candidates.update(c for c in known if c in current and not clearable.isdisjoint(current[c]))
    groups: dict[str, tuple[list[str], dict[str, Any], dict[str, Any]]] = {}
    for cid in sorted(candidates):
        now = {
            k: fields[k].normalize(v) if k in fields else v for k, v in current.get(cid, {}).items()
        }
        wanted = desired.get(cid, {})
        kept: set[str] = set()
        last = previous.get(cid)
        if last and (reread is None or cid in reread):
            for k, was in sorted(last.items()):
                if k in fields and not _same(now.get(k), was):
                    plan.drift.append((cid, k, was, now.get(k)))
                    if k in keep:
                        kept.add(k)
        values: dict[str, Any] = {}
        for k in sorted((wanted.keys() | (clearable & now.keys())) - kept):
            new = wanted.get(k)
            if new is None:
                if k in now and not fields[k].keep_last_value:
                    values[k] = None
            elif k not in now or not _same(new, now[k]):
                if k in now and fields[k].within_tolerance(new, now[k]):
                    plan.held_back += 1
                else:
                    values[k] = new
        if not values:
            continue
        expected = {k: now.get(k) for k in values}
        plan.changes.extend(Change(cid, k, expected[k], v) for k, v in values.items())
        key = "\x1f".join(f"{k}={encode(v)}/{encode(expected[k])}" for k, v in values.items())
        groups.setdefault(key, ([], values, expected))[0].append(cid)
    plan.batches = [
        Batch(tuple(ids), values, expected) for ids, values, expected in groups.values()
    ]
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
            call.append(Batch(take, batch.values, batch.expected))
            room -= len(take)
            if room == 0:
                calls.append(call)
                call, room = [], size
    if call:
        calls.append(call)
    return calls
