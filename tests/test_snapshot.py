"""The snapshot: lazy tables over Parquet, and the frames plugins share."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crm_bridge import Snapshot
from crm_bridge.compute import compute
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sample_data import Profile, generate
from crm_bridge.snapshot import TABLES

AS_OF = dt.date(2026, 6, 30)


def _rows(frame: pl.DataFrame) -> list[tuple]:
    cid = pl.col("customer_id").cast(pl.String)
    return frame.with_columns(cid).sort("customer_id").rows()


def test_plugins_give_the_same_values_from_parquet_as_from_memory(tmp_path: Path) -> None:
    snap = generate(Profile(customers=300, end=AS_OF))
    for table in TABLES:
        getattr(snap, table).write_parquet(tmp_path / f"{table}.parquet")
    lazy = Snapshot.from_parquet(AS_OF, tmp_path)
    plugins = load_plugins()
    in_memory = compute(plugins, snap, lambda name: {})
    from_files = compute(plugins, lazy, lambda name: {})
    assert [o.error for o in in_memory + from_files] == [None] * 6
    for a, b in zip(in_memory, from_files, strict=True):
        assert a.frame is not None and b.frame is not None and a.frame.height > 100
        assert _rows(a.frame) == _rows(b.frame), a.plugin
    assert lazy.counts() == snap.counts()


def test_a_parquet_snapshot_loads_a_table_only_when_it_is_used(tmp_path: Path) -> None:
    snap = generate(Profile(customers=50, end=AS_OF))
    for table in TABLES:
        getattr(snap, table).write_parquet(tmp_path / f"{table}.parquet")
    lazy = Snapshot.from_parquet(AS_OF, tmp_path)
    assert isinstance(lazy._tables["invoices"], pl.LazyFrame)
    assert lazy.sales().collect().height == snap.sales().collect().height
    assert isinstance(lazy._tables["invoices"], pl.LazyFrame)  # sales() read a few columns
    assert lazy.invoices.equals(snap.invoices)
    assert isinstance(lazy._tables["invoices"], pl.DataFrame)  # now loaded, and kept


def test_shared_frames_follow_a_replaced_table() -> None:
    snap = generate(Profile(customers=80, end=AS_OF))
    before = snap.bought().collect()
    first = snap.invoices["customer_id"][0]
    snap.invoices = snap.invoices.filter(pl.col("customer_id") != first)  # as quarantine does
    after = snap.bought().collect()
    assert before.filter(pl.col("customer_id") == first).height > 0
    assert after.filter(pl.col("customer_id") == first).height == 0


def test_bought_is_the_last_invoice_date_per_customer_and_product() -> None:
    lines = snapshot_lines()
    got = {(c, p): d for c, p, d in _rows(lines.bought().collect())}
    assert got == {("A", "P1"): dt.date(2026, 3, 1), ("A", "P2"): dt.date(2026, 1, 5)}


def snapshot_lines() -> Snapshot:
    def invoice(iid: str, day: dt.date, kind: str = "invoice", state: str = "posted") -> dict:
        return {
            "invoice_id": iid,
            "customer_id": "A",
            "number": iid,
            "kind": kind,
            "state": state,
            "date": day,
            "amount": 10.0,
        }

    def line(lid: str, iid: str, product: str) -> dict:
        return {
            "line_id": lid,
            "invoice_id": iid,
            "customer_id": "A",
            "product_id": product,
            "quantity": 1.0,
            "unit_price": 10.0,
            "amount": 10.0,
        }

    return Snapshot.from_rows(
        AS_OF,
        customers=[{"customer_id": "A", "name": "A", "active": True}],
        products=[{"product_id": p, "code": p, "name": p} for p in ("P1", "P2", "P3")],
        invoices=[
            invoice("i1", dt.date(2026, 1, 5)),
            invoice("i2", dt.date(2026, 3, 1)),
            invoice("i3", dt.date(2026, 4, 1), kind="credit_note"),  # not a purchase
            invoice("i4", dt.date(2026, 5, 1), state="draft"),  # not a sale
            invoice("i5", dt.date(2026, 7, 9)),  # after the analysis date
        ],
        invoice_lines=[
            line("l1", "i1", "P1"),
            line("l2", "i1", "P2"),
            line("l3", "i2", "P1"),
            line("l4", "i3", "P3"),
            line("l5", "i4", "P3"),
            line("l6", "i5", "P3"),
        ],
    )


def test_unknown_tables_are_refused() -> None:
    with pytest.raises(TypeError, match="invoicez"):
        Snapshot(AS_OF, invoicez=pl.DataFrame())


def test_sales_lines_are_the_lines_of_the_sales_joined_on_their_invoice() -> None:
    snap = generate(Profile(customers=200, end=AS_OF))
    sales = snap.sales().collect()
    plain = (
        snap.invoice_lines.drop("customer_id")
        .join(sales.select("invoice_id", "customer_id", "date", "kind"), on="invoice_id")
        .select("customer_id", "product_id", "quantity", "amount", "cost", "date", "kind")
    )
    got = snap.sales_lines().collect().select(plain.columns)
    key = [pl.col(c).cast(pl.String) for c in plain.columns]
    assert got.height == plain.height > 1000
    assert got.sort(key).equals(plain.sort(key))
