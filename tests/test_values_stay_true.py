"""Values that stay true: stale values cleared, hand edits never lost to a write in
flight or a resend, a run history that says what happened, plugins that cannot
fake success.  The ERP cases run against a real Tryton."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from crm_bridge import Field, hookimpl
from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import RunResult, sync

from .conftest import Tryton
from .test_cli_errors import run
from .test_pipeline import setup
from .test_sync_engine import _provision

KEEP_TIER = 'field_policy = { loyalty_tier = "keep" }\n'


def _config(tryton: Tryton, path: Path, as_of: dt.date | None = None, sync_extra: str = "") -> Any:
    tryton.config(path)
    text = path.read_text()
    if as_of:
        text = text.replace(f'as_of = "{tryton.end.isoformat()}"', f'as_of = "{as_of}"')
    path.write_text(text.replace("[sync]\n", "[sync]\n" + sync_extra))
    return config_mod.load(path)


def _sync(cfg: Any, **kwargs: Any) -> RunResult:
    return sync(cfg, load_plugins(), **kwargs)


def _codes(tryton: Tryton) -> dict[int, str]:
    return {v: k for k, v in tryton.rpc.party_ids().items()}


def test_a_year_forward_leaves_no_stale_cell(tryton: Tryton, tmp_path: Path) -> None:
    first = _config(tryton, tmp_path / "crm-bridge.toml")
    _provision(first.path)
    assert _sync(first).status == "ok"
    kept_state = tmp_path / "after-first.db"
    shutil.copyfile(tmp_path / "state.db", kept_state)
    before = tryton.rpc.crm_values()

    later = _config(tryton, tmp_path / "crm-bridge.toml", tryton.end + dt.timedelta(days=365))
    dry = _sync(later, dry_run=True, full=True)
    # Customers age out of every window: their values no longer apply and are cleared.
    assert dry.plan.cleared > 100
    assert tryton.rpc.crm_values() == before, "a dry run changed the ERP"
    moved = _sync(later, full=True)
    assert moved.status == "ok" and moved.counts["cleared_cells"] == dry.plan.cleared
    after_move = tryton.rpc.crm_values()
    # No expiry in the past of the analysis date, no order value without a sale.
    assert all(
        v.get("loyalty_next_expiry", later.as_of) >= later.as_of for v in after_move.values()
    )

    # The same analysis from empty values (same history in the state store).
    for code, party in tryton.rpc.party_ids().items():
        if before.get(code):
            tryton.rpc("model.party.party.write", [party], {"crm": None})
    shutil.copyfile(kept_state, tmp_path / "state.db")
    shutil.rmtree(tmp_path / "tables", ignore_errors=True)
    assert _sync(later, full=True).status == "ok"
    assert tryton.rpc.crm_values() == after_move


def test_a_hand_edit_made_while_the_sync_writes_survives(tryton: Tryton, tmp_path: Path) -> None:
    cfg = _config(tryton, tmp_path / "crm-bridge.toml", sync_extra=KEEP_TIER)
    cfg.path.write_text(cfg.path.read_text().replace("batch_size = 100", "batch_size = 1"))
    cfg = config_mod.load(cfg.path)
    _provision(cfg.path)
    plan = _sync(cfg, dry_run=True).plan
    tiers = [c for c in plan.changes if c.field == "loyalty_tier"]
    # Three customers written late in the run, edited by hand after the first call.
    late = [c.customer_id for c in tiers[-3:]]
    edits = {c.customer_id: ("gold" if c.new != "gold" else "silver") for c in tiers[-3:]}
    calls = []

    def edit_after_first_call(_: int) -> None:
        calls.append(1)
        if len(calls) == 1:
            for cid, tier in edits.items():
                tryton.rpc("model.party.party.write", [int(cid)], {"crm": {"loyalty_tier": tier}})

    result = _sync(cfg, on_call=edit_after_first_call)
    assert result.applied is not None
    assert result.applied.conflicts == {cid: {"loyalty_tier": tier} for cid, tier in edits.items()}
    assert result.counts["conflicts"] == {"loyalty_tier": 3}
    held = tryton.rpc.crm_values()
    codes = _codes(tryton)
    for cid, tier in edits.items():
        values = held[codes[int(cid)]]
        assert values["loyalty_tier"] == tier  # the person's value
        assert len(values) > 20  # and every other key was written
    # The next run sees the edits as drift and keeps them (policy "keep").
    again = _sync(cfg)
    assert again.counts["drift"] == {"loyalty_tier": 3}
    assert again.plan.changes == []
    assert {cid: tryton.rpc.crm_values()[codes[int(cid)]]["loyalty_tier"] for cid in edits} == edits
    shown = run("runs", "show", str(result.run_id), "--changes", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"loyalty_tier +3 edited in the ERP during the run", shown.stdout)
    line = (
        f"{late[0]} loyalty_tier edited in the ERP: crm-bridge wrote None, found {edits[late[0]]}"
    )
    assert line in " ".join(shown.stdout.split())


class CrashAfter:
    """Stops the run after ``n`` confirmed calls, as a kill would: the call in
    flight lands in the ERP but is never recorded."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def __call__(self, _: int) -> None:
        self.seen += 1
        if self.seen == self.n:
            raise RuntimeError("killed")


