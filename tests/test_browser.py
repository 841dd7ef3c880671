"""The accountant's view: the CRM tab of a customer in Tryton's own web client (sao),
in headless Chromium, after a real sync.  The test installs sao (npm) and Chromium
(Debian) itself when they are missing; the screenshot goes to docs/screenshots."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, TrytonServer

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import connect, sync

from .browser import chinese_font, chromium, sao_root
from .conftest import RawRPC, Tryton, crm_in_sqlite
from .test_sync_engine import _provision

# CRM_BRIDGE_UPDATE_SCREENSHOTS=1 refreshes the README's pictures; otherwise a run
# leaves the working tree as it was.
DOCS = Path(__file__).parent.parent / "docs" / "screenshots"


def _screenshot(browser: Any, tmp_path: Path, name: str) -> Path:
    folder = DOCS if os.environ.get("CRM_BRIDGE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(exist_ok=True)
    browser.save_screenshot(str(folder / name))
    return folder / name


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    session = webdriver.Chrome(options=options, service=Service(str(driver)))
    session.implicitly_wait(0)
    try:
        yield session
    finally:
        session.quit()


def _wait(condition: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
            if found:
                return found
        except Exception:  # the page is still building: try again
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("the web client did not show what was expected in time")
        time.sleep(0.25)


def _login(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(url + "/")
    _wait(lambda: browser.find_element(By.ID, "login")).send_keys("admin")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    password = _wait(lambda: browser.find_element(By.CSS_SELECTOR, "input[type=password]"))
    password.send_keys(ADMIN_PASSWORD, Keys.ENTER)
    # Logged in: the password dialog is gone and the first tab (the admin's
    # configuration wizard) is open, or the menu when that wizard was done.
    _wait(
        lambda: (
            not browser.find_elements(By.CSS_SELECTOR, "input[type=password]")
            and browser.find_elements(By.CSS_SELECTOR, "a[role=tab], #menu tr")
        )
    )


def _as_shown(value: Any, key: dict[str, Any], lang: dict[str, str]) -> str:
    """The text the web client must show for a stored value: the selection's label,
    the date in the language's format, numbers grouped with the key's decimals."""
    kind = key["type_"]
    if kind == "selection":
        choices = dict(
            line.split(":", 1) for line in (key["selection"] or "").splitlines() if ":" in line
        )
        return choices[value].strip()
    if kind == "date":
        return str(value.strftime(lang["date"]))
    if kind in ("integer", "numeric", "float"):
        digits = 0 if kind == "integer" else key["digits"]
        text = f"{value:,.{digits}f}"
        marks = {",": lang["thousands_sep"], ".": lang["decimal_point"]}
        return "".join(marks.get(c, c) for c in text)
    return str(value)


# Each row of the CRM tab's dict widget: its label, the key (the control's name) and
# what the visible control shows (a select's chosen label, an input's text).
SHOWN_ROWS = """
const dict = Array.from(document.querySelectorAll('#tabcontent .form-dict'))
    .find(d => d.offsetParent !== null);
