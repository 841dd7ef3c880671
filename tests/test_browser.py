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
from .conftest import RawRPC, Tryton
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


def test_the_crm_tab_shows_the_values_with_their_labels(
    tryton: Tryton, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    _provision(cfg_path)
    assert sync(config_mod.load(cfg_path), load_plugins()).status == "ok"
    values = tryton.rpc.crm_values()
    code, held = next(
        (c, v)
        for c, v in sorted(values.items())
        if v.get("loyalty_tier") and v.get("rfm_segment") and v.get("kpi_aov")
    )
    party = tryton.rpc.party_ids()[code]
    fields = load_plugins().fields()

    tryton.server.stop()  # the same database, served again with the web client
    web = TrytonServer(tryton.directory, "test", web_root=sao_root()).start()
    tryton.server = web
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
    pane = _wait(
        lambda: next(
            p
            for p in browser.find_elements(By.CSS_SELECTOR, ".tab-pane.active")
            if fields["rfm_segment"].label in p.text
        )
    )
    text = _wait(
        lambda: (
            pane.text
            if dict(fields["rfm_segment"].choices)[held["rfm_segment"]] in pane.text
            else None
        )
    )
    for name in ("rfm_segment", "loyalty_tier", "abc_xyz", "kpi_aov", "kpi_churn_risk"):
        assert fields[name].label in text, f"label of {name} missing on the CRM tab"
    assert dict(fields["loyalty_tier"].choices)[held["loyalty_tier"]] in text
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
    tab.click()
    header = _wait(
        lambda: next(
            th
            for th in browser.find_elements(By.CSS_SELECTOR, "#tabcontent th")
            if th.text.strip() == "Revenue (12m)"
        )
    )
    _wait(lambda: len(_list_rows(browser, 5)) == len(at_risk))
    header.click()  # ascending
    expected = sorted(at_risk.values())

    titles = [
        th.text.strip()
        for th in browser.find_elements(By.CSS_SELECTOR, "#tabcontent .tab-pane.active th")
        if th.is_displayed()
    ]
    titles = titles[titles.index("Code") :]  # the columns, after the selection boxes

    def shown() -> list[dict[str, str]] | None:
        # Each row's cells, by column title (the first cells are the row's boxes).
        rows = [
            dict(zip(titles, r[len(r) - len(titles) :], strict=True))
            for r in _list_rows(browser, 5)
        ]
        revenues = [Decimal(r["Revenue (12m)"].replace(",", "")) for r in rows]
        return rows if revenues == expected else None

    try:
        rows = _wait(shown)
    except Exception as exc:
        raise AssertionError(f"{titles}\n{_list_rows(browser, 5)}") from exc
    assert {r["Code"] for r in rows} == set(at_risk)
    assert all(r["RFM Segment"] == "At risk" for r in rows)
    _screenshot(browser, tmp_path, "crm-customers.png")

    _menu(browser, "CRM", "Segments", "Customers per RFM Segment")
    bars = _wait(
        lambda: browser.find_elements(
            By.CSS_SELECTOR,
            "#tabcontent .tab-pane.active svg path.bb-shape, "
            "#tabcontent .tab-pane.active svg path.c3-shape",
        )
    )
    assert len(bars) >= len(segments)
    assert _screenshot(browser, tmp_path, "crm-segments.png").stat().st_size > 20_000
