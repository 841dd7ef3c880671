"""Incremental extraction against the real Tryton: after a full first run, a run reads
what changed since (inclusive watermark, rows merged by key) and computes exactly
what a full read would; a dry run moves nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import sync

from .conftest import Tryton
from .test_sync_engine import _provision


def _new_invoice(tryton: Tryton) -> int:
    """A draft invoice with one line for an existing customer, made over RPC."""
    rpc = tryton.rpc
    (template,) = rpc(
        "model.account.invoice.search_read",
        [("type", "=", "out")],
        0,
        1,
        None,
        [
            "company",
            "currency",
            "account",
            "journal",
            "payment_term",
            "lines",
            "party",
            "invoice_address",
        ],
    )
    (line,) = rpc(
        "model.account.invoice.line.read", template["lines"][:1], ["account", "unit", "product"]
    )
    party, address = template["party"], template["invoice_address"]
    (invoice,) = rpc(
        "model.account.invoice.create",
        [
            {
                "type": "out",
                "company": template["company"],
                "currency": template["currency"],
                "party": party,
                "invoice_address": address,
                "account": template["account"],
                "journal": template["journal"],
                "payment_term": template["payment_term"],
                "invoice_date": tryton.end,
                "lines": [
                    [
                        "create",
                        [
                            {
                                "type": "line",
                                "product": line["product"],
                                "description": "new",
                                "account": line["account"],
                                "unit": line["unit"],
                                "quantity": 3.0,
                                "unit_price": Decimal("12.50"),
                            }
                        ],
                    ]
                ],
            }
        ],
    )
    return int(invoice)


def test_a_second_run_reads_what_changed_and_matches_a_full_read(
    tryton: Tryton, tmp_path: Path
) -> None:
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg_path)
    cfg, plugins = config_mod.load(cfg_path), load_plugins()
    first = sync(cfg, plugins)
    assert first.counts["incremental"] == []
    total_lines = first.counts["read"]["invoice_lines"]
    assert first.counts["fetched"]["invoice_lines"] == total_lines

    _new_invoice(tryton)
    manifest = tmp_path / "tables" / "manifest.json"
    before = manifest.read_bytes()
    dry = sync(config_mod.load(cfg_path), plugins, dry_run=True)
    assert manifest.read_bytes() == before, "a dry run moved the watermarks"
    assert dry.counts["read"]["invoice_lines"] == total_lines + 1

    # The template's invoices were all written in one transaction: they share the
    # newest timestamp, so the inclusive watermark reads them all once more.
    second = sync(config_mod.load(cfg_path), plugins)
    assert second.counts["incremental"] == ["customers", "invoice_lines", "invoices"]
    assert second.counts["read"]["invoices"] == first.counts["read"]["invoices"] + 1
    _new_invoice(tryton)
    third = sync(config_mod.load(cfg_path), plugins)
    fetched = third.counts["fetched"]
    assert 1 <= fetched["invoices"] <= 3, fetched  # the new one and the boundary
    assert fetched["invoice_lines"] <= 3 and fetched["customers"] < 100, fetched
    assert third.counts["read"]["invoice_lines"] == total_lines + 2
    assert third.counts["read"]["invoices"] == first.counts["read"]["invoices"] + 2

    full = sync(config_mod.load(cfg_path), plugins, full=True)
    assert full.counts["incremental"] == []
    assert full.counts["read"] == third.counts["read"]
    assert full.counts["planned_cells"] == 0, "the incremental run computed other values"


def test_a_stale_cache_means_a_full_read(tryton: Tryton, tmp_path: Path) -> None:
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml", "")
    text = cfg_path.read_text().replace("[sync]\n", "[sync]\nfull_refresh_days = 0\n")
    cfg_path.write_text(text)
    _provision(cfg_path)
    plugins = load_plugins()
    sync(config_mod.load(cfg_path), plugins)
    again = sync(config_mod.load(cfg_path), plugins)
    assert again.counts["incremental"] == []
    assert again.counts["fetched"]["invoice_lines"] == again.counts["read"]["invoice_lines"]
