"""End to end on a real Tryton: a first full sync next to raw reads and writes.

The demo's Tryton database is grown to 10,000 customers and ~50,000 invoice lines
(``tryton_common.grown_database``, as ``extraction.py`` does, but with the new
invoices posted, ~10 minutes, so that every customer gets values), the fields are
provisioned once, then over ``--rounds`` rounds (best of each), on the same server:

- crm-bridge: ``crm_bridge.sync.sync(cfg, plugins, full=True)`` with the config
  loaded from a file and the plugins from their entry points, as ``crm-bridge sync
  --full`` does, on a fresh state store and table cache, every crm value cleared
  in Tryton beforehand: the first full sync, every cell new;
- raw: a hand-written keyset ``search_read`` of the models and fields the adapter
  reads for all nine tables (same 2,000-row pages), then a grouped
  ``party.write(ids1, v1, ids2, v2, ...)`` (500 pairs a call) of the values the sync
  wrote (read back after the sync, then cleared).

Clearing and reading back are outside both timings.  The crm-bridge time is split
into its phases (timers wrapped around the functions ``crm_bridge.sync`` calls) and
the time spent waiting for Tryton's answers in each.

    python benchmarks/tryton_sync.py [--customers 10000] [--rounds 3] [--database FILE]
                                     [--profile FILE]

``--database FILE`` keeps the grown database there (growing and posting take
10-30 minutes), or starts from it when it exists.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_bridge.adapters.tryton.rpc import TrytonRPC
from crm_bridge.adapters.tryton.sandbox import (
    ADMIN_PASSWORD,
    TrytonServer,
    build_template,
    template_end,
)
from tryton_common import Raw, grown_database, raw_extract

import crm_bridge.sync as sync_mod
from crm_bridge import config as config_mod
from crm_bridge import shrink_guard
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sample_data import Profile
from crm_bridge.state import StateStore
from crm_bridge.table_cache import TableCache

PASSWORD_ENV = "CRM_BRIDGE_BENCH_PASSWORD"
EVERY = [("active", "in", [True, False])]
# The phases of a sync, as the functions crm_bridge.sync calls (owner, attribute).
PHASES: list[tuple[str, Any, str]] = [
    ("connect (settings, adapter)", sync_mod, "connect"),
    ("check provisioning", sync_mod, "check_provisioning"),
    ("resume", sync_mod, "resume"),
    ("extract", sync_mod, "extract"),
    ("shrink guard", shrink_guard, "guard"),
    ("read back", sync_mod, "read_back_keys"),
    ("previous values (state)", sync_mod, "_previous"),
    ("compute", sync_mod, "compute"),
    ("validate", sync_mod, "validate"),
    ("plan", sync_mod, "make_plan"),
    ("state: remember, drift", StateStore, "remember"),
    ("state: remember, drift", StateStore, "record_edits"),
    ("apply (journal, writes, record)", sync_mod, "apply"),
    ("table cache save", TableCache, "save"),
    ("state: open, start, finish, prune", StateStore, "__init__"),
    ("state: open, start, finish, prune", StateStore, "start_run"),
    ("state: open, start, finish, prune", StateStore, "finish_run"),
    ("state: open, start, finish, prune", StateStore, "prune"),
]


class Phases:
    """Wall time in each phase of a sync, and Tryton's answering time within it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.tryton: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.current = "other"
        self.lock = threading.Lock()
        for label, owner, name in PHASES:
            setattr(owner, name, self._timed(label, getattr(owner, name)))
        post = TrytonRPC._post

        def timed_post(rpc: TrytonRPC, *args: Any, **kwargs: Any) -> Any:
            phase = self.current  # the write thread's calls count in the apply phase
            started = time.perf_counter()
            try:
                return post(rpc, *args, **kwargs)
            finally:
                with self.lock:
                    self.tryton[phase] += time.perf_counter() - started
                    self.calls[phase] += 1

        TrytonRPC._post = timed_post  # type: ignore[method-assign]

    def _timed(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            outer, self.current = self.current, label
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.current = outer

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.tryton.clear()
        self.calls.clear()


def write_config(folder: Path, url: str, as_of: str) -> Path:
    path = folder / "crm-bridge.toml"
    path.write_text(
        '[erp]\nadapter = "tryton"\n'
        f'url = "{url}"\ndatabase = "bench"\n'
        f'username = "admin"\npassword = "${{{PASSWORD_ENV}}}"\n\n'
        '[state]\npath = "state/state.db"\n\n'
        f'[sync]\nas_of = "{as_of}"\n',
        "utf-8",
    )
    return path


def crm_values(raw: Raw) -> dict[int, dict[str, Any]]:
    """Every party's crm values, as Tryton holds them."""
    pages = raw.pages("party.party", EVERY, ["crm"])
    return {r["id"]: r["crm"] for rows in pages for r in rows if r["crm"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--lines-per-invoice", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database",
        type=Path,
        help="a grown database file to start from (copied), or where to keep the one grown",
    )
    parser.add_argument(
        "--profile", help="after the rounds, profile one more crm-bridge sync into this file"
    )
    args = parser.parse_args()
    os.environ[PASSWORD_ENV] = ADMIN_PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        if args.database and args.database.exists():
            template = build_template(Profile())
            shutil.copyfile(args.database, folder / "bench.sqlite")
        else:
            template = grown_database(folder, args.customers, args.lines_per_invoice, post=True)
            print(f"database grown in {time.perf_counter() - started:.0f}s", flush=True)
            if args.database:
                shutil.copyfile(folder / "bench.sqlite", args.database)
        with TrytonServer(folder, "bench") as server:
            cfg_path = write_config(folder, server.url, template_end(template).isoformat())
            cfg = config_mod.load(cfg_path)
            plugins = load_plugins(cfg.disabled)
            adapter, fields = sync_mod.connect(cfg, plugins)
            try:
                sync_mod.provision(adapter, list(fields.values()), cfg)
            finally:
                adapter.close()
            raw = Raw(server.url, "bench")
            every = [r["id"] for rows in raw.pages("party.party", EVERY, []) for r in rows]

            def clear() -> None:
                for i in range(0, len(every), 2000):
                    raw.write(every[i : i + 2000], {"crm": None})
                assert not crm_values(raw)

            def crm_bridge_sync() -> tuple[float, float, Any]:
                """A first full sync as ``crm-bridge sync --full`` runs it: (config and
                plugins load, sync, result)."""
                clear()
                shutil.rmtree(folder / "state", ignore_errors=True)  # store and table cache
                t = time.perf_counter()
                cfg = config_mod.load(cfg_path)
                plugins = load_plugins(cfg.disabled)
                cfg.ensure_state_folder()
                loaded = time.perf_counter() - t
                t = time.perf_counter()
                result = sync_mod.sync(cfg, plugins, full=True)
                return loaded, time.perf_counter() - t, result

            phases = Phases()
            ours, loads, raw_reads, raw_writes, splits = [], [], [], [], []
            written: dict[int, dict[str, Any]] = {}
            for n in range(args.rounds):
                phases.reset()
                loaded, seconds, result = crm_bridge_sync()
                assert result.status == "ok", (result.status, result.error)
                ours.append(seconds)
                loads.append(loaded)
                splits.append((dict(phases.seconds), dict(phases.tryton), dict(phases.calls)))
                values = crm_values(raw)
                cells = sum(len(v) for v in values.values())
                assert cells == result.counts["planned_cells"], (cells, result.counts)
                assert not written or values == written, "the sync wrote other values"
                written = values
                clear()
                t = time.perf_counter()
                rows = raw_extract(raw, every_table=True)
                raw_reads.append(time.perf_counter() - t)
                items = [([cid], {"crm": v}) for cid, v in values.items()]
                t = time.perf_counter()
                for i in range(0, len(items), 500):
                    raw.write(*[x for pair in items[i : i + 500] for x in pair])
                raw_writes.append(time.perf_counter() - t)
                assert crm_values(raw) == values
                raw_total = raw_reads[-1] + raw_writes[-1]
                print(
                    f"round {n + 1}: crm-bridge sync {seconds:6.2f} s (+{loaded:.2f} s config "
                    f"and plugins)  raw {raw_total:6.2f} s (read {raw_reads[-1]:.2f} s, "
                    f"write {raw_writes[-1]:.2f} s)  {seconds / raw_total:.2f}x",
                    flush=True,
                )
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                crm_bridge_sync()
                profiler.disable()
                profiler.dump_stats(args.profile)
                print(f"profile of one more sync: {args.profile}")
    raws = [r + w for r, w in zip(raw_reads, raw_writes, strict=True)]
    best = min(range(len(ours)), key=ours.__getitem__)
    our_s, raw_s = ours[best], min(raws)
    counts = result.counts
    read = counts["read"]
    print(
        f"\n{read.get('customers', 0):,} customers, {read.get('invoices', 0):,} invoices, "
        f"{read.get('invoice_lines', 0):,} invoice lines; {counts['planned_cells']:,} cells "
        f"written on {counts['planned_customers']:,} customers in {counts['write_calls']} calls "
        f"({len(fields)} fields); raw rows read: {rows:,}"
    )
    print(f"{'raw search_read of the nine tables':<44} {min(raw_reads):7.2f} s (best)")
    print(f"{'raw grouped write, 500 pairs a call':<44} {min(raw_writes):7.2f} s (best)")
    print(f"{'raw, read + write':<44} {raw_s:7.2f} s (best round)")
    print(f"{'crm-bridge first full sync':<44} {our_s:7.2f} s (best round)")
    print(f"{'  + loading config and plugins':<44} {loads[best]:7.2f} s")
    print(f"\ncrm-bridge / raw: {our_s / raw_s:.2f}x (target <= 1.25x)")
    seconds, tryton, calls = splits[best]
    print(f"\nwhere the best crm-bridge round went ({our_s:.2f} s):")
    print(f"  {'phase':<36} {'wall':>8} {'Tryton':>8} {'calls':>6}")
    other = our_s - sum(seconds.values())
    for label in dict.fromkeys(label for label, _, _ in PHASES):
        if label in seconds:
            print(
                f"  {label:<36} {seconds[label]:7.2f}s {tryton.get(label, 0):7.2f}s "
                f"{calls.get(label, 0):6d}"
            )
    print(f"  {'other (lock, counts, observers)':<36} {other:7.2f}s")
    print(
        "rounds (crm-bridge / raw read + write): "
        + ", ".join(
            f"{o:.2f}/{r:.2f}+{w:.2f}s" for o, r, w in zip(ours, raw_reads, raw_writes, strict=True)
        )
    )


if __name__ == "__main__":
    main()
