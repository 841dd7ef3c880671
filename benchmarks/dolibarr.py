"""Extraction and write-back on a live Dolibarr: crm-bridge next to plain ``requests``.

On the same server, alternating rounds, best of N:

- extraction: crm-bridge's ``dolibarr`` profile reading customers, products, invoices,
  their lines, their payments and the proposals (quotes) with their lines, next to a
  hand-written ``requests`` loop reading the same endpoints with the same 500-row pages
  and the payments of the same invoices, four at a time;
- write-back: three crm fields on every customer, crm-bridge's ``write`` (four
  parallel PUTs, the profile's concurrency) next to plain PUTs from four threads.

It needs a Dolibarr tree like the live tests (``make dolibarr-tree``); the filled
database is built once per size and cached.

    python benchmarks/dolibarr.py [--customers 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from crm_bridge.adapters.rest.adapter import RestAdapter

from crm_bridge import mapping
from crm_bridge.adapter import Batch
from crm_bridge.fields import Field
from crm_bridge.sample_data import Profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import dolibarr_live as live

TABLES = (
    "customers",
    "products",
    "invoices",
    "invoice_lines",
    "payments",
    "sale_orders",
    "sale_order_lines",
)
FIELDS = (
    Field("bench_segment", "selection", "Segment", choices=(("a", "A"), ("b", "B"))),
    Field("bench_score", "integer", "Score"),
    Field("bench_since", "date", "Since"),
)


def ours(erp: live.Dolibarr) -> tuple[float, int, int]:
    adapter = RestAdapter(mapping.load("dolibarr"), {"url": erp.api_url, "api_key": live.SYNC_KEY})
    started = time.perf_counter()
    n = sum(len(page) for table in TABLES for page in adapter.extract(table))
    return time.perf_counter() - started, n, adapter.calls


def plain(erp: live.Dolibarr) -> tuple[float, int, int]:
    s = requests.Session()
    s.headers.update({"DOLAPIKEY": live.SYNC_KEY, "Accept": "application/json"})
    calls = 0

    def get(path: str, **params: Any) -> Any:
        nonlocal calls
        r = s.get(erp.api_url + path, params=params, timeout=120)
        calls += 1
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return r.json()

    def listing(path: str, **extra: Any) -> list[dict[str, Any]]:
        out, page = [], 0
        while True:
            rows = get(path, sortfield="t.rowid", sortorder="ASC", limit=500, page=page, **extra)
            out.extend(rows)
            if len(rows) < 500:
                return out
            page += 1

    started = time.perf_counter()
    customers = listing("/thirdparties", mode=1)
    products = listing("/products")
    invoices = listing("/invoices")
    lines = [line for inv in invoices for line in inv.get("lines") or []]
    todo = [inv["id"] for inv in invoices if str(inv["status"]) in ("1", "2")]
    with ThreadPoolExecutor(4) as pool:
        payments = [
            p for ps in pool.map(lambda i: get(f"/invoices/{i}/payments"), todo) for p in ps
        ]
    quotes = listing("/proposals")
    quote_lines = [line for q in quotes for line in q.get("lines") or []]
    n = len(customers) + len(products) + 2 * len(invoices) + len(lines) + len(payments)
    n += len(quotes) + len(quote_lines) - len(invoices)
    return time.perf_counter() - started, n, calls


def write_ours(erp: live.Dolibarr, ids: list[str], values: dict[str, Any]) -> float:
    adapter = RestAdapter(mapping.load("dolibarr"), {"url": erp.api_url, "api_key": live.SYNC_KEY})
    started = time.perf_counter()
    result = adapter.write([Batch((cid,), values) for cid in ids])
    assert len(result.written) == len(ids), result.rejected
    return time.perf_counter() - started


def write_plain(erp: live.Dolibarr, ids: list[str], values: dict[str, Any]) -> float:
    s = requests.Session()
    s.headers.update({"DOLAPIKEY": live.SYNC_KEY, "Accept": "application/json"})
    body = {
        "array_options": {
            "options_crm_bench_segment": values["bench_segment"],
            "options_crm_bench_score": values["bench_score"],
            "options_crm_bench_since": int(
                dt.datetime.combine(values["bench_since"], dt.time(), dt.UTC).timestamp()
            ),
        }
    }

    def put(cid: str) -> None:
        r = s.put(f"{erp.api_url}/thirdparties/{cid}", json=body, timeout=120)
        r.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, ids))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tree = live.find_tree()
    if tree is None:
        sys.exit(live.SKIP_REASON)
    profile = Profile(customers=args.customers, years=2, seed=7, end=live.PROFILE.end)
    with tempfile.TemporaryDirectory() as tmp:
        erp = live.start(tree, Path(tmp), "UTC", profile)
        try:
            run(erp, args.rounds)
        finally:
            erp.stop()


def run(erp: live.Dolibarr, rounds: int) -> None:
    meta = erp.meta
    print(
        f"Dolibarr {erp.version}: {len(meta['customers'])} customers, "
        f"{len(meta['invoices'])} invoices ({meta['paid']} paid), {len(meta['quotes'])} proposals"
    )
    best: dict[str, float] = {}
    for r in range(rounds):
        for name, fn in (
            (("ours", ours), ("plain", plain))
            if r % 2 == 0
            else (
                ("plain", plain),
                ("ours", ours),
            )
        ):
            seconds, n, calls = fn(erp)
            best[name] = min(best.get(name, seconds), seconds)
            print(
                f"  extraction round {r + 1} {name:<5}: {seconds:6.2f} s, {n} rows, {calls} calls"
            )
    print(
        f"extraction: crm-bridge {best['ours']:.2f} s, plain requests {best['plain']:.2f} s: "
        f"{best['plain'] / best['ours']:.2f}x the plain loop's speed"
    )

    RestAdapter(
        mapping.load("dolibarr"), {"url": erp.api_url, "api_key": live.ADMIN_KEY}
    ).provision(FIELDS)
    ids = [str(i) for i in meta["customers"].values()]
    wbest: dict[str, float] = {}
    for r in range(rounds):
        values = {
            "bench_segment": "ab"[r % 2],
            "bench_score": r,
            "bench_since": dt.date(2024, 1, 1 + r),
        }
        order = (("ours", write_ours), ("plain", write_plain))
        for name, fn in order if r % 2 == 0 else order[::-1]:
            seconds = fn(erp, ids, {**values, "bench_score": r * 10 + (name == "plain")})
            wbest[name] = min(wbest.get(name, seconds), seconds)
            print(
                f"  write round {r + 1} {name:<5}: {seconds:6.2f} s, "
                f"{len(ids) / seconds:5.1f} customers/s"
            )
    print(
        f"write-back ({len(ids)} customers, 3 fields, 4 at a time): crm-bridge "
        f"{len(ids) / wbest['ours']:.1f}/s, plain PUTs {len(ids) / wbest['plain']:.1f}/s: "
        f"{wbest['plain'] / wbest['ours']:.2f}x"
    )


if __name__ == "__main__":
    main()
