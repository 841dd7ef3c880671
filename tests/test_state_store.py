"""The state store grows with changes, not with re-runs: one row of last applied
values a customer, rewritten only when one of its values changes; confirmed
journal entries drop their payload; a store of the old layout (one row a cell)
is migrated when opened for a sync."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

from crm_bridge.fields import encode
from crm_bridge.state import StateStore
from crm_bridge.sync import sync

from .test_pipeline import setup


def _size(path: Path) -> int:
    """Bytes on disk with the write-ahead log folded in."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_an_unchanged_rerun_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path)
    first = sync(cfg, plugins)
    assert first.counts["planned_cells"] > 0
    path = cfg.state_path
    size, customers, changes = _size(path), _count(path, "applied_values"), _count(path, "changes")
    assert customers == len(adapter.values) and changes == first.counts["planned_cells"]
    again = sync(cfg, plugins)
    assert again.counts["planned_cells"] == 0
    assert _size(path) == size
    assert _count(path, "applied_values") == customers
    assert _count(path, "changes") == changes
    assert _count(path, "runs") == 2


def _record(store: StateStore, cells: list[tuple[str, str, object, object]]) -> int:
    run_id = store.start_run(dry_run=False)
    rows = [(c, f, encode(old), encode(new)) for c, f, old, new in cells]
    store.journal_plan(run_id, [("[]", "[]")])
    store.record_applied(rows, run_id, {}, (run_id, 0))
    store.finish_run(run_id, "ok", {})
    return run_id


def test_the_store_grows_with_the_changed_cells_only(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    fields = [f"f{i}" for i in range(10)]
    _record(store, [(str(c), f, None, Decimal(c)) for c in range(200) for f in fields])
    rows = store.db.execute("SELECT customer_id, cells FROM applied_values").fetchall()
    assert len(rows) == 200
    changed = _record(store, [("7", "f3", Decimal(7), Decimal("7.5")), ("9", "f0", 9, "x")])
    after = store.db.execute("SELECT customer_id, cells FROM applied_values").fetchall()
    assert len(after) == 200
    assert [r for r in after if r not in rows] == [
        (c, cells) for c, cells in after if c in {"7", "9"}
    ]
    assert store.changes(changed) == [("7", "f3", 7, Decimal("7.5")), ("9", "f0", 9, "x")]
    assert store.applied()["7"]["f3"] == Decimal("7.5") and store.applied()["9"]["f0"] == "x"
    assert store.run(changed)["written_cells"] == 2  # type: ignore[index]
    store.close()


def test_a_cleared_value_is_forgotten_and_so_is_a_customer_left_without_any(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state.db")
    day = dt.date(2026, 6, 30)
    _record(store, [("1", "a", None, day), ("1", "b", None, True), ("2", "a", None, 'é"q')])
    _record(store, [("1", "a", day, None), ("2", "a", 'é"q', None)])
    assert store.applied() == {"1": {"b": True}}
    assert _count(tmp_path / "state.db", "applied_values") == 1
    store.forget_field("b")
    assert store.applied() == {}
    store.close()


def test_confirmed_calls_drop_their_payload_unconfirmed_ones_keep_it(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    run_id = store.start_run(dry_run=False)
    cells = '[["1", "a", "null", "1"]]'
    store.journal_plan(run_id, [('[[["1"], {"a": "1"}, {}]]', cells)] * 2)
    store.record_applied([("1", "a", "null", "1")], run_id, {}, (run_id, 0))
    assert store.pending_calls() == [(run_id, 1, '[[["1"], {"a": "1"}, {}]]', cells)]
    payload = store.db.execute(
        "SELECT batches, cells FROM journal WHERE call_no = 0 AND run_id = ?", (run_id,)
    ).fetchone()
    assert payload == ("", "")
    store.close()


OLD_LAYOUT = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    dry_run INTEGER NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}',
    message TEXT
);
INSERT INTO runs (started_at, finished_at, dry_run, status) VALUES (1.0, 2.0, 0, 'failed');
CREATE TABLE journal (
    run_id INTEGER NOT NULL,
    call_no INTEGER NOT NULL,
    batches TEXT NOT NULL,
    cells TEXT NOT NULL,
    confirmed_at REAL,
    confirmed_by INTEGER,
    PRIMARY KEY (run_id, call_no)
);
INSERT INTO journal VALUES (1, 0, '[[["10"], {}, {}]]', '[]', 1.0, 1);
INSERT INTO journal VALUES (1, 1, '[[["11"], {}, {}]]', '[]', NULL, NULL);
"""
OLD_APPLIED = """
CREATE TABLE applied (
    customer_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (customer_id, field)
) WITHOUT ROWID;
"""


def test_a_store_of_the_old_layout_is_migrated_with_every_value(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    values = {
        "10": {"rfm": "Champions", "clv": Decimal("1.005"), "since": dt.date(2024, 2, 29)},
        "11": {"score": 5, "vip": False, "note": 'a "quoted" é'},
    }
    with sqlite3.connect(path) as db:
        db.executescript(OLD_LAYOUT + OLD_APPLIED)
        db.executemany(
            "INSERT INTO applied VALUES (?, ?, ?, 1)",
            [(c, f, encode(v)) for c, row in values.items() for f, v in row.items()],
        )
    readonly = StateStore(path, readonly=True)
    assert readonly.applied() == values  # read as it is, nothing changed
    readonly.close()
    store = StateStore(path)
    assert store.applied() == values
    tables = {n for (n,) in store.db.execute("SELECT name FROM sqlite_master")}
    assert "applied" not in tables and _count(path, "applied_values") == 2
    journal = store.db.execute("SELECT call_no, batches FROM journal ORDER BY call_no").fetchall()
    assert journal == [(0, ""), (1, '[[["11"], {}, {}]]')]  # the unconfirmed call kept whole
    _record(store, [("10", "clv", Decimal("1.005"), Decimal("2.675"))])
    store.close()
    again = StateStore(path)  # opening a migrated store changes nothing
    assert again.applied() == {**values, "10": {**values["10"], "clv": Decimal("2.675")}}
    again.close()


def test_a_sync_on_a_store_of_the_old_layout_writes_nothing_new(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path)
    first = sync(cfg, plugins)
    assert first.status == "ok" and first.counts["planned_cells"] > 0
    path = cfg.state_path
    store = StateStore(path)
    applied = store.applied()
    store.close()
    with sqlite3.connect(path) as db:  # the same values, as the old layout kept them
        db.executescript(OLD_APPLIED)
        db.executemany(
            "INSERT INTO applied VALUES (?, ?, ?, 1)",
            [(c, f, encode(v)) for c, row in applied.items() for f, v in row.items()],
        )
        db.execute("DROP TABLE applied_values")
    again = sync(cfg, plugins)
    assert again.status == "ok" and again.counts["planned_cells"] == 0
    assert again.counts["drift"] == {}
    store = StateStore(path, readonly=True)
    assert store.applied() == applied
    assert not store.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'applied'").fetchall()
    store.close()
