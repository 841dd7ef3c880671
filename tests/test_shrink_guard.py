"""The sudden-empty guard (issue 14, 9): a rights problem must not look like an empty ERP.

In memory here; against a real Tryton whose API user loses the right to read
parties in ``test_quarantine_tryton.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from crm_bridge.cli import cli

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import Plugins, load_plugins
from crm_bridge.sample_data import Profile, generate
from crm_bridge.shrink_guard import ShrinkError, check
from crm_bridge.state import StateStore
from crm_bridge.sync import sync
from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin

AS_OF = dt.date(2026, 6, 30)


def test_no_customers_stops_even_on_a_first_run() -> None:
    with pytest.raises(ShrinkError) as caught:
        check({"customers": 0, "invoices": 0}, None)
    assert caught.value.exit_code == 4
    assert "the ERP served no customers" in str(caught.value)
    assert "may lack the right to read all customers" in str(caught.value)
    assert "adapter's filters" in str(caught.value)
    assert caught.value.hint and "crm-bridge sync --allow-shrink" in caught.value.hint


def test_far_fewer_customers_or_invoices_than_the_last_run_stops() -> None:
    last = (7, {"customers": 300, "invoices": 1700})
    check({"customers": 151, "invoices": 851}, last)  # just over half: goes on
    with pytest.raises(ShrinkError, match="149 customers where run 7 read 300"):
        check({"customers": 149, "invoices": 1700}, last)
    with pytest.raises(ShrinkError, match="10 invoices where run 7 read 1700"):
        check({"customers": 300, "invoices": 10}, last)
    check({"customers": 280, "invoices": 1000}, last, min_share=0.5)
    with pytest.raises(ShrinkError):
        check({"customers": 280, "invoices": 1000}, last, min_share=0.9)
    # Records set aside are named: a wholly unreadable ERP stops here too.
    with pytest.raises(ShrinkError, match="set aside as unusable: 1690 invoices"):
        check(
            {"customers": 300, "invoices": 10},
            last,
            quarantined={"invoices": {"date after 2026-12-02": {"count": 1690, "example": "9"}}},
        )


def setup(tmp_path: Path, share: float | None = None) -> tuple[Path, MemoryAdapter]:
    adapter = MemoryAdapter(generate(Profile(customers=60, end=AS_OF)))
    path = tmp_path / "crm-bridge.toml"
    quality = f"[quality]\nmin_read_share = {share}\n" if share is not None else ""
    path.write_text(f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{AS_OF}"\n{quality}')
    return path, adapter


def plugins_for(adapter: MemoryAdapter) -> Plugins:
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    return plugins


def test_a_shrunk_erp_stops_before_planning_and_allow_shrink_lets_it_through(
    tmp_path: Path,
) -> None:
    path, adapter = setup(tmp_path)
    first = sync(config_mod.load(path), plugins_for(adapter))
    assert first.status == "ok" and first.applied and first.applied.written > 0
    # The API user now sees a third of the customers (and their invoices).
    snap = adapter.snapshot
    kept = snap.customers["customer_id"].head(20).implode()
    for table in ("customers", "invoices", "invoice_lines", "payments"):
        frame = getattr(snap, table)
        setattr(snap, table, frame.filter(pl.col("customer_id").is_in(kept)))
    calls = len(adapter.write_calls)
    for dry_run in (True, False):
        with pytest.raises(ShrinkError, match=r"20 customers where run \d+ read 60"):
            sync(config_mod.load(path), plugins_for(adapter), dry_run=dry_run)
    assert len(adapter.write_calls) == calls  # nothing written
    store = StateStore(config_mod.load(path).state_path, readonly=True)
    stopped = store.runs(limit=1)[0]
    store.close()
    assert stopped["status"] == "failed" and "may lack the right" in stopped["message"]
    # Through the CLI: exit 4 with the message; --allow-shrink goes on.
    runner = CliRunner()
    args = ["--config", str(path), "sync", "--quiet"]
    refused = runner.invoke(cli, args, obj=plugins_for(adapter))
    assert refused.exit_code == 4, refused.output
    assert "stopped before planning" in refused.output
    assert "--allow-shrink" in refused.output
    allowed = runner.invoke(cli, [*args, "--allow-shrink"], obj=plugins_for(adapter))
    assert allowed.exit_code == 0, allowed.output
    # The shrunk run is now the last successful one: the next run compares with it.
    assert sync(config_mod.load(path), plugins_for(adapter)).status == "ok"


def test_the_threshold_is_configurable(tmp_path: Path) -> None:
    path, adapter = setup(tmp_path, share=0.1)
    sync(config_mod.load(path), plugins_for(adapter))
    snap = adapter.snapshot
    kept = snap.customers["customer_id"].head(20).implode()
    snap.customers = snap.customers.filter(pl.col("customer_id").is_in(kept))
    snap.invoices = snap.invoices.filter(pl.col("customer_id").is_in(kept))
    assert sync(config_mod.load(path), plugins_for(adapter)).status == "ok"