if (!dict) { return null; }
// (the last row, without a label, is the box to add a key: not a value)
return Array.from(dict.querySelectorAll('.dict-row'))
    .filter(row => row.querySelector('.dict-label')).map(row => {
    const shown = Array.from(row.querySelectorAll('input, select'))
        // (a date's calendar button is an empty input of type date: not the value)
        .filter(c => c.offsetParent !== null && c.type !== 'hidden'
            && c.getAttribute('role') !== 'button');
    return {
        label: row.querySelector('.dict-label').innerText.trim(),
        key: (row.querySelector('[name]') || {}).name || null,
        shown: shown.map(c => c.tagName === 'SELECT'
            ? (c.selectedOptions[0] || {text: ''}).text : c.value),
    };
});
"""


def _crm_tab(browser: Any, url: str, party: int, code: str) -> list[dict[str, Any]]:
    """Open the party (a new tab of the web client at ``url``, ending with the
    database's hash), its CRM tab, and read every row."""
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/model/party.party/{party}")
    active = "#tabcontent > .tab-content > .tab-pane.active, #tabcontent .tab-pane.active"

    def crm_link() -> Any:
        pane = browser.find_element(By.CSS_SELECTOR, active)
        codes = [i.get_attribute("value") for i in pane.find_elements(By.CSS_SELECTOR, "input")]
        if code not in codes:  # still the previous party's tab
            return None
        return next(
            a
            for a in pane.find_elements(By.CSS_SELECTOR, "a[role=tab]")
            if a.text.strip() == "CRM" and a.is_displayed()
        )

    _wait(crm_link).click()
    return list(_wait(lambda: browser.execute_script(SHOWN_ROWS)))


def test_the_crm_tab_shows_every_stored_value_as_formatted_for_the_reader(
    tryton_db: Tryton, tmp_path: Path, browser: Any
) -> None:
    """Every key held by the customers shown (chosen so that every key held by anyone is
    among them) is on the CRM tab with its declared label, and shows exactly the stored
    value read raw from the database: the selection's label, the date in the language's
    format, the number with its thousands separator and the key's decimals.  On SQLite
    (values read with SQL from the file) and PostgreSQL (read over plain JSON-RPC)."""
    tryton = tryton_db
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg_path)
    assert sync(config_mod.load(cfg_path), load_plugins()).status == "ok"
    party_ids = tryton.rpc.party_ids()
    stored = {c: v for c, v in tryton.rpc.crm_values().items() if v}
    keys = {
        k["name"]: k
        for k in tryton.rpc(
            "model.crm_bridge.field.search_read",
            [],
            0,
            None,
            None,
            ["name", "string", "type_", "digits", "selection"],
        )
    }
    (lang,) = tryton.rpc(
        "model.ir.lang.search_read",
        [("code", "=", "en")],
        0,
        None,
        None,
        ["date", "decimal_point", "thousands_sep"],
    )

    server = tryton.server
    server.stop()  # the same database, served again with the web client
    if server.uri.startswith("sqlite"):  # the file itself agrees with what the RPC read
        in_file, file_keys, file_lang = crm_in_sqlite(
            server.directory / f"{server.database}.sqlite"
        )
        assert in_file == stored
        assert {k: {n: v[n] for n in keys[k]} for k, v in file_keys.items()} == keys
        assert all(file_lang[n] == lang[n] for n in ("date", "decimal_point", "thousands_sep"))
    # The fullest customer, then the fullest holding a key not seen yet, until every
    # key held by any customer is covered.
    chosen: list[str] = []
    seen: set[str] = set()
    every = set().union(*stored.values())
    while seen != every:
        code = max(sorted(stored), key=lambda c: len(set(stored[c]) - seen))
        chosen.append(code)
        seen |= set(stored[code])
    assert {"loyalty_next_expiry", "rfm_segment", "kpi_revenue_12m", "loyalty_points"} <= seen

    web = TrytonServer(server.directory, server.database, web_root=sao_root(), uri=server.uri)
    tryton.server = web.start()
    _login(browser, web.url)
    for code in chosen:
        held = stored[code]
        rows = _crm_tab(browser, f"{web.url}/#{web.database}", party_ids[code], code)
        assert [r["key"] for r in rows if r["key"] not in held] == [], f"{code}: extra rows"
        shown = {r["key"]: r for r in rows}
        assert sorted(shown) == sorted(held), f"{code}: keys shown differ from the keys held"
        wrong = {}
        for name, value in held.items():
            expected = (f"{keys[name]['string']}:", [_as_shown(value, keys[name], lang)])
            got = (shown[name]["label"], shown[name]["shown"])
            if got != expected:
                wrong[name] = (value, got, expected)
        assert wrong == {}, "\n".join(
            f"{code} {k}: stored {v!r}, shown {g!r}, expected {e!r}"
            for k, (v, g, e) in wrong.items()
        )
    assert _screenshot(browser, tmp_path, "crm-tab.png").stat().st_size > 20_000


