"""Terminal output shared by the CLI and the commands plugins contribute:
progress bars for long steps, the plan summary, JSON output, warnings."""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm_bridge.errors import CrmBridgeWarning
from crm_bridge.i18n import _
from crm_bridge.sync import RunResult

console = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class EventLog:
    """``--log-json``: one JSON object per line on stderr for each warning, error,
    hook call (with ``--verbose``) and the run's outcome, for log collectors."""

    def __init__(self) -> None:
        self.enabled = False

    def emit(self, event: str, **data: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **data}
        sys.stderr.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        sys.stderr.flush()


log_events = EventLog()


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


@contextmanager
def plain_warnings(redact: Callable[[str], str] = str) -> Iterator[None]:
    """Show crm-bridge's own warnings as one ``Warning: ...`` line on stderr (no
    Python source line), each once, redacted; drop urllib3's per-request
    ``InsecureRequestWarning``: ``verify_tls = false`` has already been said once.
    Other warnings are shown as Python shows them."""
    from urllib3.exceptions import InsecureRequestWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if issubclass(category, CrmBridgeWarning) and log_events.enabled:
                log_events.emit("warning", message=redact(str(message)))
            elif issubclass(category, CrmBridgeWarning):
                word = _("Warning:")
                err.print(f"[yellow]{word}[/] {escape(redact(str(message)))}")
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        warnings.simplefilter("default", CrmBridgeWarning)
        warnings.simplefilter("ignore", InsecureRequestWarning)
        yield


@contextmanager
def sync_progress(enabled: bool = True) -> Iterator[tuple[Any, Any]]:
    """Yield (on_page, on_call) callbacks that drive two progress bars."""
    if not enabled:
        yield None, None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        tasks: dict[str, Any] = {}

        def on_page(table: str, n: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"read {table}", total=None)
            progress.advance(tasks[table], n)

        def on_call(n: int) -> None:
            if "write" not in tasks:
                tasks["write"] = progress.add_task("write customers", total=None)
            progress.advance(tasks["write"], n)

        yield on_page, on_call


def result_dict(result: RunResult, sample: int = 10) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "dry_run": result.dry_run,
        "status": result.status,
        "counts": result.counts,
        "rejected_plugins": [r.as_dict() for r in result.rejections],
        "rejected_records": result.applied.rejected if result.applied else {},
        "sample": [
            {"customer_id": c.customer_id, "field": c.field, "old": c.old, "new": c.new}
            for c in result.plan.changes[:sample]
        ],
    }


def print_result(result: RunResult, sample: int = 10) -> None:
    """The run's (or the dry run's plan's) summary in the language in effect."""
    plan = result.plan
    counts = result.counts
    read = counts["read"]
    console.print(
        _(
            "read {customers} customers, {invoices} invoices, {lines} invoice lines "
            "in {seconds}s total"
        ).format(
            customers=read["customers"],
            invoices=read["invoices"],
            lines=read["invoice_lines"],
            seconds=f"{counts['seconds']:.1f}",
        )
    )
    table = Table(
        title=_("Plan: {cells} changed cells on {customers} customers").format(
            cells=len(plan.changes), customers=plan.customers
        )
    )
    table.add_column(_("field"))
    table.add_column(_("changed cells"), justify="right")
    for name, n in plan.per_field().items():
        table.add_row(name, str(n))
    if plan.changes:
        console.print(table)
    if result.dry_run and plan.changes:
        sample_table = Table(
            title=_("Sample of {n} changes").format(n=min(sample, len(plan.changes)))
        )
        for column in (_("customer"), _("field"), _("old"), _("new")):
            sample_table.add_column(column)
        for c in plan.changes[:sample]:
            sample_table.add_row(c.customer_id, c.field, str(c.old), str(c.new))
        console.print(sample_table)
    if result.applied:
        written = _(
            "wrote {customers} customers in {calls} journaled batch(es); run {run}: {status}"
        )  # a dry run applies nothing: applied is None
        console.print(
            written.format(
                customers=result.applied.written,
                calls=result.applied.calls,
                run=result.run_id,
                status=result.status,
            )
        )
    elif result.dry_run:
        console.print(
            _("dry run: would write {customers} customers; nothing was changed").format(
                customers=plan.customers
            )
        )
    for name, n in counts.get("drift", {}).items():
        drift = _("{n} value(s) of {field} were edited in the ERP since the last run")
        err.print(f"[yellow]{escape(drift.format(n=n, field=name))}[/]")
    for table_name, reasons in counts.get("quarantined", {}).items():
        for reason, info in reasons.items():
            error = f": {escape(info['error'])}" if info.get("error") else ""
            head = _("set aside {count} {table}:").format(count=info["count"], table=table_name)
            tail = _("(e.g. {example}); fix them in the ERP, the next run picks them up")
            err.print(
                f"[yellow]{escape(head)}[/] {reason}{error} {tail.format(example=info['example'])}"
            )
    for r in result.rejections:
        head = _("plugin {plugin!r} rejected:").format(plugin=r.plugin)
        err.print(f"[yellow]{escape(head)}[/] {escape(r.reason)}")
    if result.applied:
        for cid, reason in list(result.applied.rejected.items())[:10]:
            head = _("customer {customer} rejected by the ERP:").format(customer=cid)
            err.print(f"[yellow]{escape(head)}[/] {reason}")
