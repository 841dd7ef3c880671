"""The embedded state store: one SQLite file beside the config, nothing to install.

It keeps the run records, the extraction watermarks and, per customer and
field, the value last confirmed written.  It never holds a secret.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crm_bridge.errors import StateError
from crm_bridge.fields import decode

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    dry_run INTEGER NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}',
    message TEXT
);
CREATE TABLE IF NOT EXISTS watermarks (
    entity TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    run_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS applied (
    customer_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (customer_id, field)
) WITHOUT ROWID;
"""


class StateStore:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open (or create) the store; ``readonly`` never creates nor changes anything."""
        self.path = path
        try:
            if readonly:
                # immutable: no -wal/-shm files are created beside it either.
                uri = f"{path.as_uri()}?mode=ro&immutable=1"
                self.db = sqlite3.connect(uri, uri=True, timeout=10)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=10, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(
                f"state store {path} cannot be opened: {exc}",
                hint="check the [state] path and its permissions",
            ) from None

    def close(self) -> None:
        self.db.close()

    # -- runs ---------------------------------------------------------------
    def start_run(self, dry_run: bool) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (started_at, dry_run, status) VALUES (?, ?, 'running')",
            (time.time(), int(dry_run)),
        )
        return int(cur.lastrowid or 0)

    def finish_run(
        self, run_id: int, status: str, counts: Mapping[str, Any], message: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, counts=?, message=? WHERE id=?",
            (time.time(), status, json.dumps(counts, sort_keys=True), message, run_id),
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, dry_run, status, counts, message "
            "FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("id", "started_at", "finished_at", "dry_run", "status", "counts", "message")
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for run in out:
            run["counts"] = json.loads(run["counts"])
            run["dry_run"] = bool(run["dry_run"])
        return out

    # -- watermarks ---------------------------------------------------------
    def watermarks(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT entity, value FROM watermarks").fetchall())

    def set_watermarks(self, values: Mapping[str, str], run_id: int) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO watermarks (entity, value, run_id) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in values.items()],
            )

    # -- applied values -----------------------------------------------------
    def applied(self) -> dict[str, dict[str, Any]]:
        """The last confirmed values: {customer: {field: value}}."""
        out: dict[str, dict[str, Any]] = {}
        for c, f, v in self.db.execute("SELECT customer_id, field, value FROM applied"):
            out.setdefault(c, {})[f] = decode(v)
        return out

    def record_applied(self, cells: Iterable[tuple[str, str, str]], run_id: int) -> None:
        """Remember (customer, field, canonical JSON value) as confirmed written."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO applied (customer_id, field, value, run_id) "
                "VALUES (?, ?, ?, ?)",
                [(c, f, v, run_id) for c, f, v in cells],
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
