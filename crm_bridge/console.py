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
                err.print(f"[yellow]Warning:[/] {escape(redact(str(message)))}")
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
    plan = result.plan
    verb = "would write" if result.dry_run else "wrote"
    counts = result.counts
    read = counts["read"]
    console.print(
        f"read {read['customers']} customers, {read['invoices']} invoices, "
        f"{read['invoice_lines']} invoice lines in {counts['seconds']:.1f}s total"
    )
    table = Table(title=f"Plan: {len(plan.changes)} changed cells on {plan.customers} customers")
    table.add_column("field")
    table.add_column("changed cells", justify="right")
    for name, n in plan.per_field().items():
        table.add_row(name, str(n))
    if plan.changes:
        console.print(table)
    if result.dry_run and plan.changes:
        sample_table = Table(title=f"Sample of {min(sample, len(plan.changes))} changes")
        for column in ("customer", "field", "old", "new"):
            sample_table.add_column(column)
        for c in plan.changes[:sample]:
            sample_table.add_row(c.customer_id, c.field, str(c.old), str(c.new))
        console.print(sample_table)
    if result.applied:
        console.print(
            f"{verb} {result.applied.written} customers in {result.applied.calls} "
            f"journaled batch(es); run {result.run_id}: {result.status}"
        )
    elif result.dry_run:
        console.print(f"dry run: {verb} {plan.customers} customers; nothing was changed")
    for name, n in counts.get("drift", {}).items():
        err.print(f"[yellow]{n} value(s) of {name} were edited in the ERP since the last run[/]")
    for table, reasons in counts.get("quarantined", {}).items():
        for reason, info in reasons.items():
            error = f": {escape(info['error'])}" if info.get("error") else ""
            err.print(
                f"[yellow]set aside {info['count']} {table}:[/] {reason}{error} "
                f"(e.g. {info['example']}); fix them in the ERP, the next run picks them up"
            )
    for r in result.rejections:
        err.print(f"[yellow]plugin {r.plugin!r} rejected:[/] {escape(r.reason)}")
    if result.applied:
        for cid, reason in list(result.applied.rejected.items())[:10]:
            err.print(f"[yellow]customer {cid} rejected by the ERP:[/] {reason}")
