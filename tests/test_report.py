"""crm-bridge report after a real sync on Tryton: one offline HTML file with charts,
an XLSX workbook with one sheet per view, numbers that match what the ERP holds."""

from __future__ import annotations

import html
import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crm_bridge import config as config_mod
from crm_bridge import report
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.snapshot import Snapshot
from crm_bridge.sync import sync
from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin

from .conftest import Tryton
from .golden import data
from .golden.expected import EXPECTED
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


# -- the golden company: the numbers of the charts and tables against the hand-computed table
@pytest.fixture(scope="module")
def golden_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[list]]]:
    """The golden company synced through MemoryAdapter, then reported: the HTML page
    and the XLSX workbook's sheets (title -> rows of cell values)."""
    folder = tmp_path_factory.mktemp("golden-report")
    adapter = MemoryAdapter(Snapshot.from_rows(data.AS_OF, **data.tables()))
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    adapter.provision(list(plugins.fields().values()))
    path = folder / "crm-bridge.toml"
    path.write_text(
        f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{data.AS_OF}"\n[state]\npath = "s.db"\n'
    )
    cfg = config_mod.load(path)
    assert sync(cfg, plugins).status == "ok"
    made = report.from_last_run(cfg, plugins)
    report.write_html(made, folder / "r.html")
    report.write_xlsx(made, folder / "r.xlsx")
    return (folder / "r.html").read_text("utf-8"), _workbook(folder / "r.xlsx")


