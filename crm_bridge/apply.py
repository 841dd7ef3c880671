"""Apply: write the planned batches through the adapter, call by call.

The value of a cell is recorded as applied only once the ERP has confirmed the
call that carried it, so an interrupted run loses nothing: the next run plans
again against what the ERP holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from crm_bridge.adapter import Adapter
from crm_bridge.errors import ErpError
from crm_bridge.fields import encode
from crm_bridge.plan import Plan, chunk
from crm_bridge.state import StateStore

MIN_SAMPLE = 20


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
    max_error_rate: float = 0.5,
) -> ApplyResult:
    """Write the plan; stop early when the ERP refuses more than ``max_error_rate``
    of the customers sent once at least ``MIN_SAMPLE`` were sent."""
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
        sent = result.written + len(result.rejected)
        if sent >= MIN_SAMPLE and len(result.rejected) > max_error_rate * sent:
            first = next(iter(result.rejected.values()))
            raise ErpError(
                f"stopped after the ERP refused {len(result.rejected)} of the {sent} customers "
                f"sent so far (more than {max_error_rate:.0%}); first reason: {first}",
                hint="check the field definitions (crm-bridge doctor, crm-bridge fields "
                "provision); the refused records are listed by crm-bridge runs show",
            )
    return result
