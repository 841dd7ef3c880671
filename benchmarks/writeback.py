"""Write-back benchmark on a real Tryton with 10,000 customers.

In the same run, on the same server:

- raw grouped write: the best hand-written JSON-RPC loop, ``party.write(ids1, v1,
  ids2, v2, ...)`` with 500 pairs a call (each customer's full crm dict);
- naive write: one ``write([id], v)`` call per customer, timed on a sample and
  extrapolated (at ~40 calls/s the full run would take minutes);
- crm-bridge's apply of a plan in which every field of the built-in plugins
  changed for every customer (journal, audit trail and state store included);
- an unchanged re-run (plan against the values read back: zero writes);
- a re-run where 1% of the customers changed.

    python benchmarks/writeback.py [--customers 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from crm_bridge.adapters.tryton.adapter import TrytonAdapter
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, TrytonServer, _bin, _env
from tryton_common import Raw

from crm_bridge.adapter import Batch
from crm_bridge.apply import apply
from crm_bridge.compute import compute
from crm_bridge.plan import make_plan
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sample_data import Profile, generate
from crm_bridge.state import StateStore
from crm_bridge.validate import validate

SEED_PARTIES = """
import sys
from trytond.pool import Pool
from trytond.transaction import Transaction
codes = sys.argv[2].split(",")
pool = Pool(sys.argv[1]); pool.init()
with Transaction().start(sys.argv[1], 1) as t:
    Party = pool.get("party.party")
    Party.create([{"name": c, "code": c} for c in codes])
    t.commit()
