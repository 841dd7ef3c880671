"""The sudden-empty guard: a run that reads no customers, or far fewer customers
or invoices than the last successful run, stops before anything is planned.

An API user who lost a right, or a filter that matches nothing, looks exactly
like an empty ERP: every request succeeds and returns little or nothing, and the
values computed from that would be wrong for every customer.  So the run stops
with a message that names rights and filters; ``crm-bridge sync --allow-shrink``
lets a real shrink (customers archived, a company split off) through once.

The threshold is ``quality.min_read_share`` (default 0.5): the share of the last
successful run's count a table must reach.  The counts compared are the records
kept for analysis (after quarantine), so an ERP whose records all became
unreadable stops here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crm_bridge.config import Config
from crm_bridge.errors import CrmBridgeError
from crm_bridge.i18n import N_, _
from crm_bridge.snapshot import Snapshot
from crm_bridge.state import StateStore

GUARDED = ("customers", "invoices")
TABLE_WORDS = {"customers": N_("customers"), "invoices": N_("invoices")}
EXIT_CODE = 4


class ShrinkError(CrmBridgeError):
    """The ERP served far fewer records than before: nothing was planned or written."""

    exit_code = EXIT_CODE


def guard(cfg: Config, state: StateStore | None, snapshot: Snapshot, allowed: bool) -> None:
    """Stop the run (ShrinkError) unless the snapshot looks like the ERP's whole
    content; ``allowed`` (sync --allow-shrink) skips the check."""
    if not allowed:
        last = last_read(state, cfg.state_path)
        check(snapshot.counts(), last, cfg.min_read_share, snapshot.quarantined)


def last_read(state: StateStore | None, path: Path) -> tuple[int, dict[str, int]] | None:
    """(run id, read counts) of the last successful real run, or None."""
    store = state
    if store is None:
        if not path.exists():
            return None
        store = StateStore(path, readonly=True)
    try:
        for run in store.runs(limit=100):
            read = run["counts"].get("read")
            if run["status"] in ("ok", "partial") and not run["dry_run"] and read:
                return int(run["id"]), {k: int(v) for k, v in read.items()}
        return None
    finally:
        if store is not state:
            store.close()


def check(
    read: Mapping[str, int],
    last: tuple[int, Mapping[str, int]] | None,
    min_share: float = 0.5,
    quarantined: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Raise ShrinkError when ``read`` looks like a rights or filter problem."""
    shrunk = []
    if read.get("customers", 0) == 0:
        before = (
            _(" (run {run} read {n})").format(run=last[0], n=last[1].get("customers", 0))
            if last
            else ""
        )
        shrunk.append(_("no customers") + before)
    elif last:
        run_id, counts = last
        for table in GUARDED:
            was, now = counts.get(table, 0), read.get(table, 0)
            if was and now < min_share * was:
                shrunk.append(
                    _("{now} {table} where run {run} read {was}").format(
                        now=now, table=_(TABLE_WORDS[table]), run=run_id, was=was
                    )
                )
    if not shrunk:
        return
    aside = [
        f"{sum(i['count'] for i in (quarantined or {}).get(t, {}).values())} {_(TABLE_WORDS[t])}"
        for t in GUARDED
        if (quarantined or {}).get(t)
    ]
    set_aside = (
        _("; set aside as unusable: {tables}").format(tables=", ".join(aside)) if aside else ""
    )
    raise ShrinkError(
        _(
            "stopped before planning: the ERP served {what}{set_aside}. "
            "The API user may lack the right to read all customers (or invoices), or the "
            "adapter's filters exclude them"
        ).format(what=_(" and ").join(shrunk), set_aside=set_aside),
        hint=_(
            "check the API user's rights in the ERP and the adapter's filters "
            "(the [erp] table, its mapping file); if the ERP really holds this few now, "
            "run crm-bridge sync --allow-shrink once"
        ),
    )
