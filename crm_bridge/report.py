"""Report: the last run's results as one self-contained HTML file and an XLSX workbook.

Built from what the last successful run left behind, without asking the ERP:
the tables it read (``crm_bridge.table_cache``), the values crm-bridge holds in
the ERP (the state store's applied values) and that run's changes.  Views are
Polars frames; the core makes the common ones (segments, ABC Pareto, ABC-XYZ,
loyalty tiers and movements, KPIs per segment, customers at risk) and plugins
add theirs through the ``report_views`` hook (segmentation: the segment x
product matrix).  Charts are Matplotlib SVG embedded in the HTML: no network,
no CDN.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from crm_bridge import diagnose as diagnosis
from crm_bridge import i18n
from crm_bridge.config import Config
from crm_bridge.errors import PluginError, StateError
from crm_bridge.fields import Field
from crm_bridge.i18n import N_, _
from crm_bridge.plugin_manager import Plugins
from crm_bridge.snapshot import Snapshot
from crm_bridge.state import StateStore
from crm_bridge.table_cache import TableCache

NUMERIC = (pl.Float64, pl.Int64, pl.Decimal)
TIER_ORDER_FIELD = "loyalty_tier"
# Values of "not offered" cells (white space) in plugin matrices are highlighted.
WHITE_SPACE = N_("not offered")
# The report's own column names: shown as they are in English, translated in other languages
# (a field's column shows the field's label).
COLUMNS = (
    N_("segment"),
    N_("customers"),
    N_("revenue_12m"),
    N_("share"),
    N_("tier"),
    N_("rank"),
    N_("customer"),
    N_("cumulative_share"),
    N_("customer_share"),
    N_("abc"),
    N_("revenue"),
    N_("customer_id"),
    N_("movement"),
    N_("from"),
    N_("to"),
    N_("name"),
    N_("process"),
    N_("parameter"),
    N_("status"),
    N_("evidence"),
    N_("advice"),
)


@dataclass
class View:
    title: str
    frame: pl.DataFrame
    chart: str | None = None  # an SVG document
    note: str = ""


@dataclass
class Report:
    as_of: dt.date
    run_id: int | None
    views: list[View] = field(default_factory=list)
    language: str = i18n.DEFAULT
    # column name -> heading; a column not listed shows its name (English does not translate)
    headings: dict[str, str] = field(default_factory=dict)

    def heading(self, column: str) -> str:
        return self.headings.get(column, column)


def from_last_run(cfg: Config, plugins: Plugins, language: str = i18n.DEFAULT) -> Report:
    """The report of the last successful real run: its tables, values and changes,
    in ``language`` (one of :data:`crm_bridge.i18n.LANGUAGES`)."""
    with i18n.using(language):
        return _from_last_run(cfg, plugins)


def _from_last_run(cfg: Config, plugins: Plugins) -> Report:
    if not cfg.state_path.exists():
        raise no_data()
    cached = TableCache.of(cfg).load(math.inf)
    store = StateStore(cfg.state_path, readonly=True)
    try:
        runs = store.runs(50)
        last = next((r for r in runs if not r["dry_run"] and r["status"] != "failed"), None)
        if cached is None or last is None:
            raise no_data()
        applied, changes = store.applied(), store.changes(last["id"])
    finally:
        store.close()
    tables: dict[str, Any] = cached.tables
    snapshot = Snapshot(as_of=cfg.as_of, **tables)
    fields = plugins.fields()
    values = values_frame(snapshot, applied, fields)
    views: dict[str, pl.DataFrame] = {}
    for impl in plugins.pm.hook.report_views.get_hookimpls():
        try:
            found = plugins.call(
                "report_views",
                impl.plugin_name,
                impl.function,
                snapshot=snapshot,
                values=values,
                settings=cfg.plugin_settings(impl.plugin_name),
            )
        except Exception as exc:  # a plugin's bug stops the report with its name
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed to build its report view: "
                f"{type(exc).__name__}: {exc}",
                hint=f"report it to the plugin's authors, or: crm-bridge plugins disable "
                f"{impl.plugin_name}",
            ) from None
        views.update(found or {})
    return build(snapshot, values, fields, changes, views, last["id"])


def values_frame(
    snapshot: Snapshot, applied: Mapping[str, Mapping[str, Any]], fields: Mapping[str, Field]
) -> pl.DataFrame:
    """One row per customer: id, name, and each declared field's value held in the ERP."""
    names = [n for n in fields if any(n in v for v in applied.values())]
    rows = [
        {"customer_id": cid, **{n: _plain(v.get(n)) for n in names}} for cid, v in applied.items()
    ]
    schema: dict[str, Any] = {"customer_id": pl.String}
    for n in names:
        kind = fields[n].type
        schema[n] = {
            "integer": pl.Int64,
            "numeric": pl.Float64,
            "boolean": pl.Boolean,
            "date": pl.Date,
        }.get(kind, pl.String)
    values = pl.DataFrame(rows, schema=schema, orient="row")
    customers = snapshot.customers.select(pl.col("customer_id").cast(pl.String), "name")
    return customers.join(values, on="customer_id", how="inner")


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def build(
    snapshot: Snapshot,
    values: pl.DataFrame,
    fields: Mapping[str, Field],
    changes: list[tuple[str, str, Any, Any]],
    plugin_views: Mapping[str, pl.DataFrame],
    run_id: int | None,
) -> Report:
    report = Report(snapshot.as_of, run_id, language=i18n.current())
    add = report.views.append
    shown = _with_labels(values, fields)  # selection keys as the labels people read
    revenue = "kpi_revenue_12m" if "kpi_revenue_12m" in values.columns else None
    if "rfm_segment" in values.columns:
        seg = _distribution(values, "rfm_segment", revenue, _labels(fields, "rfm_segment"))
        add(
            View(
                _("Segments (RFM)"),
                seg,
                _bar(seg, "segment", "customers", _("Customers per RFM segment")),
            )
        )
    if revenue:
        pareto = _pareto(values, revenue)
        add(
            View(
                _("ABC Pareto curve"),
                pareto,
                _pareto_chart(pareto),
                _("Customers by 12-month revenue, largest first; the lines mark 80% and 95%."),
            )
        )
    if {"abc_class", "xyz_class"} <= set(values.columns):
        add(View(_("ABC-XYZ matrix"), _abc_xyz(values, revenue)))
    if TIER_ORDER_FIELD in values.columns:
        labels = _labels(fields, TIER_ORDER_FIELD)
        tiers = _distribution(values, TIER_ORDER_FIELD, revenue, labels, "tier")
        add(
            View(
                _("Loyalty tiers"), tiers, _bar(tiers, "tier", "customers", _("Customers per tier"))
            )
        )
        add(View(_("Loyalty movements in the last run"), _movements(changes, fields)))
    kpis = [c for c in values.columns if c.startswith("kpi_") and values[c].dtype in NUMERIC]
    if kpis and "rfm_segment" in values.columns:
        per = shown.group_by("rfm_segment").agg(
            customers=pl.len(), **{k: pl.col(k).mean().round(2) for k in kpis}
        )
        add(View(_("KPIs per segment (averages)"), per.sort("customers", descending=True)))
    if "kpi_churn_risk" in values.columns:
        cols = [
            c
            for c in (
                "name",
                "rfm_segment",
                "loyalty_tier",
                "kpi_churn_risk",
                "rfm_recency_days",
                revenue,
                "kpi_clv_12m",
            )
            if c and c in values.columns
        ]
        risk = (
            shown.filter(pl.col("kpi_churn_risk").is_not_null())
            .sort(
                ["kpi_churn_risk", *([revenue] if revenue else [])],
                descending=True,
                nulls_last=True,
            )
            .select(cols)
            .head(25)
        )
        add(
            View(
                _("Top customers at risk"),
                risk,
                note=_("Highest churn risk first, then revenue."),
            )
        )
    for title, frame in plugin_views.items():
        add(View(_(title), frame))
    add(
        View(
            _("CRM maturity diagnosis"),
            diagnosis.frame(diagnosis.diagnose(snapshot)),
            note=_("+ data present and consistent, +/- present but partial, - absent."),
        )
    )
    if report.language != i18n.DEFAULT:
        report.headings = {
            c: _(fields[c].label) if c in fields else _(c)
            for view in report.views
            for c in view.frame.columns
        }
    return report