"""


def build(folder: Path, codes: list[str]) -> TrytonServer:
    (folder / "bench.sqlite").touch()
    (folder / "pw").write_text(ADMIN_PASSWORD + "\n")
    subprocess.run(
        [
            _bin("trytond-admin"),
            "-d",
            "bench",
            "-u",
            "party",
            "crm_bridge",
            "--activate-dependencies",
            "--email",
            "admin@example.com",
        ],
        env=_env(folder, TRYTONPASSFILE=str(folder / "pw")),
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    subprocess.run(
        [sys.executable, "-O", "-c", SEED_PARTIES, "bench", ",".join(codes)],
        env=_env(folder),
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return TrytonServer(folder, "bench").start()


class TimedWrites:
    """Wraps an adapter's write to add up the time spent waiting for Tryton."""

    def __init__(self, write: Callable[[list[Batch]], object]) -> None:
        self.write, self.seconds = write, 0.0

    def __call__(self, batches: list[Batch]) -> object:
        started = time.perf_counter()
        try:
            return self.write(batches)
        finally:
            self.seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    end = dt.date(2026, 6, 30)
    snap = generate(Profile(customers=args.customers, end=end, seed=11))
    plugins = load_plugins()
    fields = plugins.fields()
    outputs = compute(plugins, snap, lambda name: {})
    desired, rejections = validate(outputs, fields, snap.customers["customer_id"])
    assert not rejections, rejections
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        server = build(folder, snap.customers["customer_id"].cast(str).to_list())
        print(
            f"Tryton with {args.customers:,} parties ready in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        try:
            settings = {
                "adapter": "tryton",
                "url": server.url,
                "database": "bench",
                "username": "admin",
                "password": ADMIN_PASSWORD,
            }
            adapter = TrytonAdapter(settings)
            adapter.provision(list(fields.values()))
            ids = {}
            for page in adapter.pages("party.party", [], ["code"]):
                ids.update({r["code"]: str(r["id"]) for r in page})
            wanted = {ids[c]: v for c, v in desired.rows(fields).items()}
            cells = sum(v is not None for vals in wanted.values() for v in vals.values())

            # Raw grouped write, 500 (ids, values) pairs a call, and crm-bridge's apply of
            # a plan where every cell changed, alternated over --rounds rounds from cleared
            # values (best of each: Tryton's timing drifts as its database file grows).
            raw = Raw(server.url, "bench")
            items = [
                ([int(c)], {"crm": {k: v for k, v in vals.items() if v is not None}})
                for c, vals in wanted.items()
            ]
            every = [int(c) for c in wanted]

            def clear() -> None:
                for i in range(0, len(every), 2000):
                    raw.write(every[i : i + 2000], {"crm": None})

            state = StateStore(folder / "state.db")
            raw_times, apply_times, erp_times = [], [], []
            for _ in range(args.rounds):
                clear()
                t = time.perf_counter()
                for i in range(0, len(items), 500):
                    raw.write(*[x for pair in items[i : i + 500] for x in pair])
                raw_times.append(time.perf_counter() - t)

                clear()
                current = {cid: v for page in adapter.current_values() for cid, v in page}
                plan = make_plan(wanted, current, fields)
                assert len(plan.changes) == cells, (len(plan.changes), cells)
                run_id = state.start_run(False)
                timed = TimedWrites(adapter.write)
                adapter.write = timed  # type: ignore[method-assign]
                t = time.perf_counter()
                result = apply(plan, adapter, state, run_id, 500)
                apply_times.append(time.perf_counter() - t)
                erp_times.append(timed.seconds)
                adapter.close()
                adapter = TrytonAdapter(settings)
                assert result.written == len(wanted) and not result.rejected
            raw_s, apply_s = min(raw_times), min(apply_times)
            erp_s = erp_times[apply_times.index(apply_s)]

            # Naive: one call per customer, on a sample.
            sample = items[:300]
            t = time.perf_counter()
            for pair in sample:
                raw.write(*pair)
            naive_s = (time.perf_counter() - t) * len(items) / len(sample)

            # Unchanged re-run: read back, plan, apply nothing.
            adapter.close()
            adapter = TrytonAdapter(settings)
            t = time.perf_counter()
            current = {cid: v for page in adapter.current_values() for cid, v in page}
            again = make_plan(wanted, current, fields)
            unchanged = apply(again, adapter, state, state.start_run(False), 500)
            unchanged_s = time.perf_counter() - t
            assert unchanged.calls == 0 and not again.changes

            # 1% of the customers changed.
            changed = dict(wanted)
            for cid in list(wanted)[: max(1, len(wanted) // 100)]:
                changed[cid] = {**wanted[cid], "kpi_clv_12m": Decimal("123.45")}
            adapter.close()
            adapter = TrytonAdapter(settings)
            t = time.perf_counter()
            current = {cid: v for page in adapter.current_values() for cid, v in page}
            read_back_s = time.perf_counter() - t
            t = time.perf_counter()
            small = make_plan(changed, current, fields)
            one_pct = apply(small, adapter, state, state.start_run(False), 500)
            one_pct_s = time.perf_counter() - t
            assert one_pct.written == len(wanted) // 100
            adapter.close()
        finally:
            server.stop()
    n = len(wanted)
    print(f"\n{n:,} customers, {cells:,} cells ({len(fields)} fields)")
    print(f"{'raw grouped write (500 pairs/call)':<42} {raw_s:7.1f}s {n / raw_s:8.0f} customers/s")
    print(
        f"{'naive write, one call per customer (est.)':<42} {naive_s:7.1f}s "
        f"{n / naive_s:8.0f} customers/s"
    )
    print(
        f"{'crm-bridge apply (journal, audit, state)':<42} {apply_s:7.1f}s "
        f"{n / apply_s:8.0f} customers/s"
    )
    print(f"{'  of which waiting for Tryton':<42} {erp_s:7.1f}s")
    print(
        f"{'unchanged re-run (read back, plan, apply)':<42} {unchanged_s:7.1f}s "
        f"{unchanged.calls} write calls"
    )
    print(f"{'read back all crm values (part of extract)':<42} {read_back_s:7.1f}s")
    print(
        f"{'1% changed re-run (plan, apply)':<42} {one_pct_s:7.1f}s "
        f"{one_pct.written} customers written"
    )
    print(
        "rounds (raw / apply): "
        + ", ".join(f"{r:.1f}/{a:.1f}s" for r, a in zip(raw_times, apply_times, strict=True))
    )
    print(f"\ncrm-bridge apply / raw grouped speed: {raw_s / apply_s:.2f}x (target >= 0.9x)")
    print(
        f"naive / crm-bridge speed: {apply_s / naive_s:.3f}x "
        f"(crm-bridge is {naive_s / apply_s:.0f}x faster)"
    )
    print(
        f"1% re-run / full apply time: {one_pct_s / apply_s:.1%} (target <= 5%); "
        f"with the read-back: {(one_pct_s + read_back_s) / apply_s:.1%}"
    )


if __name__ == "__main__":
    main()
