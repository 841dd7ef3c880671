"""Locking, the audit trail, and a sync killed with SIGKILL in the middle of its writes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.state import RunLock
from crm_bridge.sync import connect

from .conftest import Tryton
from .test_cli_errors import assert_clear, run
from .test_end_to_end import assert_holds, expected_values


def _provision(cfg_path: Path) -> None:
    cfg = config_mod.load(cfg_path)
    adapter, fields = connect(cfg, load_plugins())
    adapter.provision(list(fields.values()))
    adapter.close()


def _applied(state: Path) -> int:
    try:
        with sqlite3.connect(f"{state.as_uri()}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(DISTINCT customer_id) FROM applied").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_second_sync_refuses_while_one_runs(tmp_path: Path) -> None:
    (tmp_path / "crm-bridge.toml").write_text(
        '[erp]\nadapter = "tryton"\nurl = "http://127.0.0.1:1"\ndatabase = "d"\n'
        'username = "u"\npassword = "p"\n[state]\npath = "state.db"\n'
    )
    with RunLock(tmp_path / "state.db"):
        proc = run("sync", cwd=tmp_path)
    assert_clear(proc, 1, "another crm-bridge sync is running", f"pid {os.getpid()}")


def _confirmed(state: Path) -> tuple[int, int]:
    """(journaled calls, confirmed calls) of the first run, read without locking."""
    try:
        with sqlite3.connect(f"{state.as_uri()}?mode=ro", uri=True) as db:
            return db.execute(
                "SELECT count(*), count(confirmed_at) FROM journal WHERE run_id = 1"
            ).fetchone()
    except sqlite3.Error:
        return (0, 0)


KILL_POINTS = {
    "after the plan is journaled": lambda total, done: total > 0 and done == 0,
    "mid-apply": lambda total, done: done >= 4,
    "just before the last call": lambda total, done: total > 0 and done >= total - 2,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sync_killed_during_apply_loses_nothing_and_the_next_run_finishes(
    tryton: Tryton, tmp_path: Path, point: str
) -> None:
    cfg = tryton.config(tmp_path / "crm-bridge.toml")
    text = cfg.read_text().replace("batch_size = 100", "batch_size = 5")
    cfg.write_text(text)
    _provision(cfg)
    state = tmp_path / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_bridge", "sync", "--quiet"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not KILL_POINTS[point](*_confirmed(state)) and time.monotonic() < deadline:
        assert proc.poll() is None, "the sync ended before the kill point"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    total, confirmed = _confirmed(state)
    done_before = _applied(state)
    expected = expected_values(tryton)
    assert confirmed < total and done_before < len(expected), "the kill came too late"

    # The killed run's lock is gone.  The next run first resends the calls the ERP
    # never confirmed (from the journal), then plans: nothing is left to write.
    with sqlite3.connect(state) as db:
        pending = db.execute(
            "SELECT count(*) FROM journal WHERE run_id = 1 AND confirmed_at IS NULL"
        ).fetchone()[0]
    assert pending > 0
    again = run("sync", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["counts"]["resumed_customers"] == len(expected) - done_before
    assert report["counts"]["written"] == 0
    assert report["status"] == "ok"
    held = tryton.rpc.crm_values()
    assert_holds(held, expected)  # value for value
    assert _applied(state) == len(expected)
    # Every call of the killed run was confirmed exactly once, by it or by the resume.
    with sqlite3.connect(state) as db:
        calls = db.execute(
            "SELECT call_no, confirmed_by FROM journal WHERE run_id = 1 ORDER BY call_no"
        ).fetchall()
    assert [no for no, _ in calls] == list(range(len(calls)))
    assert all(by in (1, 2) for _, by in calls)
    assert sum(by == 1 for _, by in calls) == confirmed
    # The run history shows the killed run as interrupted, with what the ERP confirmed
    # of it, then the good one with what it resent.
    listed = run("runs", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    history = json.loads(listed.stdout)
    assert [r["status"] for r in history] == ["ok", "interrupted"]
    assert history[1]["written_customers"] == done_before
    assert history[0]["written_customers"] == len(expected) - done_before
    assert history[0]["counts"]["resumed_calls"] == pending
    shown = run("runs", "show", str(report["run_id"]), cwd=tmp_path)
    assert f"resent from an interrupted run: {len(expected) - done_before} customer(s)" in (
        shown.stdout
    )


def test_runs_and_runs_show_with_changes(tryton: Tryton, tmp_path: Path) -> None:
    tryton.config(tmp_path / "crm-bridge.toml")
    _provision(tmp_path / "crm-bridge.toml")
    first = json.loads(run("sync", "--json", cwd=tmp_path).stdout)
    code = sorted(c for c, v in tryton.rpc.crm_values().items() if v)[0]
    party = tryton.rpc.party_ids()[code]
    values = tryton.rpc.crm_values()[code]
    tryton.rpc("model.party.party.write", [party], {"crm": {**values, "rfm_score": "999"}})
    second = json.loads(run("sync", "--json", cwd=tmp_path).stdout)
    assert second["counts"]["written"] == 1
    assert second["counts"]["drift"] == {"rfm_score": 1}

    listing = run("runs", cwd=tmp_path)
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[1].split()[0] == str(second["run_id"]) and " ok " in lines[1]
    shown = run("runs", "show", str(second["run_id"]), "--changes", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "rfm_score" in shown.stdout and f"{party} rfm_score" in " ".join(shown.stdout.split())
    assert f"999 -> {values['rfm_score']}" in shown.stdout
    as_json = json.loads(run("runs", "show", str(first["run_id"]), "--json", cwd=tmp_path).stdout)
    assert (
        as_json["counts"]["per_field"]["rfm_segment"] == first["counts"]["per_field"]["rfm_segment"]
    )
    missing = run("runs", "show", "999", cwd=tmp_path)
    assert_clear(missing, 2, "there is no run 999")


def test_fields_of_a_disabled_plugin_stay_until_retired(tryton: Tryton, tmp_path: Path) -> None:
    cfg = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg)
    assert run("sync", "--quiet", cwd=tmp_path).returncode == 0
    refused = run("fields", "retire", "kpi_clv_12m", "--yes", cwd=tmp_path)
    assert_clear(refused, 2, "declared by the enabled plugin 'kpis'", "plugins disable kpis")

    assert run("plugins", "disable", "kpis", cwd=tmp_path).returncode == 0
    before = tryton.rpc.crm_values()
    holders = {c for c, v in before.items() if "kpi_clv_12m" in v}
    assert len(holders) > 250
    # A sync without the plugin leaves its fields as they are.
    again = json.loads(run("sync", "--json", cwd=tmp_path).stdout)
    assert again["counts"]["written"] == 0
    assert tryton.rpc.crm_values() == before

    done = run("fields", "retire", "kpi_clv_12m", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"cleared on {len(holders)} customers" in done.stdout
    after = tryton.rpc.crm_values()
    assert not any("kpi_clv_12m" in v for v in after.values())
    assert all(
        after[c] == {k: v for k, v in before[c].items() if k != "kpi_clv_12m"} for c in before
    )
    names = {
        f["name"]
        for f in tryton.rpc("model.crm_bridge.field.search_read", [], 0, None, None, ["name"])
    }
    assert "kpi_clv_12m" not in names and "kpi_aov" in names
    with sqlite3.connect(tmp_path / "state.db") as db:
        left = db.execute("SELECT count(*) FROM applied WHERE field = 'kpi_clv_12m'").fetchone()
    assert left == (0,)