def _section(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>")[1].split("</section>")[0]


def _html_rows(section: str) -> list[list[str]]:
    """The cells of the section's table as the page shows them (text, unescaped)."""
    body = section.split("<tbody>")[1].split("</tbody>")[0]
    return [
        [html.unescape(c) for c in re.findall(r"<td class='[^']*'>([^<]*)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _workbook(path: Path) -> dict[str, list[list]]:
    """Each sheet's rows as Excel reads them: shared strings resolved, numbers as floats,
    each number paired with the format code Excel shows it with."""
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(path) as book:
        strings = [
            "".join(t.text or "" for t in si.iter(f"{MAIN}t"))
            for si in ET.fromstring(book.read("xl/sharedStrings.xml")).iter(f"{MAIN}si")
        ]
        styles = ET.fromstring(book.read("xl/styles.xml"))
        codes = {n.get("numFmtId"): n.get("formatCode") for n in styles.iter(f"{MAIN}numFmt")} | {
            "0": "General",
            "10": "0.00%",
            "3": "#,##0",
            "4": "#,##0.00",
        }
        xfs = styles.find(f"{MAIN}cellXfs")
        assert xfs is not None
        formats = [codes.get(xf.get("numFmtId", "0"), "?") for xf in xfs]
        names = re.findall(r'<sheet name="([^"]+)"', book.read("xl/workbook.xml").decode())
        sheets = {}
        for n, name in enumerate(names, 1):
            sheet = ET.fromstring(book.read(f"xl/worksheets/sheet{n}.xml"))
            rows = []
            for row in sheet.iter(f"{MAIN}row"):
                cells: list[Any] = []
                for c in row.iter(f"{MAIN}c"):
                    v = c.find(f"{MAIN}v")
                    text = v.text if v is not None else None
                    if c.get("t") == "s":
                        cells.append(strings[int(text or 0)])
                    elif text is None:
                        cells.append(None)
                    else:
                        cells.append((float(text), formats[int(c.get("s", "0"))]))
                rows.append(cells)
            sheets[html.unescape(name)] = rows
    return sheets


def _ticks(svg: str, axis: str) -> list[tuple[float, float]]:
    """(pixel position, value) of each tick of ``axis`` ("x" or "y") of a Matplotlib SVG:
    the tick mark's position and its label (written as a comment beside the glyphs)."""
    found = re.findall(
        rf'<g id="{axis}tick_\d+">.*?<use xlink:href="#\w+" x="([-\d.]+)" y="([-\d.]+)"'
        r".*?<!-- (.*?) -->",
        svg,
        re.S,
    )
    return [(float(x if axis == "x" else y), label) for x, y, label in found]  # type: ignore[misc]


def _scale(ticks: list[tuple[float, str]]) -> tuple[float, float]:
    """(pixel of 0, pixels per unit) of a linear axis, from its first and last tick."""
    (p0, v0), (p1, v1) = ticks[0], ticks[-1]
    unit = (p1 - p0) / (float(v1) - float(v0))
    return p0 - float(v0) * unit, unit


def _chart(page: str, title: str) -> str:
    section = _section(page, title)
    return section[section.index("<svg") : section.index("</svg>")]


def test_the_segment_chart_and_table_show_the_golden_counts_and_revenue(
    golden_report: tuple[str, dict[str, list[list]]],
) -> None:
    """Customers and 12-month revenue per RFM segment, read from the bar chart's bars,
    the HTML table and the XLSX sheet, equal the golden table's (tests/golden/expected.py)."""
    page, sheets = golden_report
    labels = dict(load_plugins().fields()["rfm_segment"].choices)
    expected: dict[str, list[float]] = {}
    for values in EXPECTED.values():
        if "rfm_segment" in values:
            row = expected.setdefault(labels[values["rfm_segment"]], [0, 0.0])
            row[0] += 1
            row[1] += values["kpi_revenue_12m"]
    # As written down by hand: Loyal C01 + C02, Lost C03 + C04, one each for the rest.
    assert expected == {
        "Loyal": [2, 21100.0],
        "Lost": [2, 500.0],
        "At risk": [1, 2500.0],
        "Promising": [1, 300.0],
        "Potential loyalist": [1, 1800.0],
    }
    buyers = sum(n for n, _ in expected.values())

    # The chart: each bar's length, read against the x axis's ticks, and its label.
    svg = _chart(page, "Segments (RFM)")
    zero, unit = _scale(_ticks(svg, "x"))
    by_y = {round(y, 3): label for y, label in _ticks(svg, "y")}
    bars = {}
    for d in re.findall(r'<path d="(M [^"]+)" clip-path="[^"]+" style="fill: #3b6ea5"', svg):
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", d)]
        x0, y0, x1, y1 = numbers[0], numbers[1], numbers[2], numbers[5]
        label = next(v for y, v in by_y.items() if min(y0, y1) <= y <= max(y0, y1))
        bars[label] = (x1 - x0) / unit + (x0 - zero) / unit
    assert {k: round(v, 3) for k, v in bars.items()} == {k: n for k, (n, _) in expected.items()}

    # The HTML table: segment, customers, revenue (12m) and share, as formatted.
    shown = {r[0]: r[1:] for r in _html_rows(_section(page, "Segments (RFM)"))}
    assert shown == {
        label: [str(n), f"{money:,.2f}", f"{n / buyers:.1%}"]
        for label, (n, money) in expected.items()
    }
    assert shown["Loyal"] == ["2", "21,100.00", "28.6%"]

    # The XLSX sheet: the same numbers, with the formats Excel shows them in
    # (counts are whole numbers with thousands separators).
    header, *rows = sheets["Segments (RFM)"]
    assert header == ["segment", "customers", "revenue_12m", "share"]
    assert {r[0]: r[1:] for r in rows} == {
        label: [
            (n, "#,##0;[Red]-#,##0"),
            (money, "#,##0.00"),
            (pytest.approx(n / buyers, abs=1e-12), "0.00%"),
        ]
        for label, (n, money) in expected.items()
    }


def test_the_pareto_chart_and_table_show_the_golden_revenue_per_abc_class(
    golden_report: tuple[str, dict[str, list[list]]],
) -> None:
    """The ABC Pareto view: each customer's 12-month revenue, cumulative share and ABC
    class (table, HTML and XLSX) and the curve's points (chart) equal the golden table's;
    revenue per ABC class sums to the hand-computed A 21,100, B 4,300, C 800."""
    page, sheets = golden_report
    names = {c["customer_id"]: c["name"] for c in data.CUSTOMERS}
    buyers = sorted(
        (
            (v["kpi_revenue_12m"], names[cid], v["abc_class"])
            for cid, v in EXPECTED.items()
            if v.get("kpi_revenue_12m", 0) > 0  # C04 bought nothing in the 12 months
        ),
        reverse=True,
    )
    total = sum(r for r, _, _ in buyers)
    assert total == 26200.0  # as in expected.py's ABC note
    cumulative = [sum(r for r, _, _ in buyers[: i + 1]) / total for i in range(len(buyers))]

    rows = _html_rows(_section(page, "ABC Pareto curve"))
    assert rows == [
        [str(i), name, f"{money:,.2f}", f"{cum:.1%}", f"{i / len(buyers):.1%}", abc]
        for i, ((money, name, abc), cum) in enumerate(zip(buyers, cumulative, strict=True), 1)
    ]
    per_class: dict[str, float] = {}
    for _, _, money, _, _, abc in rows:
        per_class[abc] = per_class.get(abc, 0.0) + float(money.replace(",", ""))
    assert per_class == {"A": 21100.0, "B": 4300.0, "C": 800.0}

    header, *cells = sheets["ABC Pareto curve"]
    assert header[:4] == ["rank", "customer", "revenue_12m", "cumulative_share"]
    assert {r[3][1] for r in cells} == {"0.00%"}  # Theta: 96.95% in Excel, 96.9% on the page
    assert [(r[1], r[2], r[3][0], r[5]) for r in cells] == [
        (name, (money, "#,##0.00"), pytest.approx(cum, abs=1e-12), abc)
        for (money, name, abc), cum in zip(buyers, cumulative, strict=True)
    ]

    # The curve: its points read against both axes' ticks.
    svg = _chart(page, "ABC Pareto curve")
    x0, xu = _scale(_ticks(svg, "x"))
    y0, yu = _scale(_ticks(svg, "y"))
    line = re.search(
        r'<path d="(M [^"]+)" clip-path="[^"]+" style="fill: none; stroke: #3b6ea5', svg
    )
    assert line, "no curve in the Pareto chart"
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", line.group(1))]
    points = [
        ((x - x0) / xu, (y - y0) / yu) for x, y in zip(numbers[::2], numbers[1::2], strict=True)
    ]
    expected_points = [((i + 1) / len(buyers), cum) for i, cum in enumerate(cumulative)]
    assert len(points) == len(expected_points)
    for (x, y), (ex, ey) in zip(points, expected_points, strict=True):
        assert abs(x - ex) < 1e-3 and abs(y - ey) < 1e-3, (points, expected_points)


def test_the_abc_xyz_matrix_shows_the_golden_classes(
    golden_report: tuple[str, dict[str, list[list]]],
) -> None:
    """Each cell: customers · 12-month revenue of that ABC and XYZ class (C04 and C05
    have no XYZ class: left out)."""
    page, _ = golden_report
    cells: dict[tuple[str, str], list[float]] = {}
    for values in EXPECTED.values():
        if "xyz_class" in values:
            cell = cells.setdefault((values["abc_class"], values["xyz_class"]), [0, 0.0])
            cell[0] += 1
            cell[1] += values["kpi_revenue_12m"]
    rows = _html_rows(_section(page, "ABC-XYZ matrix"))
    shown = {(r[0], xyz): text for r in rows for xyz, text in zip("XYZ", r[1:], strict=True)}
    assert shown == {
        (abc, xyz): "{} · {:,.0f}".format(*cells.get((abc, xyz), (0, 0.0)))
        for abc in "ABC"
        for xyz in "XYZ"
    }
    assert shown["B", "Y"] == "2 · 4,300"  # C07 2500 + C08 1800
