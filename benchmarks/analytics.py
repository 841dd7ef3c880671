"""Analytics benchmark: all built-in plugins against one hand-written Polars query.

For each size (invoice lines / customers, Pareto-skewed, seeded) the data is
generated once and stored as Parquet - the form crm-bridge's table cache keeps
it in - then fresh processes compute from it, each timed from an open (lazy)
snapshot to its results, so reading the columns a run needs is part of its time:

- ``plugins``: every built-in plugin's ``compute`` exactly as a sync runs it
  (plus the core's vectorised output checks, reported separately);
- ``same``: only the plugin code that computes what the baseline computes
  (RFM, ABC, XYZ, value and payment KPIs) - the overhead of the plugin API;
- ``baseline``: one hand-written lazy Polars query computing RFM, ABC, XYZ and
  the main KPIs (distinct products on the lines of posted invoices, as the
  plugins define it).

Each prints wall time and peak RSS (VmHWM: the memory of the benchmark's own
program, not of the parent it was forked from); the parent prints the table.
The built-in plugins compute far more than the baseline (loyalty with points,
the offer matrix and next best offer, the funnel, a fitted BG/NBD + Gamma-Gamma
model), so "all / baseline" measures the price of those extras and
"same / baseline" the price of the plugin architecture.

    python benchmarks/analytics.py                 # 100k, 1M and 10M lines, best of 3
    python benchmarks/analytics.py --sizes 100k --rounds 1
    python benchmarks/analytics.py --sync          # and what a sync does next, once a size
    python benchmarks/analytics.py --sizes 1M --rounds 1 --sync --dry-run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"100k": 10_000, "1M": 100_000, "10M": 1_000_000}  # lines -> customers
END = dt.date(2026, 6, 30)


def generate(customers: int, folder: Path) -> dict[str, int]:
    from crm_bridge.sample_data import Profile, generate
    from crm_bridge.snapshot import TABLES

    snap = generate(Profile(customers=customers, invoices_per_year=1.0, end=END, seed=7))
    for table in TABLES:
        getattr(snap, table).write_parquet(folder / f"{table}.parquet")
    return snap.counts()


def load(folder: Path):
    """The snapshot over the Parquet files, lazily: each run reads what it uses."""
    from crm_bridge.snapshot import Snapshot

    return Snapshot.from_parquet(END, folder)


def _computed(folder: Path):
    """(snapshot, declared fields, plugin outputs, seconds): every built-in plugin's
    ``compute`` exactly as a sync runs it, from an open lazy snapshot."""
    from crm_bridge.compute import compute
    from crm_bridge.plugin_manager import load_plugins

    snap = load(folder)
    plugins = load_plugins()
    started = time.perf_counter()
    outputs = compute(plugins, snap, lambda name: {})
    seconds = time.perf_counter() - started
    errors = [o.error for o in outputs if o.error]
    assert not errors, errors
    return snap, plugins.fields(), outputs, seconds


def run_plugins(folder: Path) -> dict[str, float]:
    from crm_bridge.validate import check_output

    snap, fields, outputs, seconds = _computed(folder)
    started = time.perf_counter()
    problems = [check_output(o, fields, snap.customers["customer_id"]) for o in outputs]
    assert not any(problems), problems
    check_seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "check_seconds": check_seconds,
        "per_plugin": {o.plugin: round(o.seconds, 2) for o in outputs},  # type: ignore[dict-item]
        "cells": sum(o.frame.height * (o.frame.width - 1) for o in outputs if o.frame is not None),
    }


def run_sync(folder: Path) -> dict[str, float]:
    """What a sync does after compute, on a nightly re-run that changes nothing:
    validate (checks, every value normalised) and plan against the values read back
    and the values last applied (both what was computed).  The ERP's answer, in
    columns with numbers as floats, is made into keys apart (``keys_seconds``)."""
    from crm_bridge import columns
    from crm_bridge.plan import make_plan
    from crm_bridge.validate import validate

    snap, fields, outputs, _ = _computed(folder)
    compute_peak = peak_rss_mb()
    started = time.perf_counter()
    desired, rejections = validate(outputs, fields, snap.customers["customer_id"])
    validate_seconds = time.perf_counter() - started
    assert not rejections, rejections
    del outputs
    answer = desired.values_frame(fields, desired.names)
    started = time.perf_counter()
    current = columns.read_keys(answer, fields)
    keys_seconds = time.perf_counter() - started
    del answer
    started = time.perf_counter()
    plan = make_plan(desired, current, fields, current, customers=snap.customers["customer_id"])
    plan_seconds = time.perf_counter() - started
    assert not plan.changes, plan.changes[:3]
    return {
        "seconds": validate_seconds + plan_seconds,
        "validate_seconds": validate_seconds,
        "plan_seconds": plan_seconds,
        "keys_seconds": keys_seconds,
        "compute_peak_rss_mb": compute_peak,
        "cells": desired.frame.height * len(desired.names),
    }


def run_first(folder: Path) -> dict[str, float]:
    """A first run: validate and plan with nothing in the ERP nor in the store."""
    from crm_bridge.plan import make_plan
    from crm_bridge.validate import validate

    snap, fields, outputs, _ = _computed(folder)
    ran = {c for o in outputs if o.frame is not None for c in o.frame.columns[1:]}
    started = time.perf_counter()
    desired, rejections = validate(outputs, fields, snap.customers["customer_id"])
    validate_seconds = time.perf_counter() - started
    assert not rejections, rejections
    del outputs
    started = time.perf_counter()
    plan = make_plan(desired, {}, fields, {}, ran=ran, customers=snap.customers["customer_id"])
    cells = plan.cells if hasattr(plan, "cells") else len(plan.changes)  # what a dry run counts
    plan_seconds = time.perf_counter() - started
    # Every change as a Python value, as apply sends them (made by make_plan before
    # the plan was columnar); skipped past 5M cells, which would take gigabytes.
    started = time.perf_counter()
    made = len(plan.changes) if cells <= 5_000_000 else -1
    changes_seconds = time.perf_counter() - started if made >= 0 else -1.0
    return {
        "seconds": validate_seconds + plan_seconds,
        "validate_seconds": validate_seconds,
        "plan_seconds": plan_seconds,
        "changes_seconds": changes_seconds,
        "cells": cells,
    }


def run_held(folder: Path) -> dict[str, float]:
    """What the ERP holds on a nightly re-run: the values the plugins compute, as
    columns (numbers as floats, as a JSON API gives them), saved for ``run_dry``."""
    from crm_bridge.validate import validate

    snap, fields, outputs, _ = _computed(folder)
    desired, _ = validate(outputs, fields, snap.customers["customer_id"])
    desired.values_frame(fields, desired.names).write_parquet(folder / "held.parquet")
    return {"cells": desired.frame.height * len(desired.names)}


def run_dry(folder: Path) -> dict[str, float]:
    """A whole ``sync --dry-run`` through the in-memory adapter, on a nightly
    re-run (the ERP holds what the plugins computed in ``run_held``, and answers
    in columns), against the plugins' compute time in the same run.  Peak memory
    is the whole sync's, with the ERP's tables and values held by the adapter."""
    import polars as pl

    from crm_bridge import config as config_mod
    from crm_bridge.plugin_manager import load_plugins
    from crm_bridge.snapshot import TABLES, Snapshot
    from crm_bridge.sync import sync
    from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin

    tables = {t: pl.read_parquet(folder / f"{t}.parquet") for t in TABLES}
    adapter = MemoryAdapter(Snapshot(as_of=END, **tables))
    adapter.values = pl.read_parquet(folder / "held.parquet")
    del tables
    loaded_rss = peak_rss_mb()
    plugins = load_plugins()
    plugins.register(MemoryAdapterPlugin(adapter), "memory")
    path = folder / "dry" / "crm-bridge.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{END}"\n')
    started = time.perf_counter()
    result = sync(config_mod.load(path), plugins, dry_run=True)
    seconds = time.perf_counter() - started
    compute_seconds = sum(result.counts["plugin_seconds"].values())
    assert result.status == "ok", result.counts
    # Nothing differs from what run_held computed: sums are exact, so the same
    # data gives the same cents whatever order the threads add in.
    assert result.counts["planned_cells"] == 0, result.counts["per_field"]
    return {
        "seconds": seconds,
        "compute_seconds": compute_seconds,
        "planned_cells": result.counts["planned_cells"],
        "per_field": result.counts["per_field"],
        "loaded_rss_mb": loaded_rss,
    }


def run_same(folder: Path) -> dict[str, float]:
    from crm_bridge.plugins import kpis, segmentation

    snap = load(folder)
    started = time.perf_counter()
    out = segmentation.segments(snap, {})
    value = kpis.value_kpis(snap)
    payment = kpis.payment_kpis(snap)
    seconds = time.perf_counter() - started
    assert out.height and value.height and payment.height
    return {"seconds": seconds}


def run_clv_fit(folder: Path) -> dict[str, float]:
    from crm_bridge.plugins import clv

    snap = load(folder)
    fit = clv.fit(clv.summary(snap))
    return {"seconds": fit.seconds, "converged": float(fit.converged)}


def run_baseline(folder: Path) -> dict[str, float]:
    """RFM + ABC + XYZ + the main KPIs in one hand-written lazy query."""
    import polars as pl

    snap = load(folder)
    started = time.perf_counter()
    as_of = END
    y1, y2 = as_of - dt.timedelta(days=365), as_of - dt.timedelta(days=730)
    month0 = dt.date(as_of.year - 1, as_of.month, 1) if as_of.month < 12 else as_of
    sales = snap.scan("invoices").filter(
        pl.col("state").is_in(["posted", "paid"]) & (pl.col("date") <= as_of)
    )
    inv = pl.col("kind") == "invoice"
    last12 = pl.col("date") > y1
    per = (
        sales.group_by("customer_id")
        .agg(
            last=pl.col("date").filter(inv).max(),
            first=pl.col("date").filter(inv).min(),
            frequency=(inv & last12).sum(),
            monetary=pl.col("amount").filter(last12).sum(),
            prev=pl.col("amount").filter((pl.col("date") > y2) & ~last12).sum(),
            invoices=inv.sum(),
            total=pl.col("amount").sum(),
            late=(pl.col("paid_date") - pl.col("due_date"))
            .dt.total_days()
            .clip(lower_bound=0)
            .filter(inv & last12 & pl.col("paid_date").is_not_null())
            .mean(),
            overdue=pl.col("amount")
            .filter(inv & pl.col("paid_date").is_null() & (pl.col("due_date") < as_of))
            .sum(),
        )
        .filter(pl.col("last").is_not_null())
    )
    score = lambda e: (1 + (5 * (e.rank("min") - 1) / pl.len()).floor()).clip(1, 5)  # noqa: E731
    per = per.with_columns(
        recency=(pl.lit(as_of) - pl.col("last")).dt.total_days(),
    ).with_columns(
        r=score(-pl.col("recency")),
        f=score(pl.col("frequency")),
        m=score(pl.col("monetary")),
        aov=pl.col("monetary") / pl.col("frequency"),
        growth=pl.when(pl.col("prev") > 0).then(pl.col("monetary") / pl.col("prev") - 1),
    )
    per = (
        per.sort(["monetary", "customer_id"], descending=[True, False])
        .with_columns(
            share=pl.col("monetary").clip(lower_bound=0)
            / pl.col("monetary").clip(lower_bound=0).sum()
        )
        .with_columns(before=pl.col("share").cum_sum() - pl.col("share"))
        .with_columns(
            abc=pl.when(pl.col("before") < 0.8)
            .then(pl.lit("A"))
            .when(pl.col("before") < 0.95)
            .then(pl.lit("B"))
            .otherwise(pl.lit("C"))
        )
    )
    monthly = (
        sales.filter(pl.col("date") >= month0)
        .group_by("customer_id", pl.col("date").dt.month_start())
        .agg(v=pl.col("amount").sum())
        .group_by("customer_id")
        .agg(s=pl.col("v").sum(), ss=(pl.col("v") ** 2).sum())
    )
    # Distinct products bought: lines of the customer's posted invoices only.
    products = (
        snap.scan("invoice_lines")
        .select("invoice_id", "product_id")
        .join(sales.filter(inv).select("invoice_id", "customer_id"), on="invoice_id")
        .group_by("customer_id")
        .agg(products=pl.col("product_id").drop_nulls().n_unique())
    )
    out = (
        per.join(monthly, on="customer_id", how="left")
        .join(products, on="customer_id", how="left")
        .with_columns(
            cv=(
                (pl.col("ss") / 12 - (pl.col("s") / 12) ** 2).clip(lower_bound=0).sqrt()
                / (pl.col("s") / 12)
            )
        )
        .collect()
    )
    seconds = time.perf_counter() - started
    assert out.height > 0 and out["products"].sum() > 0
    return {"seconds": seconds}


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program.

    Not ``ru_maxrss``: that one survives exec, so a child forked from a parent
    holding ten million generated rows would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, folder: str) -> None:
    runner = {
        "plugins": run_plugins,
        "same": run_same,
        "baseline": run_baseline,
        "clv": run_clv_fit,
        "sync": run_sync,
        "first": run_first,
        "held": run_held,
        "dry": run_dry,
    }[kind]
    result = runner(Path(folder))
    result.setdefault("peak_rss_mb", peak_rss_mb())
    print(json.dumps(result))


def measure(kind: str, folder: Path) -> dict:
    env = {**os.environ, "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")}
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(rounds: int, folder: Path) -> dict[str, dict]:
    """Each kind ``rounds`` times, alternating: the fastest run, with the highest peak."""
    kinds = ("plugins", "same", "baseline", "clv")
    seen: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            seen[kind].append(measure(kind, folder))
    best = {k: min(runs, key=lambda r: r["seconds"]) for k, runs in seen.items()}
    for kind, runs in seen.items():
        best[kind]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        best[kind]["all_seconds"] = [round(r["seconds"], 2) for r in runs]  # type: ignore[assignment]
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100k,1M,10M")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind; best kept")
    parser.add_argument(
        "--sync", action="store_true", help="also validate + plan an unchanged re-run, once"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="also a whole sync --dry-run through the in-memory adapter, once",
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            counts = generate(SIZES[size], Path(tmp))
            gen = time.perf_counter() - started
            runs = best_of(args.rounds, Path(tmp))
            if args.sync:
                sync = measure("sync", Path(tmp))
                print(
                    f"{size}: after compute, an unchanged re-run: validate "
                    f"{sync['validate_seconds']:.2f}s, plan {sync['plan_seconds']:.2f}s for "
                    f"{sync['cells']:,} cells (values read back made columns in "
                    f"{sync.get('keys_seconds', 0):.2f}s); peak RSS "
                    f"{sync['compute_peak_rss_mb']:.0f}MB after compute, "
                    f"{sync['peak_rss_mb']:.0f}MB after planning",
                    flush=True,
                )
                first = measure("first", Path(tmp))
                each = first["changes_seconds"]
                print(
                    f"{size}: a first run: validate {first['validate_seconds']:.2f}s, plan "
                    f"{first['plan_seconds']:.2f}s for {first['cells']:,} new cells (then "
                    "each as a Python value: "
                    + (f"{each:.2f}s" if each >= 0 else "not made past 5M cells")
                    + f"); peak RSS {first['peak_rss_mb']:.0f}MB",
                    flush=True,
                )
            if args.dry_run:
                measure("held", Path(tmp))
                dry = measure("dry", Path(tmp))
                print(
                    f"{size}: a whole sync --dry-run through the in-memory adapter: "
                    f"{dry['seconds']:.2f}s, plugins' compute {dry['compute_seconds']:.2f}s in it: "
                    f"{dry['seconds'] / dry['compute_seconds']:.2f}x ({dry['planned_cells']} cells "
                    f"planned: {dry['per_field']}); peak RSS {dry['peak_rss_mb']:.0f}MB "
                    f"({dry['loaded_rss_mb']:.0f}MB with the ERP's tables and values loaded)",
                    flush=True,
                )
        lines, customers = counts["invoice_lines"], counts["customers"]
        rows.append((size, lines, customers, runs))
        print(
            f"{size}: {lines:,} lines, {customers:,} customers, generated in {gen:.1f}s; "
            f"per plugin {runs['plugins']['per_plugin']}; rounds: all plugins "
            f"{runs['plugins']['all_seconds']}, baseline {runs['baseline']['all_seconds']}",
            flush=True,
        )
    print()
    print(
        f"{'size':>5} {'lines':>11} {'customers':>10} {'all plugins':>11} {'lines/s':>10} "
        f"{'peak RSS':>9} {'same':>7} {'baseline':>8} {'base RSS':>8} {'all/base':>8} "
        f"{'same/base':>9} {'checks':>7} {'CLV fit':>7}"
    )
    for size, lines, customers, r in rows:
        p, same, base = r["plugins"], r["same"]["seconds"], r["baseline"]["seconds"]
        print(
            f"{size:>5} {lines:>11,} {customers:>10,} {p['seconds']:>10.2f}s "
            f"{lines / p['seconds']:>10,.0f} {p['peak_rss_mb']:>7.0f}MB {same:>6.2f}s "
            f"{base:>7.2f}s {r['baseline']['peak_rss_mb']:>6.0f}MB "
            f"{p['seconds'] / base:>7.2f}x {same / base:>8.2f}x "
            f"{p['check_seconds']:>6.2f}s {r['clv']['seconds']:>6.2f}s"
        )
    print(
        "\nall/base: every built-in plugin against one hand-written query computing "
        "RFM+ABC+XYZ+main KPIs;\nsame/base: the plugin code computing just those outputs. "
        "Issue target at 10M lines: all/base <= 1.5x, peak RSS <= 2 GB."
    )


if __name__ == "__main__":
    main()