def _labels(fields: Mapping[str, Field], name: str) -> dict[str, str]:
    return {k: _(v) for k, v in fields[name].choices} if name in fields else {}


def _with_labels(values: pl.DataFrame, fields: Mapping[str, Field]) -> pl.DataFrame:
    return values.with_columns(
        pl.col(n).replace_strict({k: _(v) for k, v in f.choices}, default=pl.col(n))
        for n, f in fields.items()
        if f.type == "selection" and n in values.columns
    )


def _distribution(
    values: pl.DataFrame,
    column: str,
    revenue: str | None,
    labels: Mapping[str, str],
    name: str = "segment",
) -> pl.DataFrame:
    aggs = [pl.len().alias("customers")]
    if revenue:
        aggs.append(pl.col(revenue).sum().round(2).alias("revenue_12m"))
    out = (
        values.filter(pl.col(column).is_not_null())
        .group_by(column)
        .agg(aggs)
        .with_columns(share=pl.col("customers") / pl.col("customers").sum())
        .sort("customers", descending=True)
    )
    named = pl.col(column).replace_strict(labels, default=pl.col(column)).alias(name)
    return out.select(named, *out.columns[1:])


def _pareto(values: pl.DataFrame, revenue: str) -> pl.DataFrame:
    sorted_ = values.filter(pl.col(revenue) > 0).sort(revenue, descending=True)
    total = sorted_[revenue].sum() or 1.0
    return sorted_.select(
        rank=pl.int_range(1, pl.len() + 1),
        customer=pl.col("name"),
        revenue_12m=pl.col(revenue).round(2),
        # Shares unrounded: the page rounds them once, to 0.1% (rounded to 4 places
        # first, 96.9466% would show as 97.0%); the XLSX shows them as 0.00%.
        cumulative_share=pl.col(revenue).cum_sum() / total,
        customer_share=pl.int_range(1, pl.len() + 1) / pl.len(),
        abc_class=pl.col("abc_class") if "abc_class" in values.columns else pl.lit(None),
    )


