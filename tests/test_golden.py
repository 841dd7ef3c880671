"""The golden company through a whole sync (MemoryAdapter): every value equals the
hand-computed one (tests/golden/expected.py, computed from docs/plugins/*.md, not by
the plugins); kpi_clv_12m and loyalty_reason by documented properties and numbers."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.snapshot import Snapshot
from crm_bridge.sync import sync
from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin

from .golden import data
from .golden.expected import EXPECTED, PROPERTY_CHECKED


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What one sync of the golden company writes, per customer."""
    folder: Path = tmp_path_factory.mktemp("golden")
    adapter = MemoryAdapter(Snapshot.from_rows(data.AS_OF, **data.tables()))
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    adapter.provision(list(plugins.fields().values()))
    path = folder / "crm-bridge.toml"
    path.write_text(
        f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{data.AS_OF}"\n[state]\npath = "s.db"\n'
    )
    result = sync(config_mod.load(path), plugins)
    assert result.status == "ok", result
    return {cid: dict(values) for cid, values in adapter.values.items() if values}


def _same(held: Any, expected: Any) -> bool:
    if isinstance(held, dt.date):
        return held.isoformat() == expected
    if isinstance(held, float | Decimal) and not isinstance(expected, str):
        return abs(float(held) - float(expected)) < 1e-9
    return bool(held == expected)


def assert_golden(held: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    """Each expected customer holds exactly the expected values (the property-checked
    fields aside): every difference named in one assertion."""
    wrong = {}
    for cid, values in expected.items():
        cells = {k: v for k, v in held[cid].items() if k not in PROPERTY_CHECKED}
        if set(cells) != set(values):
            wrong[cid, "fields"] = (
                sorted(set(cells) - set(values)),
                sorted(set(values) - set(cells)),
            )
        for name, value in values.items():
            if name in cells and not _same(cells[name], value):
                wrong[cid, name] = (cells[name], value)
    assert wrong == {}, "\n".join(
        f"{k}: held {v[0]!r}, expected {v[1]!r}" for k, v in wrong.items()
    )


def test_every_customer_holds_exactly_the_hand_computed_values(
    held: dict[str, dict[str, Any]],
) -> None:
    assert set(held) == set(EXPECTED)
    assert_golden(held, EXPECTED)


def test_clv_12m_by_its_documented_properties(held: dict[str, dict[str, Any]]) -> None:
    """BG/NBD x Gamma-Gamma: every buyer gets a finite value >= 0, and the customer
    silent for 486 days (C04, one repeat purchase) is worth less than every customer
    who bought in the last six months."""
    clv = {cid: float(v["kpi_clv_12m"]) for cid, v in held.items() if "kpi_clv_12m" in v}
    assert set(clv) == {"C01", "C02", "C03", "C04", "C05", "C07", "C08"}
    assert all(math.isfinite(v) and v >= 0 for v in clv.values())
    assert clv["C04"] == min(clv.values())
    assert all(clv["C04"] < clv[c] for c in ("C01", "C02", "C05", "C07", "C08"))


def test_the_loyalty_reason_states_the_hand_computed_numbers(
    held: dict[str, dict[str, Any]],
) -> None:
    reasons = {cid: v["loyalty_reason"] for cid, v in held.items() if "loyalty_reason" in v}
    assert set(reasons) == {"C01", "C02", "C03", "C04", "C05", "C07", "C08"}
    # the documented example, word for word, with C01's numbers
    assert reasons["C01"] == (
        "Gold: 365-day spend 12000, 6 invoices; paid on time (meets spend >= 10,000, >= 4 invoices)"
    )
    assert reasons["C02"].startswith("Silver: 365-day spend 9100, 3 invoices")
    assert "; paid 15 days late on average" in reasons["C02"]  # (30 + 0) / 2
    assert "; paid 15 days late on average" in reasons["C07"]
    assert reasons["C03"].startswith("Bronze: 365-day spend 500, 1 invoice;")
    assert reasons["C05"].startswith("Member: 365-day spend 300, 1 invoice;")
    assert "oldest overdue invoice 131 days" in reasons["C03"]  # 2026-02-19 .. 2026-06-30
    assert reasons["C04"].startswith("Member: 365-day spend 0, 0 invoices")


def test_paid_invoices_without_a_payment_date_are_not_overdue(tmp_path: Path) -> None:
    """Odoo, ERPNext and NAV mark an invoice paid without giving the payment date: such
    an invoice is not unpaid.  C01's six paid invoices, all past their due dates,
    would otherwise be 12,000.00 overdue and cap its gold tier (max 60 days overdue)."""
    tables = data.tables()
    for row in tables["invoices"]:
        if row["state"] == "paid":
            row["paid_date"] = None
    adapter = MemoryAdapter(Snapshot.from_rows(data.AS_OF, **tables))
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    adapter.provision(list(plugins.fields().values()))
    path = tmp_path / "crm-bridge.toml"
    path.write_text(f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{data.AS_OF}"\n')
    assert sync(config_mod.load(path), plugins).status == "ok"
    held = adapter.values
    overdue = {
        cid: float(v["kpi_overdue_amount"]) for cid, v in held.items() if "kpi_overdue_amount" in v
    }
    assert overdue == {c: 500.0 if c == "C03" else 0.0 for c in overdue}  # I301 only
    assert held["C01"]["loyalty_tier"] == "gold"
    assert "kpi_avg_days_late" not in held["C01"]  # no payment date: no lateness known