def test_a_russian_user_reads_the_crm_tab_in_russian(
    tryton: Tryton, tmp_path: Path, browser: Any
) -> None:
    """Labels and choice names on the CRM tab are the catalog's, for a user whose Tryton
    language is Russian (then Latvian, then Chinese: a screenshot of each)."""
    from selenium.webdriver.common.by import By

    from crm_bridge import i18n

    from .test_cli_errors import run

    chinese_font()
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg_path)
    assert sync(config_mod.load(cfg_path), load_plugins()).status == "ok"
    adapter, _ = connect(config_mod.load(cfg_path), load_plugins())
    try:
        adapter.activate_languages(["ru", "lv", "zh_CN"])
    finally:
        adapter.close()
    assert run("fields", "provision", cwd=tmp_path).returncode == 0
    code, held = next(
        (c, v)
        for c, v in sorted(tryton.rpc.crm_values().items())
        if v.get("loyalty_tier") and v.get("rfm_segment") and v.get("abc_xyz")
    )
    party = tryton.rpc.party_ids()[code]
    fields = load_plugins().fields()
    items = tryton.rpc("model.ir.module.config_wizard.item.search", [])
    tryton.rpc("model.ir.module.config_wizard.item.write", items, {"state": "done"})

    tryton.server.stop()  # the same database, served again with the web client
    web = TrytonServer(tryton.directory, "test", web_root=sao_root()).start()
    tryton.server = web
    rpc = RawRPC(web.url, "test")
    for language in ("ru", "lv", "zh_CN"):
        rpc("model.res.user.set_preferences", {"language": language})
        with i18n.using(language):
            labels = {n: i18n._(fields[n].label) for n in fields}
            choices = {n: {k: i18n._(v) for k, v in fields[n].choices} for n in fields}
        browser.get("about:blank")
        browser.delete_all_cookies()
        browser.get(web.url + "/")
        browser.execute_script("localStorage.clear(); sessionStorage.clear();")
        _login(browser, web.url)
        browser.get(f"{web.url}/#test/model/party.party/{party}")
        tab = _wait(
            lambda: next(
                a
                for a in browser.find_elements(By.CSS_SELECTOR, "a[role=tab]")
                if a.text.strip() == "CRM"
            )
        )
        tab.click()
        wanted = (labels["rfm_segment"], choices["rfm_segment"][held["rfm_segment"]])
        text = _wait(
            lambda wanted=wanted: next(
                p.text
                for p in browser.find_elements(By.CSS_SELECTOR, ".tab-pane.active")
                if all(w in p.text for w in wanted)
            )
        )
        for name in ("rfm_segment", "loyalty_tier", "abc_xyz", "kpi_churn_risk", "kpi_aov"):
            assert labels[name] in text, f"{language}: label of {name} missing on the CRM tab"
            if fields[name].label not in labels[name]:  # "RFM segment" in "RFM segments"
                assert fields[name].label not in text, f"{language}: {name} still in English"
        assert choices["loyalty_tier"][held["loyalty_tier"]] in text, language
        shot = _screenshot(browser, tmp_path, f"crm-tab-{language.replace('_', '-')}.png")
        assert shot.stat().st_size > 20_000
        if language == "ru":  # the CRM list: the companion module's columns, in Russian
            _menu(browser, "CRM", "Клиенты")
            headings = _wait(
                lambda: (
                    {
                        th.text.strip()
                        for th in browser.find_elements(By.CSS_SELECTOR, "#tabcontent th")
                        if th.is_displayed()
                    }
                    >= {"Сегмент RFM", "Уровень лояльности", "Выручка (12 мес.)"}
                )
            )
            assert headings


def test_the_html_report_renders_its_charts(tryton: Tryton, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from .test_cli_errors import run

    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg_path)
    sync(config_mod.load(cfg_path), load_plugins())
    assert run("report", "--html", "r.html", cwd=tmp_path).returncode == 0
    browser.get((tmp_path / "r.html").as_uri())
    charts = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "figure.chart svg"))
    assert len(charts) >= 3
    assert all(c.size["width"] > 300 and c.size["height"] > 150 for c in charts)
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert "ABC Pareto curve" in headings and "Segment × product matrix" in headings

    # The segment and tier tables, as the browser shows them, hold what the ERP holds:
    # customers and 12-month revenue per value, read raw over JSON-RPC.
    fields = load_plugins().fields()
    held = tryton.rpc.crm_values().values()
    for title, name in (("Segments (RFM)", "rfm_segment"), ("Loyalty tiers", "loyalty_tier")):
        labels = dict(fields[name].choices)
        expected: dict[str, list[Any]] = {}
        for values in held:
            if name in values:
                row = expected.setdefault(labels[values[name]], [0, Decimal(0)])
                row[0] += 1
                row[1] += values.get("kpi_revenue_12m", 0)
        section = next(
            s
            for s in browser.find_elements(By.TAG_NAME, "section")
            if s.find_element(By.TAG_NAME, "h2").text == title
        )
        shown = {
            cells[0]: cells[1:3]
            for tr in section.find_elements(By.CSS_SELECTOR, "tbody tr")
            if (cells := [td.text for td in tr.find_elements(By.TAG_NAME, "td")])
        }
        assert shown == {k: [str(n), f"{money:,.2f}"] for k, (n, money) in expected.items()}
    assert _screenshot(browser, tmp_path, "report.png").stat().st_size > 20_000


