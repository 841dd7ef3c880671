"""Extraction benchmark on a real Tryton: crm-bridge's reader next to a raw loop.

The demo's Tryton database is grown to at least 10,000 customers and 50,000
invoice lines (draft invoices created through the ORM: posting is Tryton's slow
part and does not change what is read).  Then, in the same run, on the same
server, each reading the same models, domains and fields with 2,000-row pages:

- raw: a hand-written keyset ``search_read`` loop with plain requests;
- crm-bridge: ``TrytonAdapter.extract`` of customers, invoices and invoice lines,
  turning them into canonical rows (ids as text, amounts, receivable due dates).

    python benchmarks/extraction.py [--customers 10000] [--lines-per-invoice 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from crm_bridge.adapters.tryton.adapter import TrytonAdapter
from crm_bridge.adapters.tryton.sandbox import ADMIN_PASSWORD, TrytonServer
from tryton_common import Raw, grown_database, raw_extract

TABLES = ("customers", "invoices", "invoice_lines")


def adapter_extract(adapter: TrytonAdapter) -> int:
    adapter._lookups.clear()
    adapter._models = None
    return sum(len(page) for table in TABLES for page in adapter.extract(table))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--lines-per-invoice", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        grown_database(folder, args.customers, args.lines_per_invoice)
        print(f"database grown in {time.perf_counter() - started:.0f}s", flush=True)
        with TrytonServer(folder, "bench") as server:
            settings = {
                "url": server.url,
                "database": "bench",
                "username": "admin",
                "password": ADMIN_PASSWORD,
            }
            adapter = TrytonAdapter(settings)
            raw = Raw(server.url, "bench")
            counts = {t: sum(len(p) for p in adapter.extract(t)) for t in TABLES}  # warm-up
            print("rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()), flush=True)
            raw_times, ours = [], []
            for _ in range(args.rounds):  # alternate, best of N: the server's timing drifts
                t = time.perf_counter()
                raw_rows = raw_extract(raw)
                raw_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                our_rows = adapter_extract(adapter)
                ours.append(time.perf_counter() - t)
            assert raw_rows == our_rows == sum(counts.values()), (raw_rows, our_rows)
            raw_s, our_s = min(raw_times), min(ours)
            print(f"raw search_read loop : {raw_s:6.2f} s  {raw_rows / raw_s:9,.0f} records/s")
            print(f"crm-bridge extract   : {our_s:6.2f} s  {our_rows / our_s:9,.0f} records/s")
            print(f"crm-bridge / raw (records/s): {raw_s / our_s:.2f}x  (target >= 0.90x)")
            newest = max(
                r["updated_at"]
                for t in ("customers", "invoices")
                for p in adapter.extract(t)
                for r in p
            )
            adapter._lookups.clear()
            t = time.perf_counter()
            since = sum(len(p) for table in TABLES for p in adapter.extract(table, newest))
            print(
                f"incremental, nothing new since the newest record: "
                f"{time.perf_counter() - t:6.2f} s  {since:,} rows (the inclusive boundary)"
            )
            t = time.perf_counter()
            adapter._lookups.clear()
            from crm_bridge.snapshot import TABLES as ALL

            total = sum(len(page) for table in ALL for page in adapter.extract(table))
            print(f"all nine tables      : {time.perf_counter() - t:6.2f} s  {total:,} rows")


if __name__ == "__main__":
    main()
