"""The embedded state store: one SQLite file beside the config, nothing to install.

It keeps the run records, the audit trail (every
cell changed, old and new value, every record the ERP refused, and every value
found edited in the ERP, per run) and, one row a customer, the values last
confirmed written (a row is rewritten only when one of its values changes, so an
unchanged re-run adds a run record and nothing else).  It never holds a secret.
A lock file beside it keeps two syncs from running at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crm_bridge.errors import StateError
from crm_bridge.fields import decode, decoded, encode

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
CREATE TABLE IF NOT EXISTS changes (
    run_id INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    field TEXT NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_run ON changes (run_id);
CREATE TABLE IF NOT EXISTS rejections (
    run_id INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    run_id INTEGER NOT NULL,
    call_no INTEGER NOT NULL,
    batches TEXT NOT NULL,
    cells TEXT NOT NULL,
    confirmed_at REAL,
    confirmed_by INTEGER,
    PRIMARY KEY (run_id, call_no)
);
CREATE TABLE IF NOT EXISTS edits (
    run_id INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    field TEXT NOT NULL,
    expected TEXT NOT NULL,
    found TEXT NOT NULL,
    seen TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS edits_run ON edits (run_id);
CREATE TABLE IF NOT EXISTS applied_values (
    customer_id TEXT PRIMARY KEY,
    cells TEXT NOT NULL
);
"""
# ``applied_values.cells``: a JSON object {field: value as ``fields.encode`` writes it}, one
# row a customer, rewritten only when one of its values changes.  Stores written
# before (CHANGELOG, Unreleased) kept one ``applied`` row a cell (customer, field,
# value, run): see ``_migrate``.

# One statement a batch: the batch's cells go in as one JSON parameter.
# A merge patch (RFC 7396: a null removes the key), {customer: {field: value}}.
PATCH_APPLIED = """
UPDATE applied_values SET cells = json_patch(cells, patch.value)
FROM json_each(?1) AS patch WHERE applied_values.customer_id = patch.key
"""
ADD_APPLIED = """
INSERT OR IGNORE INTO applied_values (customer_id, cells)
SELECT key, json_patch('{}', value) FROM json_each(?1)
"""
DROP_EMPTY = """
DELETE FROM applied_values
WHERE customer_id IN (SELECT key FROM json_each(?1)) AND cells = '{}'
"""
INSERT_CHANGES = """
INSERT INTO changes (run_id, customer_id, field, old, new)
SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?2)
"""
INSERT_EDITS = """
INSERT INTO edits (run_id, customer_id, field, expected, found, seen)
SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, ?3 FROM json_each(?2)
"""
INSERT_REJECTIONS = """
INSERT INTO rejections (run_id, customer_id, reason)
SELECT ?1, key, value FROM json_each(?2)
"""


def _path(field: str) -> str:
    """The JSON path of one field in ``applied_values.cells``."""
    return "$." + json.dumps(field)


