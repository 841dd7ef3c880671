"""Fixtures: a real Tryton on SQLite (and on PostgreSQL) and loopback, built from a cached template.

The template (modules activated, company, chart of accounts, the demo's
generated customers and documents) is built once per machine and cached under
a key of the Tryton and module versions, the companion module, the data
profile and the year; each test that needs Tryton gets its own copy and its
own server process, stopped by process group at the end — including a server
a test started in its place (``tryton.server``); ``tests/leftovers.py`` fails the
run if any server is left.  ``tryton_pg`` is the same on a throwaway PostgreSQL
cluster (tests/postgres.py); ``tryton_db`` runs a test on both.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from crm_bridge.adapters.tryton.rpc import _default, _object_hook
from crm_bridge.adapters.tryton.sandbox import (
    ADMIN_PASSWORD,
    TrytonServer,
    build_template,
    template_end,
)

from crm_bridge.sample_data import Profile

from .postgres import PostgresCluster
from .postgres import build_template as build_pg_template
from .postgres import restore as restore_pg

# At session end: a server (or any process) the tests left running fails the run.
pytest_plugins = ["tests.leftovers"]

# The demo's own profile: the tests check what the demo shows.
PROFILE = Profile()
PASSWORD_ENV = "CRM_BRIDGE_TEST_PASSWORD"


@pytest.fixture(scope="session")
def tryton_template() -> Path:
    return build_template(PROFILE, echo=lambda m: print(m, flush=True))


class RawRPC:
    """Talks to Tryton with plain requests and Basic auth: independent of the adapter."""

    def __init__(self, url: str, database: str) -> None:
        self.endpoint = f"{url}/{database}/rpc/"
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.context: dict[str, Any] = {}
        self.context = self("model.res.user.get_preferences", True)

    def __call__(self, method: str, *params: Any) -> Any:
        import json

        args = [*params, self.context] if method.startswith("model.") else list(params)
        body = json.dumps({"id": 1, "method": method, "params": args}, default=_default)
        r = requests.post(self.endpoint, data=body, headers=self.headers, timeout=60)
        r.raise_for_status()
        payload = json.loads(r.text, object_hook=_object_hook)
        if payload.get("error"):
            raise RuntimeError(payload["error"])
        return payload["result"]

    def crm_values(self) -> dict[str, dict[str, Any]]:
        rows = self("model.party.party.search_read", [], 0, None, None, ["code", "crm"])
        return {r["code"]: r["crm"] or {} for r in rows if r["code"]}

    def party_ids(self) -> dict[str, int]:
        rows = self("model.party.party.search_read", [], 0, None, None, ["code"])
        return {r["code"]: r["id"] for r in rows if r["code"]}


def crm_in_sqlite(
    database: Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, str]]:
    """Read raw from a Tryton SQLite file that no server has open: each party's
    non-empty crm dict by code, the key definitions by name (``crm_bridge_field``
    rows) and the English date and number conventions (``ir_lang``)."""
    import datetime as dt
    import json
    import sqlite3
    from decimal import Decimal

    def tagged(obj: dict[str, Any]) -> Any:  # Tryton's JSON tags for Decimal and date
        if obj.get("__class__") == "Decimal":
            return Decimal(obj["decimal"])
        if obj.get("__class__") == "date":
            return dt.date(obj["year"], obj["month"], obj["day"])
        return obj

    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        parties = {
            r["code"]: json.loads(r["crm"], object_hook=tagged)
            for r in db.execute("SELECT code, crm FROM party_party WHERE crm IS NOT NULL")
        }
        keys = {r["name"]: dict(r) for r in db.execute("SELECT * FROM crm_bridge_field")}
        lang = dict(
            db.execute(
                "SELECT date, decimal_point, thousands_sep FROM ir_lang WHERE code = 'en'"
            ).fetchone()
        )
    return {c: v for c, v in parties.items() if v}, keys, lang


@dataclass
class Tryton:
    server: TrytonServer
    rpc: RawRPC
    end: Any
    directory: Path

    def config(self, path: Path, extra: str = "", password: str = f"${{{PASSWORD_ENV}}}") -> Path:
        path.write_text(
            "[erp]\n"
            'adapter = "tryton"\n'
            f'url = "{self.server.url}"\n'
            f'database = "{self.server.database}"\n'
            'username = "admin"\n'
            f'password = "{password}"\n\n'
            f'[sync]\nas_of = "{self.end.isoformat()}"\nbatch_size = 100\n\n'
            '[state]\npath = "state.db"\n' + extra,
            "utf-8",
        )
        return path


@contextlib.contextmanager
def serve_sqlite(template: Path, directory: Path) -> Iterator[Tryton]:
    """A copy of the SQLite ``template`` in ``directory``, served until the block ends."""
    directory.mkdir()
    shutil.copyfile(template, directory / "test.sqlite")
    server = TrytonServer(directory, "test").start()
    erp: Tryton | None = None
    try:
        erp = Tryton(server, RawRPC(server.url, "test"), template_end(template), directory)
        yield erp
    finally:
        server.stop()
        if erp:  # a test may serve the database again in its place (test_browser.py does)
            erp.server.stop()


@contextlib.contextmanager
def serve_postgresql(
    postgres: PostgresCluster, template: Path, directory: Path
) -> Iterator[Tryton]:
    """The PostgreSQL ``template`` restored into a database of its own, served until
    the block ends, then dropped."""
    directory.mkdir()
    database = f"test_{os.getpid()}_{next(_DATABASES)}"
    restore_pg(postgres, template, database)
    erp: Tryton | None = None
    server = TrytonServer(directory, database, uri=postgres.uri)
    try:
        server.start()
        erp = Tryton(server, RawRPC(server.url, database), template_end(template), directory)
        yield erp
    finally:
        server.stop()
        if erp:
            erp.server.stop()
        postgres.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def tryton(
    tryton_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tryton]:
    monkeypatch.setenv(PASSWORD_ENV, ADMIN_PASSWORD)
    with serve_sqlite(tryton_template, tmp_path / "tryton") as erp:
        yield erp


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL 15 cluster for the whole session (tests/postgres.py)."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tryton_pg_template(postgres: PostgresCluster) -> Path:
    return build_pg_template(postgres, PROFILE, echo=lambda m: print(m, flush=True))


@pytest.fixture
def tryton_pg(
    postgres: PostgresCluster,
    tryton_pg_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Tryton]:
    """Like ``tryton``, on PostgreSQL: the template restored into a database of its own."""
    monkeypatch.setenv(PASSWORD_ENV, ADMIN_PASSWORD)
    with serve_postgresql(postgres, tryton_pg_template, tmp_path / "tryton") as erp:
        yield erp


_DATABASES = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def tryton_db(request: pytest.FixtureRequest) -> Tryton:
    """A real Tryton on SQLite, then on PostgreSQL: the tests that must hold on both."""
    erp: Tryton = request.getfixturevalue("tryton" if request.param == "sqlite" else "tryton_pg")
    return erp


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRM_BRIDGE_LOAD_PLUGINS", "CRM_BRIDGE_CONFIG", "CRM_BRIDGE_TRACEBACK"):
        monkeypatch.delenv(name, raising=False)
    # Outputs are in English unless a test asks for a language (report and diagnose
    # follow the environment's locale).
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert "CRM_BRIDGE_LOAD_PLUGINS" not in os.environ
