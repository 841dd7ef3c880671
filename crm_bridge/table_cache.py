"""The local copy of the canonical tables that makes extraction incremental.

After a successful real run the tables read (and crm-bridge's values read
back) are kept as Parquet files beside the state store, with one watermark
per table: the largest modification time seen, capped at the run's start.
The next run asks the adapter only for what changed since (inclusive, so a
record written in the same second is read again) and merges it in: rows are
replaced by primary key, and the lines of a changed invoice or order are
replaced as a whole.  Records deleted in the ERP are not seen this way, so a
full read happens every ``full_refresh_days`` and on ``sync --full``.

A dry run reads through the cache but never writes it; a failed run leaves it
as it was (the manifest is replaced atomically, last).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crm_bridge.config import Config
from crm_bridge.fields import decode, encode
from crm_bridge.snapshot import TABLES

# Child tables: replaced per parent when the parent changed.
PARENTS = {
    "invoice_lines": ("invoices", "invoice_id"),
    "sale_order_lines": ("sale_orders", "order_id"),
}
FORMAT = 1


@dataclass
class Cached:
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    watermarks: dict[str, dt.datetime] = field(default_factory=dict)
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    full_at: dt.datetime | None = None
    # Records the ERP failed to serve: {table: {id: error}} (still set aside while
    # incremental reads do not read them again).
    unreadable: dict[str, dict[str, str]] = field(default_factory=dict)
    # Tables this run read as "changed since" (not kept: a fact about one run).
    read_since: list[str] = field(default_factory=list)
    # Customers whose values were read back from the ERP this run (None: all);
    # the others' values are the cached ones, as crm-bridge last knew them.
    reread: set[str] | None = None
    # Pages of values an adapter gave as columns (read after ``current``); turned
    # into rows only for what needs them (``values_as_rows``): a dry run never does.
    current_frames: list[pl.DataFrame] = field(default_factory=list)

    def values_as_rows(self) -> dict[str, dict[str, Any]]:
        """``current`` with the pages given as columns put in, as rows."""
        for frame in self.current_frames:
            for row in frame.iter_rows(named=True):
                cid = str(row.pop("customer_id"))
                self.current[cid] = {k: v for k, v in row.items() if v is not None}
        self.current_frames.clear()
        return self.current


def utc_now() -> dt.datetime:
    """Now, as the naive UTC time the ERPs' modification stamps are compared with."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class TableCache:
    """The tables kept beside a config's state store, for the ERP that config reads."""

    def __init__(self, folder: Path, source: str) -> None:
        self.folder = folder
        self.source = source
        self.manifest = folder / "manifest.json"

    @classmethod
    def of(cls, cfg: Config) -> TableCache:
        erp = cfg.erp  # the cache belongs to an ERP, not to a config file
        source = "|".join(str(erp.get(k, "")) for k in ("adapter", "url", "database", "company"))
        return cls(cfg.state_path.parent / "tables", source)

    def load(self, full_refresh_days: float, now: dt.datetime | None = None) -> Cached | None:
        """The cached tables, or None when a full read is due."""
        try:
            meta = json.loads(self.manifest.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT or meta.get("adapter") != self.source:
            return None
        full_at = dt.datetime.fromisoformat(meta["full_at"])
        if math.isfinite(full_refresh_days) and (now or utc_now()) - full_at > dt.timedelta(
            days=full_refresh_days
        ):
            return None
        try:
            tables = {t: pl.read_parquet(self.folder / f"{t}.parquet") for t in meta["tables"]}
        except (OSError, pl.exceptions.PolarsError):
            return None
        current = {
            cid: {k: decode(v) for k, v in vals.items()} for cid, vals in meta["current"].items()
        }
        return Cached(
            {t: df.cast(TABLES[t]) for t, df in tables.items()},
            {t: dt.datetime.fromisoformat(v) for t, v in meta["watermarks"].items()},
            current,
            full_at,
            {t: dict(ids) for t, ids in meta.get("unreadable", {}).items()},
        )

    def save(self, cached: Cached) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for table, frame in cached.tables.items():
            tmp = self.folder / f".{table}.parquet.tmp"
            frame.write_parquet(tmp)
            os.replace(tmp, self.folder / f"{table}.parquet")
        meta = {
            "format": FORMAT,
            "adapter": self.source,
            "full_at": (cached.full_at or utc_now()).isoformat(),
            "tables": sorted(cached.tables),
            "watermarks": {t: w.isoformat() for t, w in cached.watermarks.items()},
            "current": {
                cid: {k: encode(v) for k, v in vals.items()}
                for cid, vals in cached.values_as_rows().items()
            },
            "unreadable": cached.unreadable,
        }
        tmp = self.folder / ".manifest.json.tmp"
        tmp.write_text(json.dumps(meta), "utf-8")
        os.replace(tmp, self.manifest)


def merge(
    table: str,
    cached: pl.DataFrame,
    delta: pl.DataFrame,
    changed_parents: Mapping[str, pl.Series],
) -> pl.DataFrame:
    """``cached`` with ``delta`` applied: rows replaced by key, children by parent."""
    key = next(iter(TABLES[table]))
    keep = cached.filter(~pl.col(key).is_in(delta[key].implode()))
    if table in PARENTS:
        parent, column = PARENTS[table]
        if parent in changed_parents:
            keep = keep.filter(~pl.col(column).is_in(changed_parents[parent].implode()))
    return pl.concat([keep, delta.unique(key, keep="last", maintain_order=True)], how="vertical")


def watermark(
    frame: pl.DataFrame, previous: dt.datetime | None, cap: dt.datetime
) -> dt.datetime | None:
    """The largest ``updated_at`` seen (or the previous mark), never past ``cap``."""
    if "updated_at" not in frame.columns:
        return previous
    seen = frame["updated_at"].max()
    marks = [m for m in (previous, seen) if isinstance(m, dt.datetime)]
    return min(max(marks), cap) if marks else previous
