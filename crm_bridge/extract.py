"""Extract: read every canonical table, and crm-bridge's current values, from the ERP;
set aside the records that cannot be analysed (see ``quarantine``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from crm_bridge.adapter import Adapter
from crm_bridge.fields import Field
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


def read_back(
    current: dict[str, dict[str, Any]], fields: Mapping[str, Field]
) -> dict[str, dict[str, Any]]:
    """The values read back from the ERP as their fields' types; empty ones dropped.

    Keys of fields no enabled plugin declares are kept as they are (a disabled
    plugin's values are carried along, never touched).
    """
    out: dict[str, dict[str, Any]] = {}
    for cid, values in current.items():
        parsed = {}
        for name, raw in values.items():
            value = fields[name].parse(raw) if name in fields else raw
            if value is not None:
                parsed[name] = value
        if parsed:
            out[cid] = parsed
    return out
