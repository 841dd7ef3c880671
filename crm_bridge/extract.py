"""Extract: read every canonical table, and crm-bridge's current values, from the ERP;
set aside the records that cannot be analysed or cannot be true (see ``quarantine``
and ``plausibility``).

With the previous run's tables (``crm_bridge.table_cache``), the tables the adapter
reads incrementally are asked only for what changed since their watermark and
merged in; every other table is read in full.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import polars as pl

from crm_bridge import columns
from crm_bridge.adapter import Adapter
from crm_bridge.columns import Values
from crm_bridge.fields import Field
from crm_bridge.plausibility import Plausibility
from crm_bridge.quarantine import UNREADABLE, quarantine
from crm_bridge.snapshot import TABLES, Snapshot, frame, of_frame
from crm_bridge.table_cache import PARENTS, Cached, merge, utc_now, watermark

OnPage = Callable[[str, int], None]
_OWN: dict[str, type] = {"numeric": Decimal, "integer": int, "boolean": bool, "date": dt.date}


def extract(
    adapter: Adapter,
    as_of: dt.date,
    on_page: OnPage | None = None,
    cached: Cached | None = None,
    started: dt.datetime | None = None,
    quality: Mapping[str, Any] | None = None,
) -> tuple[Snapshot, Cached]:
    """The snapshot, and the tables as the next incremental run starts from them.

    ``quality`` is the ``[quality]`` table of the config (plausibility bounds;
    defaults when None).
    """
    started = started or utc_now()
    incremental = set(adapter.capabilities.incremental) if cached else set()
    fresh = Cached(full_at=cached.full_at if cached and incremental else started)
    changed: dict[str, pl.Series] = {}
    unreadable: dict[str, dict[str, str]] = {}
    for table in TABLES:
        since = _since(table, cached) if table in incremental and cached else None
        rows: list[dict[str, Any]] = []
        frames: list[pl.DataFrame] = []
        key = next(iter(TABLES[table]))
        for page in adapter.extract(table, since) if since else adapter.extract(table):
            if isinstance(page, pl.DataFrame):  # a page as columns: no Python value per cell
                frames.append(page)
                if on_page:
                    on_page(table, page.height)
                continue
            if page and UNREADABLE in page[0]:  # a page of records the ERP failed to serve
                failed = unreadable.setdefault(table, {})
                failed.update((str(r[key]), str(r[UNREADABLE])) for r in page)
                continue
            rows.extend(page)
            if on_page:
                on_page(table, len(page))
        read = frame(table, rows)
        if frames:
            read = pl.concat([*(of_frame(table, f) for f in frames), read], how="vertical")
        if since and cached:
            fresh.read_since.append(table)
            changed[table] = read[key]
            read = merge(table, cached.tables[table], read, changed)
            _carry_unreadable(table, cached, changed[table], unreadable)
        if table in unreadable:  # a record read before that the ERP now fails to serve
            read = read.filter(~pl.col(key).cast(pl.String).is_in(list(unreadable[table])))
        fresh.tables[table] = read
        previous = cached.watermarks.get(table) if since and cached else None
        mark = watermark(read, previous, started)
        if mark is not None and table in adapter.capabilities.incremental:
            fresh.watermarks[table] = mark
    current: dict[str, dict[str, Any]] = {}
    if "customers" in changed and cached:
        still = set(fresh.tables["customers"]["customer_id"].cast(pl.String).to_list())
        reread = set(changed["customers"].cast(pl.String).to_list())
        current = {c: v for c, v in cached.current.items() if c in still and c not in reread}
        fresh.reread = reread
    for values in adapter.current_values():
        if isinstance(values, pl.DataFrame):  # a page as columns: no Python value per cell
            fresh.current_frames.append(values)
            if current:  # rows an earlier page gave: this page's replace them
                given = _ids(values)
                current = {c: v for c, v in current.items() if c not in given}
        else:
            current.update(values)
    fresh.current = current
    fresh.unreadable = unreadable
    tables: dict[str, Any] = fresh.tables
    snapshot = Snapshot(as_of=as_of, **tables)
    first_fiscal = getattr(adapter, "first_fiscal_date", None)
    rules = Plausibility.of(quality, as_of, first_fiscal() if first_fiscal else None)
    snapshot.quarantined = quarantine(snapshot, rules, unreadable)
    snapshot.current = dict(current)
    return snapshot, fresh


def _ids(frame: pl.DataFrame) -> set[str]:
    return set(frame["customer_id"].cast(pl.String).to_list())


def _carry_unreadable(
    table: str, cached: Cached, reread: pl.Series, unreadable: dict[str, dict[str, str]]
) -> None:
    """Keep the records the ERP failed to serve on an earlier run and that were not
    read again (unchanged since): they are still set aside, and still counted."""
    before = cached.unreadable.get(table, {})
    if before:
        again = set(reread.cast(pl.String).to_list())
        kept = {i: e for i, e in before.items() if i not in again}
        unreadable[table] = {**kept, **unreadable.get(table, {})}


def _since(table: str, cached: Cached) -> dt.datetime | None:
    """The watermark a table is read from: its own, or its parent's for lines."""
    if table not in cached.tables:
        return None
    owner = PARENTS[table][0] if table in PARENTS else table
    return cached.watermarks.get(owner)


def read_back_keys(
    current: dict[str, dict[str, Any]],
    frames: list[pl.DataFrame],
    fields: Mapping[str, Field],
) -> Values:
    """The values read back, as the plan compares them (``columns.Values``): the
    pages of rows parsed by ``read_back``, the pages of columns (read after them)
    converted a column at a time."""
    parts = [columns.of_rows(read_back(current, fields), fields)]
    parts += [columns.read_keys(frame, fields) for frame in frames]
    return columns.stack(parts)


def read_back(
    current: dict[str, dict[str, Any]], fields: Mapping[str, Field]
) -> dict[str, dict[str, Any]]:
    """The values read back from the ERP as their fields' types; empty ones dropped.

    Keys of fields no enabled plugin declares are kept as they are (a disabled
    plugin's values are carried along, never touched).
    """
    out: dict[str, dict[str, Any]] = {}
    # A value already of its field's type is what ``parse`` would return.
    own = {name: _OWN.get(f.type, str) for name, f in fields.items()}
    for cid, values in current.items():
        parsed = {}
        for name, raw in values.items():
            kind = own.get(name)
            if kind is None or (type(raw) is kind and (raw or kind is not str)):
                value = raw
            else:
                value = fields[name].parse(raw)
            if value is not None:
                parsed[name] = value
        if parsed:
            out[cid] = parsed
    return out
