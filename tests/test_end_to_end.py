"""End to end against a real Tryton: sync, re-sync, dry run, a third-party plugin."""

from __future__ import annotations

import dataclasses
import hashlib
from decimal import Decimal
from pathlib import Path

import polars as pl

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


def expected_values(tryton: Tryton) -> dict[str, dict]:
    """Every built-in plugin's values computed straight from the generator's data,
    keyed by customer code (the generated customer id), normalised as declared."""
    snapshot = generate(dataclasses.replace(PROFILE, end=tryton.end))
    plugins = load_plugins()
    fields = plugins.fields()
    out: dict[str, dict] = {}
    for _name, function in plugins.compute_impls():
        for row in function(snapshot=snapshot, settings={}).iter_rows(named=True):
            cells = out.setdefault(row.pop("customer_id"), {})
            cells.update({k: fields[k].normalize(v) for k, v in row.items() if v is not None})
    return out


def assert_holds(held: dict[str, dict], expected: dict[str, dict]) -> None:
    """The ERP holds exactly the expected values, key for key and value for value
    (numbers to one unit of their last digit: sums in another row order)."""
    fields = load_plugins().fields()
    assert {c for c, v in held.items() if v} == set(expected)
    for code, values in expected.items():
        assert set(held[code]) == set(values), code
        for name, value in values.items():
            if fields[name].type == "numeric":
                step = Decimal(1).scaleb(-fields[name].digits)
                assert abs(held[code][name] - value) <= step, (code, name)
            else:
                assert held[code][name] == value, (code, name)


def test_sync_writes_every_field_as_computed(tryton_db: Tryton, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL."""
    tryton = tryton_db
    result = _provisioned_sync(tryton.config(tmp_path / "crm-bridge.toml"))
    assert result.status == "ok", result.rejections
    fields = load_plugins().fields()
    expected = expected_values(tryton)
    held = tryton.rpc.crm_values()
    assert len(expected) > 250
    assert result.applied is not None and result.applied.written == len(expected)
    assert_holds(held, expected)
    # The demo data produces every declared field; loyalty_below_since only
    # appears from a second run on (it needs a previous tier: tests/test_loyalty.py).
    seen_fields = {name for values in expected.values() for name in values}
    assert seen_fields == set(fields) - {"loyalty_below_since"}
    never_bought = set(held) - set(expected)
    assert never_bought and all(not held[c] for c in never_bought)
    # Customers with identical value sets would share a write pair; here each
    # set is unique, and up to batch_size (100) customers share one call.
    assert result.applied.calls == -(-len(expected) // 100)


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
    snap = generate(dataclasses.replace(PROFILE, end=tryton.end))
    counts = dict(
        snap.sales()
        .filter(pl.col("kind") == "invoice")
        .group_by("customer_id")
        .len()
        .collect()
        .iter_rows()
    )
    held = tryton.rpc.crm_values()
    assert {c: v["probe_invoices"] for c, v in held.items() if "probe_invoices" in v} == counts


def test_payments_and_paid_dates_come_from_the_books(tryton: Tryton, tmp_path: Path) -> None:
    from crm_bridge.adapters.tryton.adapter import TrytonAdapter

    cfg = config_mod.load(tryton.config(tmp_path / "crm-bridge.toml"))
    generated = generate(dataclasses.replace(PROFILE, end=tryton.end))
    # Payments read on their own (without the invoices first) are the bank lines only.
    alone = TrytonAdapter(cfg.erp)
    payments = [r for page in alone.extract("payments") for r in page]
    alone.close()
    assert len(payments) == generated.payments.height
    assert round(sum(p["amount"] for p in payments), 2) == round(
        generated.payments["amount"].sum(), 2
    )
    assert all(p["invoice_id"] for p in payments)
    adapter = TrytonAdapter(cfg.erp)
    invoices = [r for page in adapter.extract("invoices") for r in page]
    adapter.close()
    paid = sorted(str(r["paid_date"]) for r in invoices if r["paid_date"])
    generated_paid = generated.invoices.filter(pl.col("kind") == "invoice")["paid_date"]
    assert paid == sorted(str(d) for d in generated_paid.drop_nulls())
    assert len(paid) > 1000


def test_nothing_but_the_crm_field_changes_in_tryton(tryton: Tryton, tmp_path: Path) -> None:
    names = [
        "name",
        "code",
        "active",
        "lang",
        "categories",
        "addresses",
        "identifiers",
        "contact_mechanisms",
        "replaced_by",
    ]
    before = tryton.rpc("model.party.party.search_read", [], 0, None, [("id", "ASC")], names)
    fields_before = tryton.rpc(
        "model.ir.model.field.search_read", [("model", "=", "party.party")], 0, None, None, ["name"]
    )
    result = _provisioned_sync(tryton.config(tmp_path / "crm-bridge.toml"))
    assert result.applied is not None and result.applied.written > 250
    after = tryton.rpc("model.party.party.search_read", [], 0, None, [("id", "ASC")], names)
    assert after == before
    assert (
        tryton.rpc(
            "model.ir.model.field.search_read",
            [("model", "=", "party.party")],
            0,
            None,
            None,
            ["name"],
        )
        == fields_before
    )
