"""The pipeline on an in-memory adapter: observer hooks, rejected plugins, exit codes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
from click.testing import CliRunner
from crm_bridge.cli import cli

from crm_bridge import Field, hookimpl
from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sample_data import Profile, generate
from crm_bridge.sync import sync
from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin


def setup(tmp_path: Path, *extra: tuple[Any, str]):
    snap = generate(Profile(customers=60, end=dt.date(2026, 6, 30)))
    adapter = MemoryAdapter(snap)
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    for plugin, name in extra:
        plugins.register(plugin, name)
    path = tmp_path / "crm-bridge.toml"
    path.write_text('[erp]\nadapter = "memory"\n[sync]\nas_of = "2026-06-30"\nbatch_size = 7\n')
    return config_mod.load(path), plugins, adapter


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    def before_apply(self, plan, dry_run) -> None:
        self.seen.append(("before_apply", (len(plan.changes), dry_run)))

    @hookimpl
    def after_sync(self, result) -> None:
        self.seen.append(("after_sync", (result.status, result.run_id)))


def test_observers_see_the_plan_before_writes_and_the_result_after(tmp_path: Path) -> None:
    observer = Observer()
    cfg, plugins, adapter = setup(tmp_path, (observer, "observer"))
    dry = sync(cfg, plugins, dry_run=True)
    assert adapter.write_calls == []
    real = sync(cfg, plugins)
    assert observer.seen == [
        ("before_apply", (len(dry.plan.changes), True)),
        ("after_sync", ("ok", None)),
        ("before_apply", (len(real.plan.changes), False)),
        ("after_sync", ("ok", real.run_id)),
    ]
    # batch_size 7: no call carries more than 7 customers.
    assert max(sum(len(b.customer_ids) for b in call) for call in adapter.write_calls) <= 7
    assert real.applied is not None and real.applied.written == real.plan.customers


class Crashing:
    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("boom", "integer", "Boom")]

    @hookimpl
    def compute(self, snapshot, settings) -> pl.DataFrame:
        raise ZeroDivisionError("division by zero")


class WrongType:
    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("wrong_type", "integer", "Wrong")]

    @hookimpl
    def compute(self, snapshot, settings) -> pl.DataFrame:
        return snapshot.customers.select("customer_id", wrong_type=pl.lit("x"))


def test_bad_plugins_are_rejected_by_name_and_the_rest_is_written(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path, (Crashing(), "crashing"), (WrongType(), "wrongtype"))
    result = sync(cfg, plugins)
    assert result.status == "partial" and result.exit_code == 3
    reasons = {r.plugin: r.reason for r in result.rejections}
    assert reasons["crashing"] == "raised ZeroDivisionError: division by zero"
    assert reasons["wrongtype"].startswith("field 'wrong_type' for customer")
    assert "expects integer, got str 'x'" in reasons["wrongtype"]
    written = [v for v in adapter.values.values() if v]
    assert any("rfm_segment" in v for v in written)
    assert all("boom" not in v and "wrong_type" not in v for v in written)


def test_commands_contributed_through_the_hook_are_listed(tmp_path: Path) -> None:
    plugins = load_plugins()
    plugins.pm.hook.register_commands(cli=cli)
    result = CliRunner().invoke(cli, ["--help"], obj=plugins)
    assert result.exit_code == 0
    for command in ("init", "doctor", "fields", "sync", "plugins", "demo"):
        assert f"  {command} " in result.output


class BadRows(MemoryAdapter):
    """An ERP that sends broken records along with good ones."""

    def extract(self, table: str):
        rows = getattr(self.snapshot, table).to_dicts()
        if table == "invoices":
            rows += [
                {**rows[0], "invoice_id": "bad-amount", "amount": "12,50 EUR"},
                {**rows[0], "invoice_id": "bad-date", "date": "2026-13-45"},
                {**rows[0], "invoice_id": None},
                {**rows[0], "invoice_id": "ghost", "customer_id": "C9999999"},
                {**rows[0], "invoice_id": "weird", "kind": "proforma"},
                dict(rows[1]),
            ]
        if table == "invoice_lines":
            rows += [
                {**rows[0], "line_id": "orphan", "invoice_id": "ghost"},
                {**rows[0], "line_id": "stray", "invoice_id": "never-read"},
            ]
        yield rows


def test_malformed_erp_records_are_set_aside_with_reasons(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path)
    snap = generate(Profile(customers=60, end=dt.date(2026, 6, 30)))
    bad = BadRows(snap)
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(bad), "memory")
    result = sync(cfg, plugins)
    # Records set aside do not make a run fail: exit 0 (README, "Exit codes").
    assert result.status == "ok" and result.exit_code == 0
    q = result.counts["quarantined"]
    assert q["invoices"] == {
        "missing or unreadable invoice_id": {"count": 1, "example": None},
        "missing or unreadable date": {"count": 1, "example": "bad-date"},
        "missing or unreadable amount": {"count": 1, "example": "bad-amount"},
        "kind not one of invoice, credit_note": {"count": 1, "example": "weird"},
        "duplicate invoice_id": {"count": 1, "example": snap.invoices["invoice_id"][1]},
        "unknown customer": {"count": 1, "example": "ghost"},
    }
    assert q["invoice_lines"] == {
        "invoice set aside": {"count": 1, "example": "orphan"},  # "ghost" was read
        "unknown invoice": {"count": 1, "example": "stray"},
    }
    # The good records gave the same values as a clean ERP would.
    clean = MemoryAdapter(snap)
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(clean), "memory")
    (tmp_path / "clean").mkdir()
    cfg.path = tmp_path / "clean" / "crm-bridge.toml"
    sync(cfg, plugins)
    assert bad.values == clean.values


class Refusing(MemoryAdapter):
    """An ERP that refuses every write (say, a field definition was changed by hand)."""

    def write(self, batches):
        from crm_bridge.adapter import WriteResult

        self.write_calls.append(list(batches))
        return WriteResult(
            rejected={
                c: "CRM field rfm_score expects integer" for b in batches for c in b.customer_ids
            }
        )


def test_run_stops_early_when_most_writes_fail(tmp_path: Path) -> None:
    from crm_bridge.errors import ErpError
    from crm_bridge.state import StateStore

    cfg, _, _ = setup(tmp_path)
    adapter = Refusing(generate(Profile(customers=60, end=dt.date(2026, 6, 30))))
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    try:
        sync(cfg, plugins)
    except ErpError as exc:
        message = str(exc)
    else:
        raise AssertionError("the run did not stop")
    # 7 customers a call; the check after the third call stops the run, and the fourth,
    # already in flight (the next call goes out while one is recorded), is recorded too.
    assert message.startswith("stopped after the ERP refused 28 of the 28 customers sent")
    assert "first reason: CRM field rfm_score expects integer" in message
    assert len(adapter.write_calls) == 4
    run = StateStore(cfg.state_path, readonly=True).runs()[0]
    assert run["status"] == "failed" and run["message"].startswith("stopped after")
    assert len(run["rejected"]) == 28


class Hanging:
    """A plugin that does not finish until the test lets it."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.finished = threading.Event()

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("never_done", "integer", "Never done")]

    @hookimpl
    def compute(self, snapshot, settings) -> pl.DataFrame:
        self.release.wait(120)
        self.finished.set()
        return snapshot.customers.select("customer_id", never_done=pl.lit(1))


def test_a_hanging_plugin_is_abandoned_after_its_timeout(tmp_path: Path) -> None:
    hanging = Hanging()
    cfg, _, adapter = setup(tmp_path)
    # without kpis, whose model fit may take longer than 0.5 s on a busy machine
    plugins = load_plugins(disabled=["kpis"])
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    plugins.register(hanging, "hanging")
    cfg.data["sync"]["plugin_timeout"] = 0.5
    result = sync(cfg, plugins)
    assert not hanging.finished.is_set()  # the run ended while the plugin still hung
    hanging.release.set()
    assert [(r.plugin, r.reason) for r in result.rejections] == [
        ("hanging", "did not finish within 0.5s (sync.plugin_timeout)")
    ]
    assert result.status == "partial"
    assert any("rfm_segment" in v for v in adapter.values.values())
