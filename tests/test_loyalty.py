"""Loyalty tiers by hand, hysteresis across runs through the state store, points."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from pathlib import Path

import polars as pl
from crm_bridge.plugins import loyalty
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_bridge import Snapshot
from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import sync
from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin
from crm_bridge.testing import invoice as inv

D = dt.date


INVOICES = [
    # G: gold at first, then slides below its thresholds.
    *(inv(f"g{m}", "G", D(2025, m, 1), 3000.0, paid=D(2025, m, 20)) for m in (3, 4, 5, 6)),
    inv("g9", "G", D(2026, 1, 15), 500.0, paid=D(2026, 2, 1)),
    # P: gold spend, but one invoice unpaid 70 days past due on 2026-01-31.
    *(inv(f"p{m}", "P", D(2025, m, 1), 5000.0, paid=D(2025, m, 25)) for m in (5, 6, 7)),
    inv("p9", "P", D(2025, 10, 24), 6000.0, due=D(2025, 11, 22)),
    # U: bronze at first, gold as soon as it buys more.
    inv("u1", "U", D(2026, 1, 10), 800.0, paid=D(2026, 1, 12)),
    *(inv(f"u{m}", "U", D(2026, 2, m), 3000.0, paid=D(2026, 2, m + 1)) for m in (2, 3, 4, 5)),
]


def run(tmp_path: Path, adapter: MemoryAdapter, as_of: str) -> dict[str, dict]:
    path = tmp_path / "crm-bridge.toml"
    path.write_text(
        f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{as_of}"\n'
        '[state]\npath = "state.db"\n[plugins]\ndisabled = ["segmentation", "kpis"]\n'
    )
    plugins = load_plugins(["segmentation", "kpis"])
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    result = sync(config_mod.load(path), plugins)
    assert result.status == "ok", result.rejections
    return adapter.values


def test_tiers_hysteresis_and_payment_caps_across_runs(tmp_path: Path) -> None:
    snap = Snapshot.from_rows(
        as_of=D(2026, 1, 31),
        customers=[{"customer_id": c, "name": c, "active": True} for c in "GPU"],
        invoices=INVOICES,
    )
    adapter = MemoryAdapter(snap)

    v = run(tmp_path, adapter, "2026-01-31")
    assert v["G"]["loyalty_tier"] == "gold" and v["G"].get("loyalty_below_since") is None
    assert v["G"]["loyalty_reason"] == (
        "Gold: 365-day spend 12500, 5 invoices; paid on time (meets spend >= 10,000, >= 4 invoices)"
    )
    # P has the spend of gold but an invoice 70 days overdue: capped at silver at once.
    assert v["P"]["loyalty_tier"] == "silver"
    assert v["P"]["loyalty_reason"].endswith(
        "oldest overdue invoice 70 days (capped by payment conditions)"
    )
    assert v["U"]["loyalty_tier"] == "bronze"

    v = run(tmp_path, adapter, "2026-04-15")
    # G qualifies only for silver now: kept gold, grace starts today.
    assert v["G"]["loyalty_tier"] == "gold"
    assert v["G"]["loyalty_below_since"] == D(2026, 4, 15)
    assert "kept during the grace period" in v["G"]["loyalty_reason"]
    # U upgrades at once.
    assert v["U"]["loyalty_tier"] == "gold"

    v = run(tmp_path, adapter, "2026-06-15")
    assert v["G"]["loyalty_tier"] == "gold"  # 61 days below: still in grace
    assert v["G"]["loyalty_below_since"] == D(2026, 4, 15)

    v = run(tmp_path, adapter, "2026-07-20")
    # 96 days below gold: down to what it qualifies for now (500 spend: bronze).
    assert v["G"]["loyalty_tier"] == "bronze"
    assert v["G"].get("loyalty_below_since") is None
    assert float(v["G"]["loyalty_discount"]) == 2.0


def test_points_balance_expiry_and_credit_notes() -> None:
    snap = Snapshot.from_rows(
        as_of=D(2026, 6, 30),
        customers=[{"customer_id": "A", "name": "A", "active": True}],
        invoices=[
            inv("1", "A", D(2025, 6, 1), 999.0),  # expired (older than 365 days)
            inv("2", "A", D(2025, 7, 15), 120.6),  # expires 2026-07-15: within 30 days
            inv("3", "A", D(2026, 3, 1), 400.0),
            {**inv("4", "A", D(2026, 3, 20), -100.0), "kind": "credit_note"},
        ],
    )
    row = loyalty.points(snap, 1.0, 365).row(0, named=True)
    assert row["loyalty_points"] == 120 + 400 - 100
    assert row["loyalty_points_expiring"] == 120
    assert row["loyalty_next_expiry"] == D(2026, 7, 15)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 50000, allow_nan=False), min_size=1, max_size=40))
def test_more_spend_never_means_a_lower_tier(spends: list[float]) -> None:
    tiers = [
        {"key": "gold", "min_spend": 20000},
        {"key": "silver", "min_spend": 5000},
        {"key": "bronze", "min_spend": 1000},
    ]
    m = pl.DataFrame(
        {
            "customer_id": [str(i) for i in range(len(spends))],
            "spend": spends,
            "purchases": [1] * len(spends),
            "margin": [0.0] * len(spends),
            "avg_days_late": [0.0] * len(spends),
            "overdue_days": [0] * len(spends),
        }
    )
    none = pl.DataFrame(
        schema={"customer_id": pl.Categorical, "prev_tier": pl.String, "prev_below_since": pl.Date}
    )
    out = loyalty.tiers(m, tiers, D(2026, 1, 1), 90, none)
    ranked = sorted(zip(out["spend"], out["rank"], strict=True))
    assert all(a[1] >= b[1] for a, b in pairwise(ranked))