class RunLock:
    """An exclusive lock on the state store for the length of a sync.

    ``flock`` is released by the operating system when the process ends, however
    it ends, so the lock of a killed run is never stale: the next run takes it.
    """

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self.file: Any = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise StateError(
                f"another crm-bridge sync is running against {self.path.parent} ({holder})",
                hint="wait for it to finish; a killed run's lock is released automatically",
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.file.flush()
        return self

    def __exit__(self, *_: Any) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


class StateStore:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open (or create) the store; ``readonly`` never creates nor changes anything."""
        self.path = path
        try:
            if readonly:
                # immutable: no -wal/-shm files are created beside it either; but
                # after a killed run the write-ahead log holds data: read it too.
                wal = path.with_name(path.name + "-wal")
                pending = wal.exists() and wal.stat().st_size > 0
                uri = f"{path.as_uri()}?mode=ro" + ("" if pending else "&immutable=1")
                self.db = sqlite3.connect(uri, uri=True, timeout=10)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=10, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as exc:
            raise StateError(
                f"state store {path} cannot be opened: {exc}",
                hint="check the [state] path and its permissions",
            ) from None

    def close(self) -> None:
        self.db.close()

    def _has_table(self, name: str) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    def _migrate(self) -> None:
        """A store of the old layout kept one ``applied`` row a cell: fold it into
        one row a customer, and drop the payload its journal kept for confirmed calls,
        once, in one transaction (the audit trail is untouched)."""
        if not self._has_table("applied"):
            return
        with self._transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO applied_values (customer_id, cells) "
                "SELECT customer_id, json_group_object(field, json(value)) FROM applied "
                "GROUP BY customer_id"
            )
            self.db.execute("DROP TABLE applied")
            self.db.execute(
                "UPDATE journal SET batches = '', cells = '' WHERE confirmed_at IS NOT NULL"
            )

    # -- runs ---------------------------------------------------------------
    def start_run(self, dry_run: bool) -> int:
        """Record a new run; called under the run lock, so a run still marked
        running died (killed, power cut): it is marked interrupted."""
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO runs (started_at, dry_run, status) VALUES (?, ?, 'running')",
                (time.time(), int(dry_run)),
            )
            run_id = int(cur.lastrowid or 0)
            self.db.execute(
                "UPDATE runs SET status = 'interrupted', message = ? "
                "WHERE status = 'running' AND id < ?",
                (
                    f"stopped before it finished (found by run {run_id}, which resends "
                    "any write it left unconfirmed)",
                    run_id,
                ),
            )
        return run_id

    def finish_run(
        self, run_id: int, status: str, counts: Mapping[str, Any], message: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at=?, status=?, counts=?, message=? WHERE id=?",
            (time.time(), status, json.dumps(counts, sort_keys=True), message, run_id),
        )

    def prune(self, keep_days: float) -> int:
        """Forget the history of runs started more than ``keep_days`` ago: their
        records, changes and refusals, and their confirmed journal entries (an
        unconfirmed call is kept until a run resends it).  Returns runs removed."""
        cutoff = time.time() - keep_days * 86400
        with self._transaction():
            old = [
                r
                for (r,) in self.db.execute(
                    "SELECT id FROM runs WHERE started_at < ? AND status != 'running'", (cutoff,)
                )
            ]
            for table in ("changes", "rejections", "edits"):
                self.db.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(r,) for r in old])
            self.db.executemany(
                "DELETE FROM journal WHERE run_id = ? AND confirmed_at IS NOT NULL",
                [(r,) for r in old],
            )
            self.db.executemany("DELETE FROM runs WHERE id = ?", [(r,) for r in old])
        return len(old)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        ids = self.db.execute("SELECT id FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [run for (run_id,) in ids.fetchall() if (run := self.run(run_id))]

    # -- applied values -----------------------------------------------------
    def applied(self) -> dict[str, dict[str, Any]]:
        """The last confirmed values: {customer: {field: value}}."""
        out: dict[str, dict[str, Any]] = {}
        if self._has_table("applied"):  # a store of the old layout, opened read only
            for c, f, v in self.db.execute("SELECT customer_id, field, value FROM applied"):
                out.setdefault(c, {})[f] = decode(v)
            return out
        for c, cells in self.db.execute("SELECT customer_id, cells FROM applied_values"):
            out[c] = {f: decoded(v) for f, v in json.loads(cells).items()}
        return out

    # -- journal ------------------------------------------------------------
    def journal_plan(self, run_id: int, calls: Iterable[tuple[str, str]]) -> None:
        """Persist a run's write calls (batches and cells, as JSON) before the first write."""
        with self._transaction():
            self.db.executemany(
                "INSERT INTO journal (run_id, call_no, batches, cells) VALUES (?, ?, ?, ?)",
                [(run_id, no, b, c) for no, (b, c) in enumerate(calls)],
            )

    def pending_calls(self) -> list[tuple[int, int, str, str]]:
        """(run, call, batches, cells) of calls the ERP never confirmed, oldest first."""
        return self.db.execute(
            "SELECT run_id, call_no, batches, cells FROM journal "
            "WHERE confirmed_at IS NULL ORDER BY run_id, call_no"
        ).fetchall()

    def journal(self, run_id: int) -> list[tuple[int, float | None, int | None]]:
        """(call, confirmed at, confirmed by run) for each write call of ``run_id``."""
        return self.db.execute(
            "SELECT call_no, confirmed_at, confirmed_by FROM journal WHERE run_id = ? "
            "ORDER BY call_no",
            (run_id,),
        ).fetchall()

    def record_applied(
        self,
        cells: Iterable[tuple[str, str, str, str]],
        run_id: int,
        rejected: Mapping[str, str] | None = None,
        call: tuple[int, int] | None = None,
        conflicts: Iterable[tuple[str, str, str, str, str]] = (),
        rest: tuple[str, str] | None = None,
    ) -> None:
        """Remember confirmed cells (customer, field, old, new as canonical JSON),
        in the audit trail and as the last applied values (a cleared cell is
        forgotten), refused records and ``conflicts`` (customer, field, old, new,
        found: a key the ERP left as a person had edited it); mark the journal's
        ``call`` (run, call number) confirmed, all at once.  A conflicting key is
        remembered at crm-bridge's new value, so the next run sees the person's
        value as drift (kept under the "keep" policy, else put back).  ``rest``:
        the call failed part-way, so instead of being confirmed it keeps only
        these (batches, cells as JSON), to be resent."""
        rows = list(cells)
        edited = list(conflicts)
        with self._transaction():
            self._edits(run_id, [(c, f, old, found) for c, f, old, _, found in edited], "write")
            self._set_applied([(c, f, new) for c, f, _, new, _ in edited])
            if call is not None and rest is not None:
                self.db.execute(
                    "UPDATE journal SET batches = ?, cells = ? "
                    "WHERE run_id = ? AND call_no = ? AND confirmed_at IS NULL",
                    (*rest, *call),
                )
            elif call is not None:  # confirmed: never resent, so its payload goes
                self.db.execute(
                    "UPDATE journal SET confirmed_at = ?, confirmed_by = ?, batches = '', "
                    "cells = '' "
                    "WHERE run_id = ? AND call_no = ? AND confirmed_at IS NULL",
                    (time.time(), run_id, *call),
                )
            self._set_applied([(c, f, new) for c, f, _, new in rows])
            if rows:
                self.db.execute(INSERT_CHANGES, (run_id, json.dumps(rows)))
            if rejected:
                self.db.execute(INSERT_REJECTIONS, (run_id, json.dumps(dict(rejected))))

    def forget_field(self, name: str) -> None:
        """Drop a retired field from the last applied values (the audit trail stays)."""
        with self._transaction():
            self.db.execute(
                "UPDATE applied_values SET cells = json_remove(cells, ?) "
                "WHERE json_type(cells, ?) IS NOT NULL",
                (_path(name), _path(name)),
            )
            self.db.execute("DELETE FROM applied_values WHERE cells = '{}'")

    def remember(self, cells: Iterable[tuple[str, str, str]]) -> None:
        """Record (customer, field, value) as applied without a change: the ERP
        already held it (see ``sync._already_there``)."""
        rows = list(cells)
        if rows:
            with self._transaction():
                self._set_applied(rows)

    def record_edits(self, cells: Iterable[tuple[str, str, str, str]], run_id: int) -> None:
        """Values the plan found edited in the ERP: (customer, field, value
        crm-bridge wrote, value found), as canonical JSON."""
        rows = list(cells)
        if rows:
            with self._transaction():
                self._edits(run_id, rows, "plan")

    def edits(self, run_id: int) -> list[tuple[str, str, Any, Any, str]]:
        """(customer, field, expected, found, where seen: plan or write) of one run."""
        try:
            rows = self.db.execute(
                "SELECT customer_id, field, expected, found, seen FROM edits WHERE run_id = ? "
                "ORDER BY customer_id, field",
                (run_id,),
            ).fetchall()
        except sqlite3.OperationalError:  # a store written before edits were kept, read only
            return []
        return [(c, f, decode(e), decode(v), seen) for c, f, e, v, seen in rows]

    def _edits(self, run_id: int, rows: Iterable[tuple[str, str, str, str]], seen: str) -> None:
        cells = list(rows)
        if cells:
            self.db.execute(INSERT_EDITS, (run_id, json.dumps(cells), seen))

    def _set_applied(self, cells: list[tuple[str, str, str]]) -> None:
        """Cells (customer, field, value) as the last applied; a null forgets the
        cell, and a customer left with none is forgotten.  Only the customers with
        a cell here are rewritten, each once, merged into what the store holds."""
        if not cells:
            return
        patch: dict[str, dict[str, str]] = {}
        for c, f, v in cells:
            patch.setdefault(c, {})[f] = v  # v is JSON already; null removes the key
        names = {f: encode(str(f)) for row in patch.values() for f in row}
        rows = (
            f"{encode(str(c))}:{{{','.join(f'{names[f]}:{v}' for f, v in row.items())}}}"
            for c, row in patch.items()
        )
        doc = "{" + ",".join(rows) + "}"
        self.db.execute(PATCH_APPLIED, (doc,))
        self.db.execute(ADD_APPLIED, (doc,))
        if any(v == "null" for _, _, v in cells):
            self.db.execute(DROP_EMPTY, (doc,))

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One run record with its rejected records; None if there is no such run."""
        row = self.db.execute(
            "SELECT id, started_at, finished_at, dry_run, status, counts, message "
            "FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "started_at", "finished_at", "dry_run", "status", "counts", "message")
        run = dict(zip(keys, row, strict=True))
        run["counts"] = json.loads(run["counts"])
        run["dry_run"] = bool(run["dry_run"])
        run["rejected"] = dict(
            self.db.execute(
                "SELECT customer_id, reason FROM rejections WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        # What the ERP confirmed, from the audit trail: true however the run ended.
        customers, cells = self.db.execute(
            "SELECT COUNT(DISTINCT customer_id), COUNT(*) FROM changes WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        run["written_customers"], run["written_cells"] = customers, cells
        run["edits"] = len(self.edits(run_id))
        return run

    def changes(self, run_id: int) -> list[tuple[str, str, Any, Any]]:
        """(customer, field, old, new) written by one run, in customer order."""
        rows = self.db.execute(
            "SELECT customer_id, field, old, new FROM changes WHERE run_id = ? "
            "ORDER BY customer_id, field",
            (run_id,),
        )
        return [(c, f, decode(o), decode(n)) for c, f, o, n in rows]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