def _menu(browser: Any, *path: str) -> None:
    """Open ``path`` in the web client's menu (CRM, Customers), expanding as it goes."""
    from selenium.webdriver.common.by import By

    def row(name: str) -> Any:
        return next(
            r
            for r in browser.find_elements(By.CSS_SELECTOR, "#menu tr")
            if r.text.strip() == name and r.is_displayed()
        )

    for name, child in itertools.pairwise(path):
        parent = _wait(lambda name=name: row(name))
        try:
            row(child)  # expanded already
        except StopIteration:
            parent.find_element(By.CSS_SELECTOR, ".expander").click()
    _wait(lambda: row(path[-1])).click()


def _list_rows(browser: Any, columns: int) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    pane = browser.find_element(By.CSS_SELECTOR, "#tabcontent .tab-pane.active")
    rows = pane.find_elements(By.CSS_SELECTOR, ".treeview table tbody tr")
    cells = [
        [td.text.strip() for td in r.find_elements(By.CSS_SELECTOR, "td") if td.is_displayed()]
        for r in rows
        if r.is_displayed()
    ]
    return [c for c in cells if len(c) >= columns]


def _whole_list(browser: Any, columns: int) -> list[list[str]] | None:
    """Every row of the active tab's list, or None while rows are still to come.

    The web client draws a list's first 20 rows (``Sao.config.display_size``) and the
    next 20 when its "More" button is clicked, which it does itself only once that
    button is scrolled within 50 px of the window: how many rows are drawn depends on
    the window's height and the rows' heights.  So: click "More" until it is gone."""
    from selenium.webdriver.common.by import By

    pane = browser.find_element(By.CSS_SELECTOR, "#tabcontent .tab-pane.active")
    for more in pane.find_elements(By.CSS_SELECTOR, ".treeview tr.more-row button"):
        if more.is_displayed():
            more.click()
            return None
    return _list_rows(browser, columns)


# The columns of CRM › Customers: title -> crm key (numbers have two decimals there).
LIST_COLUMNS = {
    "RFM Segment": "rfm_segment",
    "Loyalty Tier": "loyalty_tier",
    "ABC/XYZ Class": "abc_xyz",
    "Revenue (12m)": "kpi_revenue_12m",
    "Churn Risk": "kpi_churn_risk",
    "Overdue Amount": "kpi_overdue_amount",
    "Average Days Late": "kpi_avg_days_late",
    "Predicted CLV (12m)": "kpi_clv_12m",
    "Next Best Offer": "next_best_offer",
}


def _list_cells(tryton: Tryton, codes: set[str]) -> dict[str, dict[str, str]]:
    """What each CRM › Customers row must show, from the stored values read raw over
    JSON-RPC: the name, selection labels, numbers grouped with two decimals."""
    keys = {
        k["name"]: {**k, "digits": 2}
        for k in tryton.rpc(
            "model.crm_bridge.field.search_read",
            [],
            0,
            None,
            None,
            ["name", "type_", "selection", "digits"],
        )
    }
    (lang,) = tryton.rpc(
        "model.ir.lang.search_read",
        [("code", "=", "en")],
        0,
        None,
        None,
        ["date", "decimal_point", "thousands_sep"],
    )
    rows = tryton.rpc(
        "model.party.party.search_read",
        [("code", "in", sorted(codes))],
        0,
        None,
        None,
        ["code", "name", "crm"],
    )
    return {
        r["code"]: {
            "Name": r["name"],
            **{
                title: _as_shown(r["crm"][key], keys[key], lang) if key in r["crm"] else ""
                for title, key in LIST_COLUMNS.items()
            },
        }
        for r in rows
    }


