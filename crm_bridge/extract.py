"""Extract: read every canonical table, and crm-bridge's current values, from the ERP;
set aside the records that cannot be analysed (see ``quarantine``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from crm_bridge.adapter import Adapter
from crm_bridge.quarantine import quarantine
from crm_bridge.snapshot import TABLES, Snapshot, frame

OnPage = Callable[[str, int], None]


def extract(adapter: Adapter, as_of: dt.date, on_page: OnPage | None = None) -> Snapshot:
    tables: dict[str, Any] = {}
    for table in TABLES:
        rows: list[dict[str, Any]] = []
        for page in adapter.extract(table):
            rows.extend(page)
            if on_page:
                on_page(table, len(page))
        tables[table] = frame(table, rows)
    snapshot = Snapshot(as_of=as_of, **tables)
    snapshot.quarantined = quarantine(snapshot)
    for values in adapter.current_values():
        snapshot.current.update(values)
    return snapshot
