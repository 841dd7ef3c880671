"""The golden company in a live Dolibarr (tests/dolibarr_live.py), with PHP and
MariaDB in UTC, Europe/Riga and America/New_York (and PHP in New York over a
database in Riga): synced through the CLI and read
back raw with SQL on Dolibarr's database.  The values equal the hand-computed
table but for what the profile does not read (opportunities and complaints:
tests/test_golden_erps.py, ``expected_without_opportunities_and_complaints``); a
second run plans nothing; an invoice paid between runs is found however far west
the server is, and its lines stay.

Loaded through Dolibarr's REST API (``live.seed`` with the golden rows): I302 is
left out (the API cannot abandon an invoice; cancelled, it counts nowhere anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from crm_bridge.adapters.tryton.seed import write_rows
from crm_bridge.cli import cli

from crm_bridge.plugin_manager import load_plugins

from . import dolibarr_live as live
from .golden import data
from .test_golden import assert_golden
from .test_golden_erps import expected_without_opportunities_and_complaints

TREE = live.find_tree()
if TREE is None:
    pytest.skip(live.SKIP_REASON, allow_module_level=True)

# PHP's zone, MariaDB's zone: the same three, and PHP west of its database
ZONES = (
    ("UTC", "UTC"),
    ("Europe/Riga", "Europe/Riga"),
    ("America/New_York", "America/New_York"),
    ("America/New_York", "Europe/Riga"),
)


@pytest.fixture(scope="module")
def golden_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows(tmp_path_factory.mktemp("rows") / "golden.json", data.AS_OF, data.tables())


@pytest.fixture(scope="module", params=ZONES, ids=[f"php={p},db={d}" for p, d in ZONES])
def golden(
    request: pytest.FixtureRequest, golden_rows: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[live.Dolibarr, Path]]:
    """A live Dolibarr holding the golden company, PHP and MariaDB in their zones."""
    assert TREE is not None
    folder = tmp_path_factory.mktemp("golden-dolibarr")
    erp = live.start(
        TREE,
        folder / "dolibarr",
        request.param[0],
        rows=golden_rows,
        db_timezone=request.param[1],
    )
    try:
        yield erp, folder
    finally:
        erp.stop()


def _run(config: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], obj=load_plugins())
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["counts"] if "--json" in args else {}


def _raw(erp: live.Dolibarr) -> dict[str, dict[str, Any]]:
    """crm-bridge's extrafields as Dolibarr's database holds them, by customer code:
    numbers as the fields' types, dates as the DATE column's text."""
    fields = load_plugins().fields()
    names = sorted(fields)
    columns = ", ".join(f"e.crm_{n}" for n in names)
    rows = erp.sql(
        f"SELECT s.code_client, {columns} FROM llx_societe s "
        "LEFT JOIN llx_societe_extrafields e ON e.fk_object = s.rowid"
    )
    cast = {"integer": int, "numeric": float}
    out: dict[str, dict[str, Any]] = {}
    for code, *values in rows:
        assert code is not None
        out[code] = {
            n: cast.get(fields[n].type, str)(v)
            for n, v in zip(names, values, strict=True)
            if v is not None
        }
    return out


def test_live_dolibarr_holds_the_golden_values_and_finds_a_payment_made_between_runs(
    golden: tuple[live.Dolibarr, Path],
) -> None:
    erp, folder = golden
    admin = erp.config(folder / "admin.toml", key=live.ADMIN_KEY)
    config = erp.config(folder / "crm-bridge.toml")
    _run(admin, "fields", "provision")
    _run(config, "sync", "--json")
    raw = _raw(erp)
    expected = expected_without_opportunities_and_complaints()
    assert_golden(raw, expected)

    assert _run(config, "sync", "--json")["planned_cells"] == 0  # its watermark: the writes'

    lines = pl.read_parquet(folder / "tables" / "invoice_lines.parquet")
    (invoice,) = erp.sql("SELECT rowid FROM llx_facture WHERE ref_client = 'I204'")[0]
    bank = erp.sql("SELECT rowid FROM llx_bank_account")[0][0]
    transfer = erp.sql("SELECT id FROM llx_c_paiement WHERE code = 'VIR'")[0][0]
    erp.api(  # C02 pays I204 (due 2026-07-10) early, on 2026-06-28
        "POST",
        f"/invoices/{invoice}/payments",
        json={
            "datepaye": live._unix(data.AS_OF.replace(day=28)) + 12 * 3600,  # noon UTC
            "paymentid": int(str(transfer)),
            "closepaidinvoices": "yes",
            "accountid": int(str(bank)),
        },
    )
    counts = _run(config, "sync", "--json")
    # C02's invoices: I201 30 days late, I202 and I204 early -> 10 days late on average
    assert _raw(erp)["C02"]["kpi_avg_days_late"] == 10.0
    assert counts["written"] == 1, counts  # C02 only: nothing else moved
    after = pl.read_parquet(folder / "tables" / "invoice_lines.parquet")
    assert after.sort("line_id").equals(lines.sort("line_id"))  # the paid invoice's stay