@pytest.mark.parametrize("policy", ["keep", "overwrite"])
def test_the_resend_after_a_crash_does_not_overwrite_an_edit(
    tryton: Tryton, tmp_path: Path, policy: str
) -> None:
    extra = f'field_policy = {{ loyalty_tier = "{policy}" }}\n'
    cfg = _config(tryton, tmp_path / "crm-bridge.toml", sync_extra=extra)
    cfg.path.write_text(cfg.path.read_text().replace("batch_size = 100", "batch_size = 20"))
    cfg = config_mod.load(cfg.path)
    _provision(cfg.path)
    with pytest.raises(RuntimeError, match="killed"):
        _sync(cfg, on_call=CrashAfter(2))
    with closing(sqlite3.connect(tmp_path / "state.db")) as db:
        pending = db.execute(
            "SELECT cells FROM journal WHERE confirmed_at IS NULL ORDER BY call_no DESC"
        ).fetchone()
    cells = json.loads(pending[0])
    victim, _, _, planned = next(c for c in cells if c[1] == "loyalty_tier")
    hand = "gold" if json.loads(planned) != "gold" else "silver"
    tryton.rpc("model.party.party.write", [int(victim)], {"crm": {"loyalty_tier": hand}})

    again = _sync(cfg)
    assert again.status == "ok"
    assert again.counts["resumed_calls"] >= 1
    held = tryton.rpc.crm_values()[_codes(tryton)[int(victim)]]
    if policy == "keep":
        assert held["loyalty_tier"] == hand
        assert again.counts["drift"] == {"loyalty_tier": 1}
    else:  # reported, then put back by the plan of the same run
        assert held["loyalty_tier"] == json.loads(planned)
        assert again.counts["drift"] == {"loyalty_tier": 1}
    with closing(sqlite3.connect(tmp_path / "state.db")) as db:
        edits = db.execute("SELECT customer_id, field, seen FROM edits").fetchall()
    assert (victim, "loyalty_tier", "write") in edits
    # The history: the crashed run failed with what the ERP confirmed of it.
    listed = run("runs", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    history = json.loads(listed.stdout)
    assert [r["status"] for r in history] == ["ok", "failed"]
    assert history[1]["written_customers"] == 40
    assert history[1]["counts"]["planned_customers"] > 250


def test_a_value_cleared_by_hand_is_reported_and_kept_under_keep(
    tryton: Tryton, tmp_path: Path
) -> None:
    cfg = _config(tryton, tmp_path / "crm-bridge.toml", sync_extra=KEEP_TIER)
    _provision(cfg.path)
    assert _sync(cfg).status == "ok"
    code, values = next((c, v) for c, v in sorted(tryton.rpc.crm_values().items()) if v)
    tryton.rpc("model.party.party.write", [tryton.rpc.party_ids()[code]], {"crm": None})
    again = _sync(cfg)
    assert again.counts["drift"] == {name: 1 for name in sorted(values)}
    held = tryton.rpc.crm_values()[code]
    assert "loyalty_tier" not in held  # kept as the person left it: empty
    assert held == {k: v for k, v in values.items() if k != "loyalty_tier"}


class Exits:
    def __init__(self, name: str, how: Any) -> None:
        self.name, self.how = name, how

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field(f"{self.name}_x", "integer", "X")]

    @hookimpl
    def compute(self, snapshot, settings) -> pl.DataFrame | None:
        return self.how()


def _raise(exc: BaseException) -> Any:
    def go() -> None:
        raise exc

    return go


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        (_raise(SystemExit(0)), "raised SystemExit: 0"),
        (_raise(KeyboardInterrupt()), "raised KeyboardInterrupt"),
        (lambda: None, "returned NoneType, expected a polars DataFrame or LazyFrame"),
    ],
)
def test_a_plugin_cannot_fake_success(tmp_path: Path, how: Any, reason: str) -> None:
    cfg, plugins, _ = setup(tmp_path, (Exits("faker", how), "faker"))
    result = sync(cfg, plugins)
    assert result.status == "partial" and result.exit_code == 3
    assert [(r.plugin, r.reason.split(" (")[0]) for r in result.rejections] == [("faker", reason)]
    assert result.applied is not None and result.applied.written > 0  # the others wrote


def test_a_rejected_plugin_keeps_its_values_and_an_empty_one_clears_them(tmp_path: Path) -> None:
    values = {"cid": None}

    class Sometimes:
        @hookimpl
        def declare_fields(self) -> list[Field]:
            return [Field("some_x", "integer", "X")]

        @hookimpl
        def compute(self, snapshot, settings) -> pl.DataFrame:
            if values["cid"] == "raise":
                raise ValueError("bad day")
            ids = snapshot.customers["customer_id"].head(5)
            if values["cid"] == "none":
                ids = ids.head(0)
            return pl.DataFrame({"customer_id": ids, "some_x": [1] * len(ids)})

    cfg, plugins, adapter = setup(tmp_path, (Sometimes(), "some"))
    sync(cfg, plugins)
    holders = {c for c, v in adapter.values.items() if "some_x" in v}
    assert len(holders) == 5
    values["cid"] = "raise"
    rejected = sync(cfg, plugins)
    assert rejected.status == "partial"
    assert {c for c, v in adapter.values.items() if "some_x" in v} == holders
    values["cid"] = "none"
    cleared = sync(cfg, plugins)
    assert cleared.counts["cleared_cells"] == 5 and cleared.counts["per_field"]["some_x"] == 5
    assert not any("some_x" in v for v in adapter.values.values())


