"""crm-bridge report after a real sync on Tryton: one offline HTML file with charts,
an XLSX workbook with one sheet per view, numbers that match what the ERP holds."""

from __future__ import annotations

import html
import re
import zipfile
from collections import Counter
from pathlib import Path

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import sync

from .conftest import Tryton
from .test_cli_errors import assert_clear, run
from .test_i18n import html_texts, untranslated
from .test_sync_engine import _provision

VIEWS = (
    "Segments (RFM)",
    "ABC Pareto curve",
    "ABC-XYZ matrix",
    "Loyalty tiers",
    "Loyalty movements in the last run",
    "KPIs per segment (averages)",
    "Top customers at risk",
    "Segment × product matrix",
    "CRM maturity diagnosis",
)


def test_report_html_and_xlsx_from_the_last_run(tryton: Tryton, tmp_path: Path) -> None:
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    before = run("report", "--html", "r.html", cwd=tmp_path)
    assert_clear(before, 1, "nothing to report yet", "crm-bridge sync")
    _provision(cfg_path)
    result = sync(config_mod.load(cfg_path), load_plugins())
    assert result.status == "ok"
    nowhere = run("report", "--html", "no/such/dir/r.html", cwd=tmp_path)
    assert_clear(nowhere, 2, "cannot write the report to no/such/dir/r.html", "folder exists")
    proc = run("report", "--html", "r.html", "--xlsx", "r.xlsx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    page = (tmp_path / "r.html").read_text("utf-8")
    for title in VIEWS:
        assert f"<h2>{title}</h2>" in page, title
    assert page.count("<svg") >= 3  # segments, Pareto, tiers
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=.https?:", page), "not offline"
    assert "80%" in page and "95%" in page
    assert "class='white'" in page  # white space (not offered) highlighted

    # The segment counts are what the ERP holds, read without crm-bridge.
    held = Counter(
        v["rfm_segment"] for v in tryton.rpc.crm_values().values() if v.get("rfm_segment")
    )
    section = page.split("<h2>Segments (RFM)</h2>")[1].split("</section>")[0]
    rows = re.findall(r"<tr><td class=''>([^<]+)</td><td class='num'>(\d+)</td>", section)
    labels = dict(load_plugins().fields()["rfm_segment"].choices)
    assert {label: int(n) for label, n in rows} == {labels[k]: n for k, n in held.items()}

    with zipfile.ZipFile(tmp_path / "r.xlsx") as book:
        workbook = book.read("xl/workbook.xml").decode()
        sheets = re.findall(r'<sheet name="([^"]+)"', workbook)
        assert len(sheets) == len(VIEWS)
        first = book.read("xl/worksheets/sheet1.xml").decode()
        table = book.read("xl/tables/table1.xml").decode()  # an Excel table: filter buttons
        styles = book.read("xl/styles.xml").decode()
    assert "<autoFilter" in table and 'state="frozen"' in first
    assert "0.00%" in styles and "#,##0" in styles  # shares and amounts formatted
    with zipfile.ZipFile(tmp_path / "r.xlsx") as book:
        matrix = sheets.index("Segment × product matrix") + 1
        cells = book.read(f"xl/worksheets/sheet{matrix}.xml").decode()
    assert 'operator="beginsWith"' in cells and "not offered" in cells  # white space marked
    assert sheets[0] == "Segments (RFM)"

    # The same report in Latvian: no catalog message left in English, in the page or the book.
    proc = run("report", "--lang", "lv", "--html", "lv.html", "--xlsx", "lv.xlsx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "lv.html").read_text("utf-8")
    assert "<html lang='lv'>" in page and "<h2>Lojalitātes līmeņi</h2>" in page
    assert "<th>RFM segments</th>" in page  # a field's column under its label
    assert untranslated(html_texts(page), "lv") == []
    with zipfile.ZipFile(tmp_path / "lv.xlsx") as book:
        workbook = book.read("xl/workbook.xml").decode()
        cells = re.findall(r"<t[^>]*>([^<]*)</t>", book.read("xl/sharedStrings.xml").decode())
    sheets = re.findall(r'<sheet name="([^"]+)"', workbook)
    assert len(sheets) == len(VIEWS) and sheets[0] == "Segmenti (RFM)"
    assert untranslated([html.unescape(c) for c in sheets + cells], "lv") == []
    assert "nav piedāvāts" in " ".join(cells)  # the matrix's white space, in Latvian
