"""Apply: journal the planned write calls, then send them one by one (the next one
goes out while the previous answer is being recorded).

Before the first write every call (its batches and the cells it carries) is
journaled in the state store.  A call is marked confirmed, and its cells
recorded as applied, in one transaction once the ERP has answered it.  After a
crash, ``resume`` resends the unconfirmed calls before anything new is
planned; confirmed calls are never resent.  A write changes only the keys that
change and carries the values the plan saw, so a resend is checked the same way
as the first send: a key the ERP already holds at its new value is settled, a
key a person edited in between is left as found and reported.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.adapter import Adapter, Batch, WriteResult
from crm_bridge.errors import ErpError
from crm_bridge.fields import decode, encode
from crm_bridge.plan import Plan, chunk
from crm_bridge.state import StateStore

MIN_SAMPLE = 20
# Test only: a deterministic crash point for the kill tests (tests/test_sync_engine.py).
# With n set, the process SIGKILLs itself right after the ERP answered the n-th write
# call, before that answer is recorded and before the next call goes out (0: once the
# plan is journaled, before any call; -1: after the last call, -2: the one before...).
KILL_ENV = "CRM_BRIDGE_TEST_KILL_AFTER_CALL"
Cell = tuple[str, str, str, str]  # customer, field, old, new (canonical JSON)


@dataclass
class ApplyResult:
    written: int = 0
    calls: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    # customer -> field -> value found: keys left alone because they were edited
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what the ERP holds after each call, per cell (customer, field, old, new as
    # canonical JSON): the confirmed writes, and the values found in conflict
    cells: list[Cell] = field(default_factory=list)


def _cells(plan: Plan) -> dict[str, list[Cell]]:
    by_customer: dict[str, list[Cell]] = {}
    for change in plan.changes:
        by_customer.setdefault(change.customer_id, []).append(
            (change.customer_id, change.field, encode(change.old), encode(change.new))
        )
    return by_customer


def _record(
    state: StateStore,
    run_id: int,
    answer: WriteResult,
    cells: Mapping[str, list[Cell]],
    journal: tuple[int, int],
    result: ApplyResult,
    rest: tuple[str, str] | None = None,
) -> None:
    """Count the ERP's answer and mark the call confirmed with its cells applied
    (but for the keys the ERP reported in conflict).  ``rest``: the call failed
    part-way; the journal keeps it unconfirmed with only these (batches, cells)."""
    result.calls += rest is None
    result.written += len(answer.written)
    result.rejected.update(answer.rejected)
    for cid, found in answer.conflicts.items():
        result.conflicts.setdefault(cid, {}).update(found)
    applied, conflicts = [], []
    for cid in answer.written:
        found = answer.conflicts.get(cid, {})
        for cell in cells.get(cid, []):
            if cell[1] in found:
                conflicts.append((*cell, encode(found[cell[1]])))
            else:
                applied.append(cell)
    state.record_applied(applied, run_id, answer.rejected, journal, conflicts, rest)
    result.cells.extend(applied)
    result.cells.extend((cid, name, old, found) for cid, name, old, _, found in conflicts)


def _entry(call: list[Batch], cells: Mapping[str, list[Cell]]) -> tuple[str, str]:
    """A call as the journal keeps it: its batches and its cells, as JSON."""
    return (
        json.dumps(
            [
                [
                    b.customer_ids,
                    {k: encode(v) for k, v in b.values.items()},
                    {k: encode(v) for k, v in b.expected.items()},
                ]
                for b in call
            ]
        ),
        json.dumps([c for b in call for cid in b.customer_ids for c in cells[cid]]),
    )


def _answer(
    sent: Callable[[], WriteResult],
    state: StateStore,
    run_id: int,
    call: list[Batch],
    cells: Mapping[str, list[Cell]],
    journal: tuple[int, int],
    result: ApplyResult,
) -> WriteResult:
    """The ERP's answer to a call; if it failed part-way, what it confirmed is
    recorded and the journal narrowed to the rest before the error goes on."""
    try:
        return sent()
    except ErpError as exc:
        done = exc.partial
        if done is not None and (done.written or done.rejected):
            settled = {*done.written, *done.rejected}
            rest = [
                Batch(ids, b.values, b.expected)
                for b in call
                if (ids := tuple(c for c in b.customer_ids if c not in settled))
            ]
            _record(state, run_id, done, cells, journal, result, _entry(rest, cells))
        raise


def _send(
    adapter: Adapter,
    state: StateStore,
    run_id: int,
    call: list[Batch],
    cells: Mapping[str, list[Cell]],
    journal: tuple[int, int],
    result: ApplyResult,
) -> None:
    answer = _answer(lambda: adapter.write(call), state, run_id, call, cells, journal, result)
    _record(state, run_id, answer, cells, journal, result)


def resume(adapter: Adapter, state: StateStore, run_id: int) -> ApplyResult:
    """Resend the calls an interrupted run journaled but the ERP never confirmed."""
    result = ApplyResult()
    for old_run, call_no, batches_json, cells_json in state.pending_calls():
        call = [
            Batch(
                tuple(ids),
                {k: decode(v) for k, v in values.items()},
                {k: decode(v) for k, v in (expected[0] if expected else {}).items()},
            )
            for ids, values, *expected in json.loads(batches_json)
        ]
        cells: dict[str, list[Cell]] = {}
        for cid, name, old, new in json.loads(cells_json):
            cells.setdefault(cid, []).append((cid, name, old, new))
        _send(adapter, state, run_id, call, cells, (old_run, call_no), result)
    return result


def _kill_point(calls: int) -> int | None:
    """The answered call after which to die (``KILL_ENV``), or None."""
    raw = os.environ.get(KILL_ENV)
    if not raw:
        return None
    n = int(raw)
    return n if n >= 0 else calls + 1 + n


def _die_at(point: int | None, answered: int) -> None:
    if point == answered:
        os.kill(os.getpid(), signal.SIGKILL)


def apply(
    plan: Plan,
    adapter: Adapter,
    state: StateStore,
    run_id: int,
    batch_size: int,
    on_call: Callable[[int], None] | None = None,
    max_error_rate: float = 0.5,
    result: ApplyResult | None = None,
) -> ApplyResult:
    """Journal the write calls, then send them one by one; stop early when the ERP
    refuses more than ``max_error_rate`` of the customers sent (after ``MIN_SAMPLE``).
    ``result`` is filled as calls are confirmed, so a caller sees them if it fails."""
    result = result if result is not None else ApplyResult()
    cells = _cells(plan)
    calls = chunk(plan.batches, batch_size)
    state.journal_plan(run_id, (_entry(call, cells) for call in calls))
    kill = _kill_point(len(calls))
    _die_at(kill, 0)
    # One call in flight while the previous answer is recorded: the ERP never waits
    # for the state store.  Calls still go one at a time, in order; a call the ERP
    # confirmed but the store did not record yet is resent by ``resume`` after a crash.
    with ThreadPoolExecutor(1, thread_name_prefix="crm-bridge-write") as sender:
        pending: Future[WriteResult] | None = (
            sender.submit(adapter.write, calls[0]) if calls else None
        )
        for no, call in enumerate(calls):
            assert pending is not None
            answer = _answer(pending.result, state, run_id, call, cells, (run_id, no), result)
            _die_at(kill, no + 1)
            pending = sender.submit(adapter.write, calls[no + 1]) if no + 1 < len(calls) else None
            _record(state, run_id, answer, cells, (run_id, no), result)
            if on_call:
                on_call(sum(len(b.customer_ids) for b in call))
            sent = result.written + len(result.rejected)
            if sent >= MIN_SAMPLE and len(result.rejected) > max_error_rate * sent:
                if pending is not None:  # let the call in flight land, and record it
                    late = (run_id, no + 1)
                    landed = _answer(
                        pending.result, state, run_id, calls[no + 1], cells, late, result
                    )
                    _record(state, run_id, landed, cells, late, result)
                first = next(iter(result.rejected.values()))
                raise ErpError(
                    f"stopped after the ERP refused {len(result.rejected)} of the "
                    f"{result.written + len(result.rejected)} customers sent so far (more than "
                    f"{max_error_rate:.0%}); first reason: {first}",
                    hint="check the field definitions (crm-bridge doctor, crm-bridge fields "
                    "provision); the refused records are listed by crm-bridge runs show",
                )
    return result
