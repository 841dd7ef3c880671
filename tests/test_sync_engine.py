"""Locking, the audit trail, and a sync killed with SIGKILL in the middle of its writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, TrytonServer, template_end

from crm_bridge import config as config_mod
from crm_bridge.apply import KILL_ENV
from crm_bridge.fields import decode
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.state import RunLock
from crm_bridge.sync import connect

from .conftest import PASSWORD_ENV, RawRPC, Tryton
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
            return db.execute("SELECT count(*) FROM applied_values").fetchone()[0]
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


def _journal(state: Path) -> tuple[int, int]:
    """(journaled calls, confirmed calls) of the first run."""
    with sqlite3.connect(f"{state.as_uri()}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT count(*), count(confirmed_at) FROM journal WHERE run_id = 1"
        ).fetchone()


def _killable(tryton: Tryton, path: Path) -> Path:
    """A config writing five customers' batches per call, the fields provisioned."""
    cfg = tryton.config(path)
    cfg.write_text(cfg.read_text().replace("batch_size = 100", "batch_size = 5"))
    _provision(cfg)
    return cfg


def _raw(tryton: Tryton) -> dict[str, dict[str, Any]]:
    """crm-bridge's values by party id, read with plain JSON-RPC, parsed as declared."""
    fields = load_plugins().fields()
    rows = tryton.rpc("model.party.party.search_read", [], 0, None, None, ["crm"])
    return {
        str(r["id"]): {k: fields[k].parse(v) for k, v in (r["crm"] or {}).items()}
        for r in rows
        if r["crm"]
    }


@pytest.fixture(scope="module")
def unkilled(tryton_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What one uninterrupted sync leaves in its own Tryton (same data, same
    config), read back raw: the values a killed and resumed sync must leave."""
    directory = tmp_path_factory.mktemp("unkilled")
    (directory / "tryton").mkdir()
    shutil.copyfile(tryton_template, directory / "tryton" / "test.sqlite")
    server = TrytonServer(directory / "tryton", "test").start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv(PASSWORD_ENV, ADMIN_PASSWORD)
            erp = Tryton(
                server,
                RawRPC(server.url, "test"),
                template_end(tryton_template),
                directory / "tryton",
            )
            _killable(erp, directory / "crm-bridge.toml")
            done = run("sync", "--quiet", cwd=directory)
            assert done.returncode == 0, done.stderr
            return _raw(erp)
    finally:
        server.stop()


# Deterministic kill points (crm_bridge.apply.KILL_ENV): the sync SIGKILLs itself right
# after the ERP answered call n, before recording it and before sending call n+1.
KILL_POINTS = {
    "after the plan is journaled, nothing sent": 0,
    "call 4 landed, unrecorded": 4,
    "the call before the last landed, unrecorded": -2,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sync_killed_during_apply_loses_nothing_and_the_next_run_finishes(
    tryton: Tryton, tmp_path: Path, point: str, unkilled: dict[str, Any]
) -> None:
    _killable(tryton, tmp_path / "crm-bridge.toml")
    state = tmp_path / "state.db"
    kill_after = KILL_POINTS[point]
    killed = run("sync", "--quiet", cwd=tmp_path, env={KILL_ENV: str(kill_after)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    total, confirmed = _journal(state)
    landed = kill_after if kill_after >= 0 else total + 1 + kill_after
    # Every call before the kill point recorded; the one that landed, and the rest, not.
    assert confirmed == max(landed - 1, 0) and total > landed
    done_before = _applied(state)
    before = _raw(tryton)
    # The ERP holds what the recorded calls and the landed one carried, nothing more:
    # a recorded call's customers are in the audit trail (the journal drops a confirmed
    # call's payload), the landed one's in its journal entry.
    with sqlite3.connect(state) as db:
        recorded = {
            c for (c,) in db.execute("SELECT DISTINCT customer_id FROM changes WHERE run_id = 1")
        }
        sent = [
            json.loads(c)
            for (c,) in db.execute(
                "SELECT batches FROM journal WHERE run_id = 1 AND call_no < ? "
                "AND confirmed_at IS NULL ORDER BY call_no",
                (landed,),
            )
        ]
    assert len(sent) == (landed > 0) and (landed <= 1 or recorded)
    held_by = recorded | {cid for call in sent for ids, *_ in call for cid in ids}
    assert set(before) == held_by
    assert all(before[cid] == unkilled[cid] for cid in held_by)

    # The next run first resends the calls the ERP never confirmed (from the journal),
    # then plans: nothing is left to write.
    pending = total - confirmed
    again = run("sync", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    expected = expected_values(tryton)
    assert report["counts"]["resumed_customers"] == len(expected) - done_before
    assert report["counts"]["written"] == 0
    assert report["status"] == "ok"
    # Value for value what an unkilled run leaves, and what the plugins compute.
    held = _raw(tryton)
    assert held == unkilled
    assert_holds(tryton.rpc.crm_values(), expected)
    assert _applied(state) == len(expected)
    # The audit trail: every cell once, from what the ERP held (nothing) to what it holds.
    with sqlite3.connect(state) as db:
        audit = db.execute("SELECT customer_id, field, old, new FROM changes").fetchall()
    assert len(audit) == len({(c, f) for c, f, _, _ in audit})
    assert {(c, f) for c, f, _, _ in audit} == {(c, f) for c, v in held.items() for f in v}
    assert all(old == "null" for _, _, old, _ in audit)
    assert all(decode(new) == held[c][f] for c, f, _, new in audit)
    # Every call of the killed run was confirmed exactly once, by it or by the resume.
    with sqlite3.connect(state) as db:
        calls = db.execute(
            "SELECT call_no, confirmed_by FROM journal WHERE run_id = 1 ORDER BY call_no"
        ).fetchall()
    assert [no for no, _ in calls] == list(range(total))
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
        left = db.execute(
            "SELECT count(*) FROM applied_values WHERE cells ->> '$.kpi_clv_12m' IS NOT NULL"
        ).fetchone()
    assert left == (0,)