def _abc_xyz(values: pl.DataFrame, revenue: str | None) -> pl.DataFrame:
    cells = values.filter(pl.col("abc_class").is_not_null() & pl.col("xyz_class").is_not_null())
    aggs = [pl.len().alias("customers")]
    if revenue:
        aggs.append(pl.col(revenue).sum().round(2).alias("revenue"))
    grouped = cells.group_by("abc_class", "xyz_class").agg(aggs)
    rows = []
    for abc in ("A", "B", "C"):
        row: dict[str, Any] = {"abc": abc}
        for xyz in ("X", "Y", "Z"):
            hit = grouped.filter((pl.col("abc_class") == abc) & (pl.col("xyz_class") == xyz))
            n = int(hit["customers"][0]) if hit.height else 0
            money = float(hit["revenue"][0]) if hit.height and revenue else 0.0
            row[xyz] = f"{n} · {i18n.number(money)}" if revenue else str(n)
        rows.append(row)
    return pl.DataFrame(rows)


def _movements(
    changes: list[tuple[str, str, Any, Any]], fields: Mapping[str, Field]
) -> pl.DataFrame:
    order = {k: i for i, (k, _) in enumerate(fields[TIER_ORDER_FIELD].choices)}
    labels = _labels(fields, TIER_ORDER_FIELD)
    rows = []
    for cid, name, old, new in changes:
        if name != TIER_ORDER_FIELD:
            continue
        if old is None:
            move = _("new")
        else:
            move = _("upgrade") if order.get(new, -1) > order.get(old, -1) else _("downgrade")
        rows.append(
            {
                "customer_id": cid,
                "movement": move,
                "from": labels.get(old, old) if old else None,
                "to": labels.get(new, new),
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.String,
            "movement": pl.String,
            "from": pl.String,
            "to": pl.String,
        },
    )
    summary = frame.group_by("movement", "from", "to").agg(customers=pl.len())
    return summary.sort(["movement", "customers"], descending=[False, True])