def test_a_killed_run_is_marked_interrupted_by_the_next(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path)
    from crm_bridge.state import StateStore

    store = StateStore(cfg.state_path)
    dead = store.start_run(False)  # a run killed before it could finish
    store.close()
    result = sync(cfg, plugins)
    store = StateStore(cfg.state_path, readonly=True)
    try:
        record = store.run(dead)
        assert record is not None and record["status"] == "interrupted"
        assert f"found by run {result.run_id}" in record["message"]
        assert store.run(result.run_id or 0)["status"] == "ok"  # type: ignore[index]
    finally:
        store.close()


def test_one_new_invoice_rewrites_only_what_really_moved(tmp_path: Path) -> None:
    from decimal import Decimal

    from crm_bridge.snapshot import frame
    from crm_bridge.testing import invoice

    cfg, plugins, adapter = setup(tmp_path)
    assert sync(cfg, plugins).status == "ok"
    snap = adapter.snapshot
    buyer = snap.invoices["customer_id"][0]
    day = cfg.as_of - dt.timedelta(days=1)
    new = frame("invoices", [invoice("new-1", buyer, day, 250.0, paid=day)])
    snap.invoices = pl.concat([snap.invoices, new], how="vertical_relaxed")
    again = sync(cfg, plugins)
    plan = again.plan
    # The CLV model is refitted on the new data: predictions that moved by 1 % or
    # less are not worth a write; those that moved more are.
    assert plan.held_back > 0 and again.counts["held_back_cells"] == plan.held_back
    clv = [c for c in plan.changes if c.field == "kpi_clv_12m" and c.old and c.new]
    assert all(abs(c.new - c.old) > Decimal("0.01") * c.old for c in clv)
    assert buyer in {c.customer_id for c in plan.changes}
    held = adapter.values
    assert all(held[c.customer_id]["kpi_clv_12m"] == c.new for c in clv)  # written where it moved


def test_a_run_that_fails_part_way_keeps_what_the_erp_confirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single-record ERP (Dolibarr's REST profile, on its fake) fails after some
    PUTs: the run is recorded failed with those customers written and listed; the
    next run resends only the others; each customer is in the audit trail once."""
    import responses
    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from . import fake_erps

    erp = fake_erps.Dolibarr()
    handle = erp.handle
    puts: list[str] = []
    broken = {"on": True}
    last = {"id": ""}

    def failing(method: str, path: str, query: Any, body: Any, headers: Any) -> Any:
        if method == "PUT" and "/thirdparties/" in path:
            cid = path.rsplit("/", 1)[-1]
            puts.append(cid)
            if broken["on"] and cid == last["id"]:  # the last customer of the plan
                return 403, {}, json.dumps({"error": {"code": 403, "message": "Forbidden"}})
        return handle(method, path, query, body, headers)

    erp.handle = failing  # type: ignore[method-assign]
    monkeypatch.setenv("DOLI_KEY", erp.key)
    config = tmp_path / "crm-bridge.toml"
    config.write_text(
        f'[erp]\nadapter = "dolibarr"\nurl = "{erp.base}/api/index.php"\n'
        'api_key = "${DOLI_KEY}"\n[sync]\nas_of = "2024-04-30"\n[state]\npath = "state.db"\n'
    )

    def run_cli(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), *args], obj=load_plugins())

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        assert run_cli("fields", "provision").exit_code == 0
        dry = sync(config_mod.load(config), load_plugins(), dry_run=True)
        customers = dry.plan.customers
        ids = sorted({c.customer_id for c in dry.plan.changes})
        assert customers == len(ids) >= 2
        last["id"] = ids[-1]
        failed = run_cli("sync", "--json")
        assert failed.exit_code == 1
        history = json.loads(run_cli("runs", "--json").stdout)
        assert history[0]["status"] == "failed"
        # The PUTs before the refused one were confirmed: on record, and listed.
        assert history[0]["written_customers"] == customers - 1
        shown = json.loads(run_cli("runs", "show", "1", "--changes", "--json").stdout)
        assert {c["customer_id"] for c in shown["changes"]} == set(ids[:-1])
        broken["on"] = False
        again = run_cli("sync", "--json")
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["counts"]["resumed_customers"] == 1
    with closing(sqlite3.connect(tmp_path / "state.db")) as db:
        per_customer = db.execute(
            "SELECT customer_id, count(DISTINCT run_id) FROM changes GROUP BY customer_id"
        ).fetchall()
    assert len(per_customer) == customers
    assert all(runs == 1 for _, runs in per_customer)  # nothing doubled
