"""The ``dolibarr`` profile against a live Dolibarr (MariaDB + PHP on loopback).

Values are checked against Dolibarr's own SQL or its raw REST answers, never
through the adapter under test. Without a Dolibarr tree the module is skipped
with one line saying how to get one (``make dolibarr-tree``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.plugin_manager import load_plugins

from . import dolibarr_live as live

TREE = live.find_tree()
if TREE is None:
    pytest.skip(live.SKIP_REASON, allow_module_level=True)

from crm_bridge.adapters.rest.adapter import RestAdapter  # noqa: E402

from crm_bridge import mapping  # noqa: E402
from crm_bridge.adapter import Batch  # noqa: E402
from crm_bridge.testing import CONFORMANCE_FIELDS, AdapterConformance  # noqa: E402
from crm_bridge.topics import reading_order  # noqa: E402

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

    server_zone = ZONE

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

    def raw_values(self) -> dict[str, dict[str, Any]]:
        columns = [c for c in _columns(self.erp) if c.startswith("crm_")]
        if not columns:
            return {}
        rows = self.erp.sql(f"SELECT fk_object, {', '.join(columns)} FROM llx_societe_extrafields")
        return {
            str(r[0]): {c.removeprefix("crm_"): v for c, v in zip(columns, r[1:], strict=True)}
            for r in rows
        }

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        """tms set to the instant ``at`` (FROM_UNIXTIME: whatever the session's zone).
        Editing a line rewrites its invoice's totals (Facture::update_price), which
        moves the invoice's tms (ON UPDATE CURRENT_TIMESTAMP)."""
        stamp = f"FROM_UNIXTIME({int(at.timestamp())})"
        if table == "customers":
            self.erp.sql(f"UPDATE llx_societe SET tms = {stamp} WHERE rowid = {int(record_id)}")
            return
        where = f"rowid = {int(record_id)}"
        if table == "invoice_lines":
            where = (
                f"rowid = (SELECT fk_facture FROM llx_facturedet WHERE rowid = {int(record_id)})"
            )
        self.erp.sql(f"UPDATE llx_facture SET tms = {stamp} WHERE {where}")


# -- fields: provisioning and finding them (defects 1, 2) ------------------------------
def _declared() -> dict[str, Any]:
    from crm_bridge.plugin_manager import load_plugins

    return load_plugins().fields()


def _extrafields(erp: live.Dolibarr) -> dict[str, str]:
    rows = erp.sql("SELECT name, type FROM llx_extrafields WHERE elementtype = 'societe'")
    return {str(name): str(kind) for name, kind in rows}


def _columns(erp: live.Dolibarr) -> set[str]:
    return {str(r[0]) for r in erp.sql("SHOW COLUMNS FROM llx_societe_extrafields")}


def test_fields_provision_creates_every_field_once_and_doctor_finds_them(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    declared = _declared()
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.ADMIN_KEY)
    first = cli("fields", "provision", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    held = _extrafields(dolibarr)
    assert held.pop("crmbridge") == "separate"  # the CRM heading: no column
    assert set(held) == {f"crm_{name}" for name in declared}
    types = {"char": "varchar", "integer": "int", "numeric": "double", "boolean": "boolean"}
    types |= {"date": "date", "selection": "select"}
    assert all(held[f"crm_{n}"] == types[f.type] for n, f in declared.items())
    assert {f"crm_{name}" for name in declared} <= _columns(dolibarr)
    choices = erp_param(dolibarr, "crm_rfm_segment")
    assert set(choices) == {k for k, _ in declared["rfm_segment"].choices}
    # Idempotent: nothing created twice, nothing changed.
    again = cli("fields", "provision", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert '"changes": []' in again.stdout
    assert _extrafields(dolibarr) == {**held, "crmbridge": "separate"}
    # The sync user (not an admin) finds them: API_LOGINS_ALLOWED_FOR_GET_EXTRAFIELDS.
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    doctor = cli("doctor", cwd=tmp_path)
    assert f"{len(declared)}/{len(declared)} fields present" in doctor.stdout, doctor.stdout


def _list_settings(erp: live.Dolibarr) -> dict[str, tuple[str | None, ...]]:
    """{extrafield: (type, pos, list, totalizable)} as Dolibarr's table holds them."""
    rows = erp.sql(
        "SELECT name, type, pos, list, totalizable FROM llx_extrafields"
        " WHERE elementtype = 'societe'"
    )
    return {str(r[0]): tuple(r[1:]) for r in rows}


def _values(erp: live.Dolibarr) -> list[list[str | None]]:
    return erp.sql(
        "SELECT fk_object, crm_rfm_segment, crm_kpi_revenue_12m, crm_demand_cv"
        " FROM llx_societe_extrafields ORDER BY fk_object"
    )


def test_provision_puts_the_fields_under_a_crm_heading_and_the_headline_ones_in_the_list(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    declared = _declared()
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.ADMIN_KEY)
    assert cli("fields", "provision", cwd=tmp_path).returncode == 0
    held = _list_settings(dolibarr)
    # The heading first (a "separate" extrafield, on the card only), then the fields
    # topic by topic, as on Tryton's CRM tab: Dolibarr shows a card's extrafields by pos.
    assert held.pop("crmbridge") == ("separate", "1000", "3", "0")
    assert [n for n, _ in sorted(held.items(), key=lambda i: int(str(i[1][1])))] == [
        f"crm_{f.name}" for f in reading_order(list(declared.values()))
    ]
    assert all(int(str(pos)) > 1000 for _, pos, _, _ in held.values())
    for name, f in declared.items():
        _, _, shown, total = held[f"crm_{name}"]
        assert shown == ("1" if f.list_column else "-1"), name
        assert total == ("1" if f.list_total else "0"), name
    assert {n for n, f in declared.items() if f.list_total} == {
        "kpi_revenue_12m",
        "kpi_overdue_amount",
    }
    # An installation provisioned before: every field in the list, nothing totalled,
    # no heading, and values held.  Provisioning again updates the settings only.
    a = adapter(dolibarr, live.ADMIN_KEY)
    ids = [str(r[0]) for r in dolibarr.sql("SELECT rowid FROM llx_societe WHERE client = 1")][:3]
    values = {"rfm_segment": "at_risk", "kpi_revenue_12m": 1234.5, "demand_cv": 0.25}
    assert sorted(a.write([Batch(tuple(ids), values)]).written) == sorted(ids)
    before = _values(dolibarr)
    assert [r[1:] for r in before if str(r[0]) in ids] == [
        ["at_risk", "1234.50000000", "0.25000000"]
    ] * len(ids)
    dolibarr.sql(
        "UPDATE llx_extrafields SET list = '1', totalizable = 0, pos = 0"
        " WHERE elementtype = 'societe' AND name LIKE 'crm\\_%'"
    )
    dolibarr.sql("DELETE FROM llx_extrafields WHERE name = 'crmbridge'")
    upgrade = cli("fields", "provision", "--json", cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "created the CRM heading on the third-party card" in upgrade.stdout
    assert upgrade.stdout.count('"updated ') == len(declared)
    assert _list_settings(dolibarr) == {**held, "crmbridge": ("separate", "1000", "3", "0")}
    assert _values(dolibarr) == before
    again = cli("fields", "provision", "--json", cwd=tmp_path)
    assert '"changes": []' in again.stdout, again.stdout
    # The third-party list as a browser gets it: the headline columns, each with its
    # search box, and the totals line; the other fields only in the column selector.
    page = _list_page(dolibarr)
    for name, f in declared.items():
        box = re.search(rf'name="search_options_crm_{name}(\[\])?"', page)  # select: [], multi
        assert bool(box) == f.list_column, name
    assert declared["rfm_segment"].label in page
    # The totals line: revenue 12m (3 x 1234.50) and overdue amount, no other total.
    totals = re.search(r'<tr class="liste_total">(.*?)</tr>', page, re.S)
    assert totals, "no totals line in societe/list.php"
    cells = re.findall(r'<td class="right">([^<]*)</td>', totals.group(1))
    assert [c.replace(",", "") for c in cells] == ["3703.50", "0.00"]


def _list_page(erp: live.Dolibarr) -> str:
    """societe/list.php after logging in as the admin through the login form."""
    import requests

    with requests.Session() as web:
        form = web.get(f"{erp.url}/index.php", timeout=120).text
        token = re.search(r'name="token" value="(\w+)"', form)
        assert token, form[:2000]
        login = {
            "token": token.group(1),
            "actionlogin": "login",
            "loginfunction": "loginfunction",
            "username": "admin",
            "password": "admin-pw-1234",
        }
        web.post(f"{erp.url}/index.php", data=login, timeout=120)
        everyone = {"type": "c", "limit": "5000"}
        page = web.get(f"{erp.url}/societe/list.php", params=everyone, timeout=120)
        assert page.status_code == 200 and "search_nom" in page.text, page.text[:2000]
        return page.text


def erp_param(erp: live.Dolibarr, name: str) -> dict[str, str]:
    """The choices of a select extrafield, from Dolibarr's own answer."""
    listing = erp.api("GET", "/setup/extrafields", params={"elementtype": "thirdparty"})
    param = listing["societe"][name]["param"]
    return dict(param["options"])


def test_doctor_lists_the_missing_fields_by_their_dolibarr_names(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    declared = _declared()
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    doctor = cli("doctor", cwd=tmp_path)
    assert doctor.returncode == 1
    assert f"0/{len(declared)} fields present, missing: crm_" in doctor.stdout
    assert f"and {len(declared) - 5} more" in doctor.stdout
    assert "options_crm_" not in doctor.stdout


def test_a_field_half_created_by_a_failed_request_is_adopted(dolibarr: live.Dolibarr) -> None:
    field = next(f for f in CONFORMANCE_FIELDS if f.type == "char")
    name = f"crm_{field.name}"
    # What the profile used to send: an empty param array. Dolibarr adds the column,
    # then fails (HTTP 500) before it records the definition.
    body = {"label": field.label, "type": "varchar", "param": {}, "list": "1"}
    dolibarr.api("POST", f"/setup/extrafields/thirdparty/{name}", ok=(500,), json=body)
    assert name in _columns(dolibarr) and name not in _extrafields(dolibarr)
    a = adapter(dolibarr, live.ADMIN_KEY)
    heading = "created the CRM heading on the third-party card"
    assert a.provision([field]) == [f"created {field.name}", heading]
    assert _extrafields(dolibarr)[name] == "varchar"
    assert adapter(dolibarr, live.ADMIN_KEY).provision([field]) == []


# -- what is read (defects 3, 6, 7) -------------------------------------------------------
def test_paid_dates_and_payments_are_the_ones_dolibarr_holds(dolibarr: live.Dolibarr) -> None:
    a = adapter(dolibarr)
    invoices = {r["invoice_id"]: r for r in rows(a, "invoices")}
    payments = rows(a, "payments")
    sql = dolibarr.sql(
        "SELECT f.rowid, f.fk_statut, MAX(p.datep) FROM llx_facture f"
        " LEFT JOIN llx_paiement_facture pf ON pf.fk_facture = f.rowid"
        " LEFT JOIN llx_paiement p ON p.rowid = pf.fk_paiement GROUP BY f.rowid, f.fk_statut"
    )
    assert len(sql) == len(invoices) > 50
    paid = 0
    for rowid, status, last in sql:
        expected = _day(last) if status == "2" else None
        assert invoices[str(rowid)]["paid_date"] == expected, rowid
        paid += expected is not None
    assert paid == dolibarr.meta["paid"]
    held = dolibarr.sql(
        "SELECT pf.fk_facture, p.datep, pf.amount FROM llx_paiement_facture pf"
        " JOIN llx_paiement p ON p.rowid = pf.fk_paiement"
    )
    assert sorted((p["invoice_id"], p["date"], p["amount"]) for p in payments) == sorted(
        (str(i), _day(d), float(str(amount))) for i, d, amount in held
    )
    assert len({p["payment_id"] for p in payments}) == len(payments)


def test_proposals_are_the_quotes_and_orders_are_not_read(dolibarr: live.Dolibarr) -> None:
    a = adapter(dolibarr)
    quotes = {r["order_id"]: r for r in rows(a, "sale_orders")}
    states = {"0": "draft", "1": "quotation", "2": "confirmed", "3": "cancelled", "4": "confirmed"}
    sql = dolibarr.sql("SELECT rowid, fk_soc, fk_statut, datep, total_ht FROM llx_propal")
    assert len(sql) == len(quotes) == len(dolibarr.meta["quotes"])
    for rowid, soc, status, datep, total in sql:
        q = quotes[str(rowid)]
        assert (q["customer_id"], q["state"], q["date"]) == (soc, states[str(status)], _day(datep))
        assert q["amount"] == float(str(total))
    refused = sum(1 for r in sql if r[2] == "3")
    assert refused > 0 and sum(q["state"] == "cancelled" for q in quotes.values()) == refused
    orders = dolibarr.sql("SELECT count(*) FROM llx_commande")[0][0]
    assert int(str(orders)) == dolibarr.meta["orders"] > 0  # there, and not counted as quotes
    lines = rows(a, "sale_order_lines")
    held = dolibarr.sql("SELECT rowid, fk_propal FROM llx_propaldet")
    assert sorted((r["line_id"], r["order_id"]) for r in lines) == sorted(
        (str(i), str(p)) for i, p in held
    )


def _invoice_dates(erp: live.Dolibarr) -> dict[str, tuple[dt.date | None, dt.date | None]]:
    return {
        str(i): (_day(d), _day(due))
        for i, d, due in erp.sql("SELECT rowid, datef, date_lim_reglement FROM llx_facture")
    }


def test_dates_are_read_in_dolibarrs_timezone(dolibarr_brussels: live.Dolibarr) -> None:
    erp = dolibarr_brussels
    held = _invoice_dates(erp)
    detected = adapter(erp)
    assert detected.zone()[1] == "read from /status"
    read = {r["invoice_id"]: (r["date"], r["due_date"]) for r in rows(detected, "invoices")}
    assert read == held
    quotes = {r["order_id"]: r["date"] for r in rows(detected, "sale_orders")}
    assert quotes == {str(i): _day(d) for i, d in erp.sql("SELECT rowid, datep FROM llx_propal")}
    # Set explicitly, the key wins; read as UTC, dates are a day early.
    named = adapter(erp, timezone="Europe/Brussels")
    assert {r["invoice_id"]: (r["date"], r["due_date"]) for r in rows(named, "invoices")} == held
    utc = adapter(erp, timezone="UTC")
    early = {r["invoice_id"]: r["date"] for r in rows(utc, "invoices")}
    assert all(early[i] == d - dt.timedelta(days=1) for i, (d, _) in held.items() if d)


def test_a_date_written_in_brussels_is_that_date_in_dolibarr(
    dolibarr_brussels: live.Dolibarr,
) -> None:
    from crm_bridge.adapter import Batch

    erp = dolibarr_brussels
    since = next(f for f in CONFORMANCE_FIELDS if f.type == "date")
    adapter(erp, live.ADMIN_KEY).provision([since])
    a = adapter(erp)
    day = dt.date(2024, 3, 31)  # the night the clocks go forward
    assert a.write([Batch(("1", "2"), {since.name: day})]).written == ["1", "2"]
    held = erp.sql(f"SELECT fk_object, crm_{since.name} FROM llx_societe_extrafields")
    assert sorted(held) == [["1", "2024-03-31"], ["2", "2024-03-31"]]
    back = {cid: v for page in adapter(erp).current_values() for cid, v in page}
    assert since.parse(back["1"][since.name]) == day


# -- doctor: rights and settings (defects 8, 9, 12) ---------------------------------
def test_doctor_names_the_missing_read_all_third_parties_right(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    with_right = cli("doctor", cwd=tmp_path)
    assert "customers readable" in with_right.stdout, with_right.stdout
    user = dolibarr.sql(f"SELECT rowid FROM llx_user WHERE login = '{live.SYNC_LOGIN}'")[0][0]
    dolibarr.sql(f"DELETE FROM llx_user_rights WHERE fk_user = {user} AND fk_id = 262")
    # Dolibarr's API still answers; it only shows nothing.
    assert dolibarr.api("GET", "/thirdparties", key=live.SYNC_KEY, ok=(404,))
    without = cli("doctor", cwd=tmp_path)
    assert without.returncode == 1
    assert "no customer is visible to this API user" in without.stdout
    assert '"Read all third parties" (Third parties, id 262)' in without.stdout


def test_doctor_names_a_missing_read_right_per_table(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    granted = cli("doctor", cwd=tmp_path)
    assert "readable: products, invoices, sale_orders" in granted.stdout, granted.stdout
    user = dolibarr.sql(f"SELECT rowid FROM llx_user WHERE login = '{live.SYNC_LOGIN}'")[0][0]
    dolibarr.sql(f"DELETE FROM llx_user_rights WHERE fk_user = {user} AND fk_id = 11")
    assert dolibarr.api("GET", "/invoices", key=live.SYNC_KEY, ok=(403,))
    without = cli("doctor", cwd=tmp_path)
    assert without.returncode == 1
    assert "denied GET /invoices (HTTP 403)" in without.stdout, without.stdout
    assert 'give the API user the right "Read customer invoices" (Invoices, id 11)' in (
        without.stdout
    )


def _events(erp: live.Dolibarr) -> int:
    found = erp.sql("SELECT count(*) FROM llx_actioncomm WHERE code = 'AC_COMPANY_MODIFY'")
    return int(str(found[0][0]))


def test_doctor_warns_while_writes_add_agenda_events(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    from crm_bridge.adapter import Batch

    score = next(f for f in CONFORMANCE_FIELDS if f.type == "integer")
    adapter(dolibarr, live.ADMIN_KEY).provision([score])
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.ADMIN_KEY)
    on = cli("doctor", cwd=tmp_path)
    assert "warn agenda" in on.stdout and '"Third party modified"' in on.stdout, on.stdout
    assert "MAIN_AGENDA_ACTIONAUTO_COMPANY_MODIFY" in on.stdout
    before = _events(dolibarr)
    adapter(dolibarr).write([Batch(("1", "2", "3"), {score.name: 7})])
    assert _events(dolibarr) == before + 3  # why doctor warns
    # The setting the hint names, switched off as the admin would.
    dolibarr.sql(
        "UPDATE llx_const SET value = '0' WHERE name = 'MAIN_AGENDA_ACTIONAUTO_COMPANY_MODIFY'"
    )
    off = cli("doctor", cwd=tmp_path)
    assert "ok   agenda       off" in off.stdout, off.stdout
    adapter(dolibarr).write([Batch(("1", "2", "3"), {score.name: 8})])
    assert _events(dolibarr) == before + 3
    # The sync user cannot read settings: said, not failed.
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    unread = cli("doctor", cwd=tmp_path)
    assert "could not read the agenda setting" in unread.stdout


def test_a_wrong_key_gets_a_hint_naming_the_erp_table(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    dolibarr.config(tmp_path / "crm-bridge.toml", key="not-the-key-123")
    proc = cli("doctor", cwd=tmp_path)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr  # doctor's lines are on stdout, errors on stderr
    assert "rejected the credentials (HTTP 401)" in said
    assert "in the [erp] table" in said, said
    assert "Traceback" not in proc.stderr and "not-the-key-123" not in proc.stderr + proc.stdout


# -- end to end: init, doctor, provision, sync; values from Dolibarr's SQL ------------------
def _sql_snapshot(erp: live.Dolibarr) -> Any:
    """The canonical tables built from Dolibarr's SQL, without the adapter."""
    from crm_bridge.snapshot import Snapshot

    q = erp.sql
    states = {"0": "draft", "1": "posted", "2": "paid", "3": "cancelled"}
    last_paid = {
        str(i): _day(d)
        for i, d in q(
            "SELECT pf.fk_facture, MAX(p.datep) FROM llx_paiement_facture pf"
            " JOIN llx_paiement p ON p.rowid = pf.fk_paiement GROUP BY pf.fk_facture"
        )
    }
    customers = [
        {"customer_id": str(i), "name": n, "code": c, "active": s == "1"}
        for i, n, c, s in q("SELECT rowid, nom, code_client, status FROM llx_societe")
    ]
    products = [
        {"product_id": str(i), "code": r, "name": n, "list_price": float(str(p))}
        | {"cost_price": float(str(c)) if c is not None else None}
        for i, r, n, p, c in q("SELECT rowid, ref, label, price, cost_price FROM llx_product")
    ]
    invoices = [
        {
            "invoice_id": str(i),
            "customer_id": str(soc),
            "number": ref,
            "kind": "credit_note" if t == "2" else "invoice",
            "state": states[str(st)],
            "date": _day(d),
            "due_date": _day(due),
            "currency": "EUR",
            "amount": float(str(total)),
            "paid_date": last_paid.get(str(i)) if st == "2" else None,
        }
        for i, soc, ref, t, st, d, due, total in q(
            "SELECT rowid, fk_soc, ref, type, fk_statut, datef, date_lim_reglement, total_ht"
            " FROM llx_facture"
        )
    ]
    lines = [
        {
            "line_id": str(i),
            "invoice_id": str(f),
            "customer_id": str(soc),
            "product_id": str(p) if p else None,
            "quantity": float(str(qty)),
            "unit_price": float(str(price)),
            "amount": float(str(total)),
            "cost": float(str(cost)) * float(str(qty)),
        }
        for i, f, soc, p, qty, price, total, cost in q(
            "SELECT d.rowid, d.fk_facture, f.fk_soc, d.fk_product, d.qty, d.subprice,"
            " d.total_ht, d.buy_price_ht FROM llx_facturedet d"
            " JOIN llx_facture f ON f.rowid = d.fk_facture"
        )
    ]
    payments = [
        {
            "payment_id": f"{f}-{ref}",
            "invoice_id": str(f),
            "customer_id": str(soc),
            "date": _day(d),
            "amount": float(str(a)),
        }
        for f, ref, soc, d, a in q(
            "SELECT pf.fk_facture, p.ref, f.fk_soc, p.datep, pf.amount FROM llx_paiement_facture pf"
            " JOIN llx_paiement p ON p.rowid = pf.fk_paiement"
            " JOIN llx_facture f ON f.rowid = pf.fk_facture"
        )
    ]
    quote_states = {"0": "draft", "1": "quotation", "2": "confirmed", "3": "cancelled"}
    quotes = [
        {
            "order_id": str(i),
            "customer_id": str(soc),
            "date": _day(d),
            "state": quote_states.get(str(st), "confirmed"),
            "amount": float(str(total)),
        }
        for i, soc, st, d, total in q(
            "SELECT rowid, fk_soc, fk_statut, datep, total_ht FROM llx_propal"
        )
    ]
    quote_lines = [
        {
            "line_id": str(i),
            "order_id": str(p),
            "customer_id": str(soc),
            "product_id": str(prod) if prod else None,
            "quantity": float(str(qty)),
            "amount": float(str(total)),
        }
        for i, p, soc, prod, qty, total in q(
            "SELECT d.rowid, d.fk_propal, p.fk_soc, d.fk_product, d.qty, d.total_ht"
            " FROM llx_propaldet d JOIN llx_propal p ON p.rowid = d.fk_propal"
        )
    ]
    return Snapshot.from_rows(
        as_of=live.PROFILE.end,
        customers=customers,
        products=products,
        invoices=invoices,
        invoice_lines=lines,
        payments=payments,
        sale_orders=quotes,
        sale_order_lines=quote_lines,
    )


def _expected(erp: live.Dolibarr) -> dict[str, dict[str, Any]]:
    from crm_bridge.plugin_manager import load_plugins

    plugins = load_plugins()
    fields = plugins.fields()
    snapshot = _sql_snapshot(erp)
    out: dict[str, dict[str, Any]] = {}
    for _name, function in plugins.compute_impls():
        frame = function(snapshot=snapshot, settings={})
        frame = frame.collect() if hasattr(frame, "collect") else frame
        for row in frame.iter_rows(named=True):
            cells = out.setdefault(str(row.pop("customer_id")), {})
            cells.update({k: fields[k].normalize(v) for k, v in row.items() if v is not None})
    return out


def _held(erp: live.Dolibarr) -> dict[str, dict[str, Any]]:
    """crm-bridge's values as Dolibarr stores them (llx_societe_extrafields)."""
    fields = _declared()
    names = sorted(fields)
    columns = ", ".join(f"crm_{n}" for n in names)
    out: dict[str, dict[str, Any]] = {}
    for row in erp.sql(f"SELECT fk_object, {columns} FROM llx_societe_extrafields"):
        values = {}
        for name, raw in zip(names, row[1:], strict=True):
            value = fields[name].parse(raw)
            if value is not None and not (fields[name].type != "boolean" and raw == ""):
                values[name] = value
        if values:
            out[str(row[0])] = values
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) or hasattr(a, "as_tuple"):
        return abs(float(a) - float(b)) <= 0.011
    return bool(a == b)


def test_init_doctor_provision_sync_writes_what_dolibarrs_data_says(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    init = cli("init", "--profile", "dolibarr", "--url", dolibarr.api_url, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    config = tmp_path / "crm-bridge.toml"
    text = config.read_text()
    assert dolibarr.api_url in text and "${CRM_BRIDGE_ERP_API_KEY}" in text
    config.write_text(text.replace("[sync]\n", f'[sync]\nas_of = "{live.PROFILE.end}"\n'))
    admin = {"CRM_BRIDGE_ERP_API_KEY": live.ADMIN_KEY}
    os.environ.update(admin)
    try:
        provision = cli("fields", "provision", cwd=tmp_path)
    finally:
        del os.environ["CRM_BRIDGE_ERP_API_KEY"]
    assert provision.returncode == 0, provision.stderr
    os.environ["CRM_BRIDGE_ERP_API_KEY"] = live.SYNC_KEY
    try:
        doctor = cli("doctor", cwd=tmp_path)
        assert doctor.returncode == 0, doctor.stdout
        assert "FAIL" not in doctor.stdout
        assert f"dates read in {ZONE} (read from /status)" in doctor.stdout
        synced = cli("sync", "--json", cwd=tmp_path)
    finally:
        del os.environ["CRM_BRIDGE_ERP_API_KEY"]
    assert synced.returncode == 0, synced.stderr
    expected = _expected(dolibarr)
    held = _held(dolibarr)
    assert len(expected) > 30
    assert set(held) == set(expected)
    fields = _declared()
    for cid, values in expected.items():
        assert set(held[cid]) == set(values), cid
        for name, value in values.items():
            assert _close(held[cid][name], value), (cid, name, held[cid][name], value)
    # Values the old profile could not produce: late payment and quote conversion.
    assert any("kpi_avg_days_late" in v for v in held.values())
    assert any("kpi_quote_conversion" in v for v in held.values())
    assert {f.type for f in fields.values()} >= {"date", "selection", "numeric"}


# -- runs after the first: what the lead's core change (values that stay true) fixes --------
def _synced(erp: live.Dolibarr, tmp_path: Path) -> Path:
    erp.config(tmp_path / "crm-bridge.toml", key=live.ADMIN_KEY)
    assert cli("fields", "provision", cwd=tmp_path).returncode == 0
    erp.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    first = cli("sync", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    return tmp_path


def _counts(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    import json

    assert proc.returncode == 0, proc.stderr
    counts: dict[str, Any] = json.loads(proc.stdout)["counts"]
    return counts


def test_a_second_sync_writes_nothing_and_sees_no_drift(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    _synced(dolibarr, tmp_path)
    second = _counts(cli("sync", "--json", cwd=tmp_path))
    assert second["drift"] == {} and second["planned_cells"] == 0, second


def test_an_edit_made_as_the_card_makes_it_is_drift_and_put_back(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    _synced(dolibarr, tmp_path)
    held = _held(dolibarr)
    cid, values = next((c, v) for c, v in held.items() if v.get("rfm_segment") != "lost")
    # The card's edit button changes only the extrafields row (llx_societe.tms stays).
    dolibarr.sql(
        f"UPDATE llx_societe_extrafields SET crm_rfm_segment = 'lost' WHERE fk_object = {cid}"
    )
    after = _counts(cli("sync", "--json", cwd=tmp_path))
    assert after["drift"] == {"rfm_segment": 1}, after
    assert _held(dolibarr)[cid]["rfm_segment"] == values["rfm_segment"]
    again = _counts(cli("sync", "--json", cwd=tmp_path))
    assert again["drift"] == {} and again["planned_cells"] == 0, again


def test_one_new_paid_invoice_writes_only_the_customers_whose_values_moved(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    _synced(dolibarr, tmp_path)
    before = _expected(dolibarr)
    cid = next(c for c, v in before.items() if "kpi_avg_days_late" in v)
    day = live.PROFILE.end - dt.timedelta(days=20)
    bank = dolibarr.sql("SELECT rowid FROM llx_bank_account")[0][0]
    transfer = dolibarr.sql("SELECT id FROM llx_c_paiement WHERE code = 'VIR'")[0][0]
    product = dolibarr.sql("SELECT rowid FROM llx_product ORDER BY rowid LIMIT 1")[0][0]
    invoice = dolibarr.api(
        "POST",
        "/invoices",
        json={
            "socid": int(cid),
            "date": live._unix(day),
            "date_lim_reglement": live._unix(day + dt.timedelta(days=30)),
            "lines": [{"fk_product": product, "qty": 3, "subprice": 120.0, "tva_tx": 0}],
        },
    )
    dolibarr.api("POST", f"/invoices/{invoice}/validate", json={"notrigger": 0})
    dolibarr.api(
        "POST",
        f"/invoices/{invoice}/payments",
        json={
            "datepaye": live._unix(day + dt.timedelta(days=35)),
            "paymentid": int(str(transfer)),
            "closepaidinvoices": "yes",
            "accountid": int(str(bank)),
        },
    )
    after = _expected(dolibarr)
    fields = load_plugins().fields()

    def moved_beyond_tolerance(c: str) -> bool:
        old, new = before.get(c, {}), after[c]
        return set(old) != set(new) or any(
            v != old[k] and not fields[k].within_tolerance(v, old[k]) for k, v in new.items()
        )

    # The CLV model is refitted: every buyer's prediction moves a little, and a move
    # within the field's tolerance (1 %) is not worth a write.
    moved = {c for c in after if moved_beyond_tolerance(c)}
    assert cid in moved and len(moved) < len({c for c in after if after[c] != before.get(c)})
    run = _counts(cli("sync", "--json", cwd=tmp_path))
    assert run["drift"] == {}, run
    assert run["written"] == len(moved), (run, sorted(moved))
    held = _held(dolibarr)
    assert all(_close(held[cid][n], v) for n, v in after[cid].items())
    assert held[cid]["kpi_avg_days_late"] == after[cid]["kpi_avg_days_late"]


def test_a_run_dolibarr_dies_in_shows_what_it_wrote(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    import json
    import re
    import time

    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.ADMIN_KEY)
    assert cli("fields", "provision", cwd=tmp_path).returncode == 0
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    log = dolibarr.root / "php.log"
    start = log.stat().st_size
    put = re.compile(r"\[200\]: PUT /api/index\.php/thirdparties/(\d+)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_bridge", "sync", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while proc.poll() is None:  # Dolibarr dies after ten answered writes
            if len(put.findall(log.read_text("utf-8", "replace")[start:])) >= 10:
                dolibarr.php.stop()
                break
            time.sleep(0.05)
        proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode != 0
    written = set(put.findall(log.read_text("utf-8", "replace")[start:]))
    assert len(written) >= 10
    history = json.loads(cli("runs", "--json", cwd=tmp_path).stdout)
    assert history[0]["status"] == "failed"
    shown = cli("runs", "show", str(history[0]["id"]), "--changes", "--json", cwd=tmp_path)
    recorded = {c["customer_id"] for c in json.loads(shown.stdout)["changes"]}
    assert history[0]["counts"].get("written") == history[0]["written_customers"] == len(recorded)
    # Every write the run recorded was answered by Dolibarr; only those in flight when
    # it died (at most the profile's 4 parallel PUTs) may have landed unconfirmed:
    # the next run resends them.
    assert recorded <= written and len(written - recorded) <= 4, (written, recorded)

    # Dolibarr back: the next run resends what was unconfirmed and finishes the job.
    # Dolibarr then holds, value for value, what its data says, and the audit trail
    # has each cell once, from nothing to the value held.
    dolibarr.restart_php()
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    again = cli("sync", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    expected, held = _expected(dolibarr), _held(dolibarr)
    assert set(held) == set(expected)
    for cid, values in expected.items():
        assert set(held[cid]) == set(values), cid
        for name, value in values.items():
            assert _close(held[cid][name], value), (cid, name, held[cid][name], value)
    from crm_bridge.fields import decode

    with sqlite3.connect(tmp_path / "state.db") as db:
        audit = db.execute("SELECT customer_id, field, old, new FROM changes").fetchall()
    cells = [(c, f) for c, f, _, _ in audit]
    assert len(cells) == len(set(cells)), "a cell recorded twice"
    assert set(cells) == {(c, f) for c, values in held.items() for f in values}
    assert all(old == "null" for _, _, old, _ in audit)
    assert all(_close(decode(new), held[c][f]) for c, f, _, new in audit)


def test_a_sync_that_sees_no_customer_is_not_a_silent_success(
    dolibarr: live.Dolibarr, tmp_path: Path
) -> None:
    dolibarr.config(tmp_path / "crm-bridge.toml", key=live.SYNC_KEY)
    user = dolibarr.sql(f"SELECT rowid FROM llx_user WHERE login = '{live.SYNC_LOGIN}'")[0][0]
    dolibarr.sql(f"DELETE FROM llx_user_rights WHERE fk_user = {user} AND fk_id = 262")
    proc = cli("sync", "--dry-run", cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
