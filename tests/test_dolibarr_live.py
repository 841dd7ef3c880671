"""The ``dolibarr`` profile against a live Dolibarr (MariaDB + PHP on loopback).

Values are checked against Dolibarr's own SQL or its raw REST answers, never
through the adapter under test. Without a Dolibarr tree the module is skipped
with one line saying how to get one (``make dolibarr-tree``).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import dolibarr_live as live

TREE = live.find_tree()
if TREE is None:
    pytest.skip(live.SKIP_REASON, allow_module_level=True)

from crm_bridge.adapters.rest.adapter import RestAdapter  # noqa: E402

from crm_bridge import mapping  # noqa: E402
from crm_bridge.testing import AdapterConformance  # noqa: E402

# The default instance's PHP timezone; CRM_BRIDGE_DOLIBARR_TZ runs the suite in another.
ZONE = os.environ.get("CRM_BRIDGE_DOLIBARR_TZ", "UTC")


@pytest.fixture(scope="session")
def dolibarr_tree() -> Path:
    assert TREE is not None
    live.template(TREE, echo=lambda m: print(m, flush=True))
    return TREE


def _instance(tree: Path, tmp_path: Path, zone: str) -> Iterator[live.Dolibarr]:
    erp = live.start(tree, tmp_path / "dolibarr", zone)
    try:
        yield erp
    finally:
        erp.stop()


@pytest.fixture
def dolibarr(dolibarr_tree: Path, tmp_path: Path) -> Iterator[live.Dolibarr]:
    yield from _instance(dolibarr_tree, tmp_path, ZONE)


@pytest.fixture
def dolibarr_brussels(dolibarr_tree: Path, tmp_path: Path) -> Iterator[live.Dolibarr]:
    yield from _instance(dolibarr_tree, tmp_path, "Europe/Brussels")


def adapter(erp: live.Dolibarr, key: str = live.SYNC_KEY, **settings: Any) -> RestAdapter:
    return RestAdapter(mapping.load("dolibarr"), {"url": erp.api_url, "api_key": key, **settings})


def rows(a: RestAdapter, table: str) -> list[dict[str, Any]]:
    return [r for page in a.extract(table) for r in page]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


# -- the conformance suite ------------------------------------------------------
class TestDolibarrConformance(AdapterConformance):
    """The suite every adapter passes, on a fresh live Dolibarr per test; the
    fields are created by an admin key (POST /setup/extrafields is admin-only)."""

    @pytest.fixture(autouse=True)
    def _erp(self, dolibarr: live.Dolibarr) -> None:
        self.erp = dolibarr

    def make_adapter(self) -> RestAdapter:
        return adapter(self.erp, live.ADMIN_KEY)

    def foreign(self, customer_id: str) -> dict[str, Any]:
        row = self.erp.sql(
            "SELECT nom, code_client, client, status, address, phone, email, note_private"
            f" FROM llx_societe WHERE rowid = {int(customer_id)}"
        )
        return {"row": row}