def test_the_crm_menu_lists_sorts_and_draws_customers(
    tryton_db: Tryton, tmp_path: Path, browser: Any
) -> None:
    """CRM › Customers › At risk, sorted by revenue, holds the database's rows; CRM ›
    Segments draws the graph.  On SQLite and on PostgreSQL."""
    from selenium.webdriver.common.by import By

    tryton = tryton_db
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg_path)
    assert sync(config_mod.load(cfg_path), load_plugins()).status == "ok"
    at_risk = {
        c: v["kpi_revenue_12m"]
        for c, v in tryton.rpc.crm_values().items()
        if v.get("rfm_segment") == "at_risk"
    }
    assert len(at_risk) >= 3
    segments = {v["rfm_segment"] for v in tryton.rpc.crm_values().values() if "rfm_segment" in v}
    expected_rows = _list_cells(tryton, set(at_risk))
    # The first login's configuration wizard hides the menu: done already.
    items = tryton.rpc("model.ir.module.config_wizard.item.search", [])
    tryton.rpc("model.ir.module.config_wizard.item.write", items, {"state": "done"})

    server = tryton.server
    server.stop()  # the same database, served again with the web client
    web = TrytonServer(server.directory, server.database, web_root=sao_root(), uri=server.uri)
    tryton.server = web.start()
    _login(browser, web.url)
    _menu(browser, "CRM", "Customers")
    tab = _wait(
        lambda: next(
            a
            for a in browser.find_elements(By.CSS_SELECTOR, "a[role=tab]")
            if a.text.strip().startswith("At risk")
        )
    )
    header = _wait(
        lambda: next(
            th
            for th in browser.find_elements(By.CSS_SELECTOR, "#tabcontent th")
            if th.text.strip() == "Revenue (12m)"
        )
    )

    def column_titles() -> list[str]:
        titles = [
            th.text.strip()
            for th in browser.find_elements(By.CSS_SELECTOR, "#tabcontent .tab-pane.active th")
            if th.is_displayed()
        ]
        return titles[titles.index("Code") :]  # the columns, after the selection boxes

    def listed() -> list[dict[str, str]] | None:
        # Each row's cells, by column title (the first cells are the row's boxes).
        rows = _whole_list(browser, 5)
        if rows is None:
            return None
        titles = column_titles()
        return [dict(zip(titles, r[len(r) - len(titles) :], strict=True)) for r in rows]

    # The tabs and the header are drawn as the first tab's ("All") search is sent, and
    # the web client keeps whichever search answers last: clicking "At risk" before
    # "All" has answered can leave All's rows under the "At risk" tab for good.  So
    # first the "All" list (drawn once its search has answered), then the tab's
    # counter (counted only after that).
    _wait(lambda: _list_rows(browser, 5))
    counter = str(len(at_risk)) if len(at_risk) < 100 else "99+"
    _wait(lambda: tab.text.strip() == f"At risk {counter}")
    tab.click()
    # The tab's rows are the at-risk customers, every one of them (not just as many).
    try:
        _wait(lambda: (rows := listed()) is not None and {r["Code"] for r in rows} == set(at_risk))
    except Exception as exc:
        raise AssertionError(f"{sorted(at_risk)}\n{_list_rows(browser, 5)}") from exc
    header.click()  # ascending
    expected = sorted(at_risk.values())

    def shown() -> list[dict[str, str]] | None:
        rows = listed()
        if rows is None:
            return None
        revenues = [Decimal(r["Revenue (12m)"].replace(",", "")) for r in rows]
        return rows if revenues == expected else None

    try:
        rows = _wait(shown)
    except Exception as exc:
        raise AssertionError(f"{column_titles()}\n{_list_rows(browser, 5)}") from exc
    titles = column_titles()
    assert {r["Code"] for r in rows} == set(at_risk)
    assert all(r["RFM Segment"] == "At risk" for r in rows)
    # Every cell equals the party's stored value, formatted as the column shows it.
    wrong = {
        (r["Code"], title): (text, want)
        for r in rows
        for title, text in r.items()
        if title in expected_rows[r["Code"]] and text != (want := expected_rows[r["Code"]][title])
    }
    assert wrong == {}, wrong
    assert set(titles) >= {"Name", *LIST_COLUMNS}, titles
    _screenshot(browser, tmp_path, "crm-customers.png")

    _menu(browser, "CRM", "Segments", "Customers per RFM Segment")
    # (a bar per segment: waited for, not just the first bars drawn)
    bars = _wait(
        lambda: (
            found
            if len(
                found := browser.find_elements(
                    By.CSS_SELECTOR,
                    "#tabcontent .tab-pane.active svg path.bb-shape, "
                    "#tabcontent .tab-pane.active svg path.c3-shape",
                )
            )
            >= len(segments)
            else None
        )
    )
    assert len(bars) >= len(segments)
    assert _screenshot(browser, tmp_path, "crm-segments.png").stat().st_size > 20_000
