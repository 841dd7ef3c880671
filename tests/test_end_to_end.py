"""End to end against a real Tryton: sync, re-sync, dry run, a third-party plugin."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import polars as pl
from crm_bridge.plugins import rfm

from crm_bridge import Field, Snapshot, hookimpl
from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sample_data import generate
from crm_bridge.sync import connect, sync

from .conftest import PROFILE, Tryton


def _provisioned_sync(cfg_path: Path, plugins=None, dry_run: bool = False):
    cfg = config_mod.load(cfg_path)
    plugins = plugins or load_plugins(cfg.disabled)
    adapter, fields = connect(cfg, plugins)
    adapter.provision(list(fields.values()))
    adapter.close()
    return sync(cfg, plugins, dry_run=dry_run)


def expected_rfm(tryton: Tryton) -> dict[str, dict]:
    """RFM computed straight from the generator's data, keyed by customer code."""
    import dataclasses

    snapshot = generate(dataclasses.replace(PROFILE, end=tryton.end))
    frame = rfm.compute(snapshot=snapshot, settings={})
    return {row["customer_id"]: row for row in frame.iter_rows(named=True)}


def test_sync_writes_rfm_values_that_tryton_holds(tryton: Tryton, tmp_path: Path) -> None:
    result = _provisioned_sync(tryton.config(tmp_path / "crm-bridge.toml"))
    assert result.status == "ok"
    expected = expected_rfm(tryton)
    held = tryton.rpc.crm_values()
    assert len(expected) > 200
    assert result.applied is not None and result.applied.written == len(expected)
    for code, row in expected.items():
        values = held[code]
        assert values["rfm_segment"] == row["rfm_segment"], code
        assert values["rfm_score"] == row["rfm_score"], code
        assert values["rfm_recency_days"] == row["rfm_recency_days"], code
        assert values["rfm_frequency"] == row["rfm_frequency"], code
        assert values["rfm_monetary"] == Decimal(str(round(row["rfm_monetary"], 2))), code
    never_bought = set(held) - set(expected)
    assert never_bought and all(not held[c] for c in never_bought)
    # Identical value sets share one write call: far fewer calls than customers.
    assert result.applied.calls <= len(expected) // 100 + 1


def test_second_sync_plans_and_writes_nothing(tryton: Tryton, tmp_path: Path) -> None:
    cfg = tryton.config(tmp_path / "crm-bridge.toml")
    first = _provisioned_sync(cfg)
    assert first.plan.customers > 0
    second = _provisioned_sync(cfg)
    assert second.plan.changes == []
    assert second.applied is not None and second.applied.calls == 0


def test_dry_run_changes_nothing_anywhere(tryton: Tryton, tmp_path: Path) -> None:
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provisioned_sync(cfg_path)
    state = tmp_path / "state.db"
    ids = tryton.rpc.party_ids()
    code = sorted(c for c, v in tryton.rpc.crm_values().items() if v)[0]
    held = tryton.rpc.crm_values()[code]
    # A person edits a crm-bridge value by hand: the dry run plans to put it back.
    edited = {**held, "rfm_score": "111"}
    tryton.rpc("model.party.party.write", [ids[code]], {"crm": edited})
    before_erp = tryton.rpc.crm_values()
    before_write_dates = tryton.rpc(
        "model.party.party.search_read", [], 0, None, None, ["write_date"]
    )
    before_state = hashlib.sha256(state.read_bytes()).hexdigest()

    result = _provisioned_sync(cfg_path, dry_run=True)

    assert [(c.field, c.old, c.new) for c in result.plan.changes] == [
        ("rfm_score", "111", held["rfm_score"])
    ]
    assert result.run_id is None and result.applied is None
    assert tryton.rpc.crm_values() == before_erp
    assert (
        tryton.rpc("model.party.party.search_read", [], 0, None, None, ["write_date"])
        == before_write_dates
    )
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before_state


def test_dry_run_on_a_fresh_directory_creates_no_state(tryton: Tryton, tmp_path: Path) -> None:
    result = _provisioned_sync(tryton.config(tmp_path / "crm-bridge.toml"), dry_run=True)
    assert result.plan.customers > 200
    assert not (tmp_path / "state.db").exists()
    assert not any(tryton.rpc.crm_values().values())


class LoyaltyProbe:
    """A third-party plugin, registered in the test like an installed one."""

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("probe_invoices", "integer", "Invoices ever", "Count of posted invoices.")]

    @hookimpl
    def compute(self, snapshot: Snapshot, settings: dict) -> pl.DataFrame:
        return (
            snapshot.sales()
            .filter(pl.col("kind") == "invoice")
            .group_by("customer_id")
            .agg(probe_invoices=pl.len().cast(pl.Int64))
        )


def test_a_registered_plugin_field_reaches_tryton(tryton: Tryton, tmp_path: Path) -> None:
    plugins = load_plugins()
    plugins.register(LoyaltyProbe(), "probe")
    result = _provisioned_sync(tryton.config(tmp_path / "crm-bridge.toml"), plugins)
    assert result.status == "ok"
    fields = tryton.rpc(
        "model.crm_bridge.field.search_read", [], 0, None, None, ["name", "owner", "type_"]
    )
    assert {"name": "probe_invoices", "owner": "probe", "type_": "integer"} in [
        {k: f[k] for k in ("name", "owner", "type_")} for f in fields
    ]
    import dataclasses

    snap = generate(dataclasses.replace(PROFILE, end=tryton.end))
    counts = dict(
        snap.sales().filter(pl.col("kind") == "invoice").group_by("customer_id").len().iter_rows()
    )
    held = tryton.rpc.crm_values()
    assert {c: v["probe_invoices"] for c, v in held.items() if "probe_invoices" in v} == counts
