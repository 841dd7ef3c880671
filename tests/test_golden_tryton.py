"""The golden company loaded into a real Tryton, on SQLite and on PostgreSQL, synced
through the CLI, and read back raw (plain JSON-RPC with requests, never the adapter):
every value equals the hand-computed table (tests/golden/expected.py).

Tryton reads everything the table needs (payment dates from the reconciliations,
complaints from sale_complaint, quotes, opportunities), so no field is excepted.
The database is loaded by the demo's own loader (``seed.py --rows``): invoices are
posted with their moves, the paid ones reconciled with bank lines on their payment
dates (I701 in two parts), I302 cancelled, I303 left a draft.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, build_template
from crm_bridge.adapters.tryton.seed import write_rows
from crm_bridge.cli import cli

from crm_bridge.plugin_manager import load_plugins

from .conftest import PASSWORD_ENV, PROFILE, Tryton, serve_postgresql, serve_sqlite
from .golden import data
from .golden.expected import EXPECTED
from .postgres import PostgresCluster
from .postgres import build_template as build_pg_template
from .test_golden import assert_golden


@pytest.fixture(scope="module")
def golden_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden tables as the loader's rows file (its bytes key the cached template)."""
    return write_rows(tmp_path_factory.mktemp("rows") / "golden.json", data.AS_OF, data.tables())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(
    request: pytest.FixtureRequest, golden_rows: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Tryton, dict[str, dict[str, Any]], dict[str, Any]]]:
    """A Tryton holding the golden company, after provisioning and one sync; with
    the raw values it holds then and the counts of a second (incremental) sync."""
    folder = tmp_path_factory.mktemp(f"golden-{request.param}")
    echo = lambda m: print(m, flush=True)  # noqa: E731
    if request.param == "sqlite":
        served = serve_sqlite(build_template(PROFILE, echo, rows=golden_rows), folder / "tryton")
    else:
        postgres: PostgresCluster = request.getfixturevalue("postgres")
        template = build_pg_template(postgres, PROFILE, echo, rows=golden_rows)
        served = serve_postgresql(postgres, template, folder / "tryton")
    with served as erp, pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, ADMIN_PASSWORD)
        assert erp.end == data.AS_OF
        config = erp.config(folder / "crm-bridge.toml")

        def run(*args: str) -> Any:
            result = CliRunner().invoke(cli, ["--config", str(config), *args], obj=load_plugins())
            assert result.exit_code == 0, result.output
            return result

        run("fields", "provision")
        run("sync", "--json")
        held = erp.rpc.crm_values()
        again = json.loads(run("sync", "--json").stdout)["counts"]
        yield erp, held, again


def test_tryton_holds_exactly_the_hand_computed_values(
    synced: tuple[Tryton, dict[str, dict[str, Any]], dict[str, Any]],
) -> None:
    _, held, _ = synced
    # the company's own party and the salesman have no CRM values
    assert {code for code, values in held.items() if values} == set(EXPECTED)
    assert_golden(held, EXPECTED)
    # the property-checked fields are there for every buyer (tests/test_golden.py
    # checks their properties on the same rows)
    buyers = {c for c, v in EXPECTED.items() if "rfm_score" in v}
    assert {c for c, v in held.items() if "kpi_clv_12m" in v} == buyers
    assert held["C01"]["loyalty_reason"] == (
        "Gold: 365-day spend 12000, 6 invoices; paid on time (meets spend >= 10,000, >= 4 invoices)"
    )


def test_a_second_sync_of_the_golden_company_plans_nothing(
    synced: tuple[Tryton, dict[str, dict[str, Any]], dict[str, Any]],
) -> None:
    erp, held, again = synced
    assert again["planned_cells"] == 0
    assert erp.rpc.crm_values() == held
