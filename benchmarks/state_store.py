"""The state store's size and recording time, on its own (no ERP, no plugins).

A run is recorded as ``apply`` records it: the write calls journaled before the
first write, then, per call the ERP confirmed, its cells as applied values and
in the audit trail with the journal entry confirmed (``StateStore.record_applied``).

- first run: every cell of every customer new (``--fields`` a customer);
- unchanged re-run: nothing written, only the run record;
- a re-run where 1 % of the customers changed 3 fields;
- reading the last applied values back (what the next plan compares with).

    python benchmarks/state_store.py [--customers 100000] [--fields 33]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from crm_bridge.adapter import Batch
from crm_bridge.apply import _entry
from crm_bridge.fields import encode
from crm_bridge.plan import chunk
from crm_bridge.state import StateStore

BATCH = 500


def value(customer: int, field: int, run: int) -> object:
    """A value of one of the four kinds plugins write, different per run."""
    kind = field % 4
    if kind == 0:
        return Decimal(customer * 7 + field + run) / 100
    if kind == 1:
        return ("Champions", "Loyal", "At risk", "Hibernating")[(customer + run) % 4]
    if kind == 2:
        return (customer + field + run) % 5 + 1
    return dt.date(2026, 1, 1) + dt.timedelta(days=(customer + run) % 365)


def record(
    store: StateStore, changed: dict[str, dict[str, tuple[object, object]]]
) -> tuple[float, float]:
    """Record one run that wrote ``changed`` ({customer: {field: (old, new)}}), as
    ``apply`` does; returns the seconds in all (the cells and journal entries made
    as ``apply`` makes them included) and the seconds in the store's calls."""
    started = time.perf_counter()
    run_id = store.start_run(dry_run=False)
    cells = {
        cid: [(cid, f, encode(old), encode(new)) for f, (old, new) in row.items()]
        for cid, row in changed.items()
    }
    batches = [
        Batch((cid,), {f: new for f, (_, new) in row.items()}) for cid, row in changed.items()
    ]
    calls = chunk(batches, BATCH)
    entries = [_entry(call, cells) for call in calls]
    confirmed = [[c for b in call for cid in b.customer_ids for c in cells[cid]] for call in calls]
    in_store = time.perf_counter()
    store.journal_plan(run_id, entries)
    for no, rows in enumerate(confirmed):
        store.record_applied(rows, run_id, {}, (run_id, no), [], None)
    store.finish_run(run_id, "ok", {"written_cells": sum(len(r) for r in changed.values())})
    ended = time.perf_counter()
    return ended - started, ended - in_store


def size(path: Path) -> int:
    """Bytes on disk once the write-ahead log is folded in."""
    store = StateStore(path)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path.stat().st_size


def rows(path: Path) -> tuple[int, int]:
    """Rows of last applied values (either layout) and of the audit trail."""
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        table = "applied_values" if "applied_values" in tables else "applied"
        applied = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return applied, db.execute("SELECT count(*) FROM changes").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=33)
    args = parser.parse_args()
    n, width = args.customers, args.fields
    names = [f"crm_field_{i:02d}" for i in range(width)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        store = StateStore(path)
        first = {
            str(c): {name: (None, value(c, i, 0)) for i, name in enumerate(names)} for c in range(n)
        }
        first_seconds = record(store, first)
        del first
        first_size, first_rows = size(path), rows(path)
        same_seconds = record(store, {})
        same_size, same_rows = size(path), rows(path)
        step = 100
        changed = {
            str(c): {name: (value(c, i, 0), value(c, i, 1)) for i, name in enumerate(names[:3])}
            for c in range(0, n, step)
        }
        changed_seconds = record(store, changed)
        changed_size, changed_rows = size(path), rows(path)
        started = time.perf_counter()
        applied = store.applied()
        read_seconds = time.perf_counter() - started
        assert len(applied) == n, len(applied)
        store.close()
    cells = n * width
    print(f"{n:,} customers x {width} fields = {cells:,} cells, {BATCH} customers a call")
    print("| run | recording (in the store) | state DB size | growth | applied rows | audit rows |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| first run, every cell new | {first_seconds[0]:.2f} s ({first_seconds[1]:.2f} s) "
        f"| {first_size / 1e6:.1f} MB | "
        f"| {first_rows[0]:,} | {first_rows[1]:,} |"
    )
    print(
        f"| unchanged re-run | {same_seconds[0] * 1000:.1f} ms ({same_seconds[1] * 1000:.1f} ms) "
        f"| {same_size / 1e6:.1f} MB "
        f"| {same_size - first_size:,} B | {same_rows[0]:,} | {same_rows[1]:,} |"
    )
    print(
        f"| 1 % changed, 3 fields ({len(changed) * 3:,} cells) | {changed_seconds[0]:.2f} s "
        f"({changed_seconds[1]:.2f} s) "
        f"| {changed_size / 1e6:.1f} MB | {changed_size - same_size:,} B "
        f"| {changed_rows[0]:,} | {changed_rows[1]:,} |"
    )
    print(f"read the applied values back: {read_seconds:.2f} s")
    print(f"bytes a cell after the first run: {first_size / cells:.1f}")


if __name__ == "__main__":
    main()
