"""Apply: write the planned batches through the adapter, call by call.

The value of a cell is recorded as applied only once the ERP has confirmed the
call that carried it, so an interrupted run loses nothing: the next run plans
again against what the ERP holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from crm_bridge.adapter import Adapter
from crm_bridge.fields import encode
from crm_bridge.plan import Plan, chunk
from crm_bridge.state import StateStore


@dataclass
class ApplyResult:
    written: int = 0
    calls: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


def apply(
    plan: Plan,
    adapter: Adapter,
    state: StateStore,
    run_id: int,
    batch_size: int,
    on_call: Callable[[int], None] | None = None,
) -> ApplyResult:
    result = ApplyResult()
    by_customer: dict[str, list[tuple[str, str, str, str]]] = {}
    for change in plan.changes:
        by_customer.setdefault(change.customer_id, []).append(
            (change.customer_id, change.field, encode(change.old), encode(change.new))
        )
    for call in chunk(plan.batches, batch_size):
        answer = adapter.write(call)
        result.calls += 1
        result.written += len(answer.written)
        result.rejected.update(answer.rejected)
        state.record_applied(
            (cell for cid in answer.written for cell in by_customer.get(cid, [])),
            run_id,
            answer.rejected,
        )
        if on_call:
            on_call(sum(len(b.customer_ids) for b in call))
    return result