# -- charts ----------------------------------------------------------------------
def _svg(draw: Callable[[Any], None]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Chinese is not in Matplotlib's own font: leave the text as text for the browser's fonts.
    cjk = i18n.current() == "zh_CN"
    with warnings.catch_warnings(), plt.rc_context({"svg.fonttype": "none"} if cjk else {}):
        warnings.filterwarnings("ignore", "Glyph .* missing", UserWarning)
        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
        draw(ax)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _bar(frame: pl.DataFrame, label: str, value: str, title: str) -> str:
    def draw(ax: Any) -> None:
        ax.barh(
            frame[label].cast(pl.String).to_list()[::-1],
            frame[value].to_list()[::-1],
            color="#3b6ea5",
        )
        ax.set_title(title)
        ax.set_xlabel(_(value))

    return _svg(draw)


def _pareto_chart(pareto: pl.DataFrame) -> str:
    def draw(ax: Any) -> None:
        ax.plot(
            pareto["customer_share"].to_list(),
            pareto["cumulative_share"].to_list(),
            color="#3b6ea5",
        )
        for mark in (0.8, 0.95):
            ax.axhline(mark, color="#c0392b", linestyle="--", linewidth=1)
            ax.text(0.99, mark - 0.07, i18n.percent(mark), ha="right", color="#c0392b")
        ax.set_xlabel(_("share of customers"))
        ax.set_ylabel(_("share of 12-month revenue"))
        ax.set_title(_("ABC Pareto curve"))
        ax.set_ylim(0, 1.02)

    return _svg(draw)


# -- output ------------------------------------------------------------------------
CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f3f5f8;position:sticky;top:0}td.num{text-align:right}
td.white{background:#fff3c4}.note{color:#666;font-size:.9em}figure{margin:0}"""


def write_html(report: Report, path: Path) -> None:
    with i18n.using(report.language):
        path.write_text(_html(report), "utf-8")


def _html(report: Report) -> str:
    title = _("crm-bridge report")
    made = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
    if report.run_id:
        line = _("As of {date}, run {run}; made {made}.")
    else:
        line = _("As of {date}; made {made}.")
    parts = [
        f"<!doctype html><html lang='{report.language.replace('_', '-')}'><head>"
        "<meta charset='utf-8'>",
        f"<title>{html.escape(title)} {report.as_of}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='note'>"
        + html.escape(line.format(date=i18n.date(report.as_of), run=report.run_id, made=made))
        + "</p>",
    ]
    for view in report.views:
        parts.append(f"<section><h2>{html.escape(view.title)}</h2>")
        if view.note:
            parts.append(f"<p class='note'>{html.escape(view.note)}</p>")
        if view.chart:
            parts.append(f"<figure class='chart'>{view.chart}</figure>")
        parts.append(_table(view.frame, report.heading))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(frame: pl.DataFrame, heading: Callable[[str], str], limit: int = 500) -> str:
    head = "".join(f"<th>{html.escape(heading(c))}</th>" for c in frame.columns)
    body = []
    white_space = _(WHITE_SPACE)
    shares = ["share" in c for c in frame.columns]
    for row in frame.head(limit).iter_rows():
        cells = []
        for share, value in zip(shares, row, strict=True):
            kind = "num" if isinstance(value, int | float) else ""
            if isinstance(value, str) and value.startswith(white_space):
                kind = "white"
            text = _text(value, share)
            cells.append(f"<td class='{kind}'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        "<p class='note'>"
        + html.escape(_("{rows} more rows in the XLSX.").format(rows=frame.height - limit))
        + "</p>"
        if frame.height > limit
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _text(value: Any, share: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return i18n.percent(value, 1) if share else i18n.number(value, 2)
    return str(value)


def write_xlsx(report: Report, path: Path) -> None:
    import xlsxwriter

    with xlsxwriter.Workbook(str(path)) as workbook, i18n.using(report.language):
        used: set[str] = set()
        white_space = _(WHITE_SPACE)
        for view in report.views:
            name = _sheet_name(view.title, used)
            frame = _headed(view.frame, report.heading)
            formats: dict[str, str] = {}
            for (source, dtype), column in zip(
                view.frame.schema.items(), frame.columns, strict=True
            ):
                if dtype == pl.Float64:
                    formats[column] = "0.00%" if "share" in source else "#,##0.00"
                elif dtype == pl.Int64:
                    formats[column] = "#,##0"
                elif dtype == pl.Date:
                    formats[column] = "yyyy-mm-dd"
            # White space (a target product never offered) stands out, as in the HTML.
            white = {
                column: {
                    "type": "text",
                    "criteria": "begins with",
                    "value": white_space,
                    "format": {"bg_color": "#FFF3C4"},
                }
                for column, dtype in frame.schema.items()
                if dtype == pl.String and frame[column].str.starts_with(white_space).any()
            }
            frame.write_excel(
                workbook,
                worksheet=name,
                autofilter=True,
                freeze_panes=(1, 0),
                column_formats=formats,  # type: ignore[arg-type]
                conditional_formats=white,  # type: ignore[arg-type]
                autofit=True,
                include_header=True,
            )


def _headed(frame: pl.DataFrame, heading: Callable[[str], str]) -> pl.DataFrame:
    """The frame with its columns under their headings (kept apart if two read the same)."""
    names: dict[str, str] = {}
    for column in frame.columns:
        name, n = heading(column), 2
        while name in names.values():
            name, n = f"{heading(column)} ({n})", n + 1
        names[column] = name
    return frame.rename(names)


def _sheet_name(title: str, used: set[str]) -> str:
    base = "".join(c for c in title if c not in "[]:*?/\\")[:31]
    name, n = base, 2
    while name in used:
        name = f"{base[:28]}-{n}"
        n += 1
    used.add(name)
    return name


def no_data() -> StateError:
    return StateError(
        "there is nothing to report yet: no successful sync has been recorded",
        hint="run crm-bridge sync first (a dry run keeps nothing to report from)",
    )
