"""Readable but absurd ERP records are set aside with a reason and counted (issue 14, 8).

In-memory: an adapter that serves the generated data plus tampered records, read
by ``extract`` exactly as a sync reads it.  The same cases against a real Tryton
are in ``test_quarantine_tryton.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from crm_bridge.adapters.tryton.adapter import _invoice_row

from crm_bridge import config as config_mod
from crm_bridge.adapter import Capabilities
from crm_bridge.errors import ConfigError
from crm_bridge.extract import extract
from crm_bridge.plausibility import Plausibility, ascending, percentile, repeated
from crm_bridge.quarantine import UNREADABLE
from crm_bridge.sample_data import Profile, generate
from crm_bridge.snapshot import TABLES, Snapshot
from crm_bridge.testing import MemoryAdapter

AS_OF = dt.date(2026, 6, 30)


class Tampered(MemoryAdapter):
    """Serves the snapshot's rows plus ``extra`` rows per table (and pages of its own,
    e.g. the records the ERP failed to serve)."""

    def __init__(
        self,
        snapshot: Snapshot,
        extra: dict[str, list[dict[str, Any]]] | None = None,
        pages: dict[str, list[list[dict[str, Any]]]] | None = None,
    ) -> None:
        super().__init__(snapshot)
        self.extra = extra or {}
        self.pages = pages or {}

    def extract(self, table: str, since: dt.datetime | None = None) -> Iterator[list[dict]]:
        yield getattr(self.snapshot, table).to_dicts() + self.extra.get(table, [])
        yield from self.pages.get(table, [])


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return generate(Profile(customers=60, end=AS_OF))


def first_invoice(snap: Snapshot, year: int | None = None) -> dict[str, Any]:
    rows = snap.invoices.filter(pl.col("state").is_in(["posted", "paid"]))
    if year:
        rows = rows.filter(pl.col("date").dt.year() == year)
    return rows.row(0, named=True)


def line_of(snap: Snapshot, invoice_id: str, line_id: str, **changes: Any) -> dict[str, Any]:
    line = snap.invoice_lines.row(0, named=True)
    return {**line, "line_id": line_id, "invoice_id": invoice_id, **changes}


def reasons(quarantined: dict[str, dict[str, Any]], table: str) -> dict[str, tuple[int, str]]:
    return {r: (i["count"], i["example"]) for r, i in quarantined.get(table, {}).items()}


def test_the_generated_data_has_nothing_implausible(snap: Snapshot) -> None:
    snapshot, _ = extract(MemoryAdapter(snap), AS_OF)
    assert snapshot.quarantined == {}
    assert snapshot.counts() == snap.counts()


def test_dates_before_the_earliest_or_after_the_analysis_date_are_set_aside(
    snap: Snapshot,
) -> None:
    base = first_invoice(snap)
    old = {**base, "invoice_id": "i-1900", "number": "N-1900", "date": dt.date(1900, 1, 1)}
    future = {**base, "invoice_id": "i-2999", "number": "N-2999", "date": dt.date(2999, 12, 31)}
    adapter = Tampered(
        snap,
        {"invoices": [old, future], "invoice_lines": [line_of(snap, "i-2999", "l-2999")]},
    )
    snapshot, _ = extract(adapter, AS_OF)
    got = reasons(snapshot.quarantined, "invoices")
    latest = max(AS_OF, dt.date.today()) + dt.timedelta(days=1)
    assert got == {
        "date before 1990-01-01 (default earliest date)": (1, "i-1900"),
        f"date after {latest} (later than the analysis date and today)": (1, "i-2999"),
    }
    # The 2999 invoice was silently dropped from the sales before; now it is counted,
    # and so is its line.
    assert reasons(snapshot.quarantined, "invoice_lines") == {"invoice set aside": (1, "l-2999")}
    assert snapshot.invoices.height == snap.invoices.height


def test_the_earliest_date_is_the_first_fiscal_year_or_the_configured_one(
    snap: Snapshot,
) -> None:
    base = first_invoice(snap)
    early = {**base, "invoice_id": "i-early", "number": "N-early", "date": dt.date(2019, 5, 1)}

    class WithFiscalYears(Tampered):
        def first_fiscal_date(self) -> dt.date:
            return dt.date(2020, 1, 1)

    snapshot, _ = extract(WithFiscalYears(snap, {"invoices": [early]}), AS_OF)
    assert reasons(snapshot.quarantined, "invoices") == {
        "date before 2020-01-01 (start of the first fiscal year)": (1, "i-early")
    }
    configured = {"earliest_date": "2019-01-01"}
    snapshot, _ = extract(WithFiscalYears(snap, {"invoices": [early]}), AS_OF, quality=configured)
    assert snapshot.quarantined == {}


def test_a_past_analysis_date_does_not_set_aside_what_it_does_not_look_at_yet() -> None:
    rules = Plausibility.of({}, as_of=dt.date(2025, 6, 30), today=dt.date(2026, 12, 1))
    assert rules.latest == dt.date(2026, 12, 2)  # today (later) plus a day of slack
    ahead = Plausibility.of({"future_days": 0}, dt.date(2027, 12, 31), today=dt.date(2026, 12, 1))
    assert ahead.latest == dt.date(2027, 12, 31)


def test_amounts_far_outside_the_customer_base_are_set_aside(snap: Snapshot) -> None:
    base = first_invoice(snap)
    biggest = snap.invoices["amount"].abs().max()
    assert isinstance(biggest, float)
    absurd = [
        {**base, "invoice_id": "i-neg", "number": "N-neg", "amount": -999_999_999_999.99},
        {**base, "invoice_id": "i-1e15", "number": "N-1e15", "amount": 1e15},
        {**base, "invoice_id": "i-nan", "number": "N-nan", "amount": float("nan")},
        {**base, "invoice_id": "i-inf", "number": "N-inf", "amount": float("-inf")},
        # A big but real deal (20x the largest invoice) is kept.
        {**base, "invoice_id": "i-big", "number": "N-big", "amount": 20 * biggest},
    ]
    lines = [
        line_of(snap, base["invoice_id"], "l-1e15", amount=1e15),
        line_of(snap, base["invoice_id"], "l-cost-nan", cost=float("nan")),
    ]
    adapter = Tampered(snap, {"invoices": absurd, "invoice_lines": lines})
    snapshot, _ = extract(adapter, AS_OF)
    got = reasons(snapshot.quarantined, "invoices")
    beyond = [r for r in got if r.startswith("amount beyond ±")]
    assert len(beyond) == 1 and "x the 99th percentile" in beyond[0]
    assert got[beyond[0]][0] == 2 and got[beyond[0]][1] in ("i-neg", "i-1e15")
    assert got["amount is not a finite number"] == (2, "i-nan")
    assert "i-big" in snapshot.invoices["invoice_id"].to_list()
    line_reasons = reasons(snapshot.quarantined, "invoice_lines")
    assert [r for r in line_reasons if r.startswith("amount beyond")] != []
    assert line_reasons["cost is not a finite number"] == (1, "l-cost-nan")
    # The revenue the plugins see is what it was, plus the real deal.
    revenue = snapshot.sales().select(pl.col("amount").sum()).collect().item()
    clean = snap.sales().select(pl.col("amount").sum()).collect().item()
    assert revenue == pytest.approx(clean + 20 * biggest)


def test_a_configured_cap_sets_aside_amounts_beyond_it(snap: Snapshot) -> None:
    snapshot, _ = extract(MemoryAdapter(snap), AS_OF, quality={"max_amount": 1000})
    over = snap.invoices.filter(pl.col("amount").abs() > 1000).height
    assert over > 0
    assert (
        reasons(snapshot.quarantined, "invoices")["amount beyond ±1,000.00 (quality.max_amount)"][0]
        == over
    )


def test_a_duplicated_invoice_is_counted_once(snap: Snapshot) -> None:
    base = first_invoice(snap, year=2025)
    copy = {**base, "invoice_id": "i-copy"}
    next_year = {**base, "invoice_id": "i-2026", "date": dt.date(2026, 1, 15)}  # numbering restarts
    drafts = [  # Odoo numbers every draft "/"
        {**base, "invoice_id": f"i-draft{n}", "number": "/", "state": "draft"} for n in (1, 2)
    ]
    adapter = Tampered(snap, {"invoices": [copy, next_year, *drafts]})
    snapshot, _ = extract(adapter, AS_OF)
    assert reasons(snapshot.quarantined, "invoices") == {
        "duplicate number for the same customer and year": (1, "i-copy")
    }
    assert {"i-2026", "i-draft2"} <= set(snapshot.invoices["invoice_id"].to_list())


def test_lines_on_unknown_products_are_set_aside(snap: Snapshot) -> None:
    invoice = first_invoice(snap)["invoice_id"]
    lines = [
        line_of(snap, invoice, "l-deleted", product_id="P-deleted"),
        line_of(snap, invoice, "l-text", product_id=None),  # a free-text line is fine
    ]
    snapshot, _ = extract(Tampered(snap, {"invoice_lines": lines}), AS_OF)
    assert reasons(snapshot.quarantined, "invoice_lines") == {"unknown product": (1, "l-deleted")}
    assert "l-text" in snapshot.invoice_lines["line_id"].to_list()


def test_records_the_erp_cannot_serve_are_counted_by_id_also_on_incremental_runs(
    snap: Snapshot,
) -> None:
    error = "Invalid isoformat string: '31/12/2025'"
    invoice_id = first_invoice(snap)["invoice_id"]
    lines = snap.invoice_lines.filter(pl.col("invoice_id") == invoice_id).height

    class Incremental(Tampered):
        capabilities = Capabilities(incremental=("invoices", "invoice_lines"))

        def extract(self, table: str, since: dt.datetime | None = None) -> Iterator[list[dict]]:
            if since is None:
                yield from super().extract(table)

    served = Snapshot(AS_OF, **{t: getattr(snap, t) for t in TABLES})
    served.invoices = snap.invoices.filter(pl.col("invoice_id") != invoice_id)
    broken = Incremental(
        served, pages={"invoices": [[{"invoice_id": invoice_id, UNREADABLE: error}]]}
    )
    snapshot, tables = extract(broken, AS_OF)
    expected = {"count": 1, "example": invoice_id, "error": error}
    assert snapshot.quarantined["invoices"] == {"the ERP cannot read it": expected}
    assert list(snapshot.quarantined["invoice_lines"]) == ["invoice set aside"]
    assert snapshot.quarantined["invoice_lines"]["invoice set aside"]["count"] == lines > 0
    # The next run reads only what changed (nothing): the record is still set aside.
    again, _ = extract(broken, AS_OF, cached=tables)
    assert again.quarantined["invoices"] == {"the ERP cannot read it": expected}


def test_a_posted_tryton_invoice_without_an_amount_is_not_counted_as_zero() -> None:
    record = {
        "id": 7,
        "party": 3,
        "number": "7",
        "state": "paid",
        "invoice_date": dt.date(2026, 3, 1),
        "currency.": {"code": "EUR"},
        "untaxed_amount_cache": None,
        "move": None,
        "write_date": None,
        "create_date": dt.datetime(2026, 3, 1),
    }
    assert _invoice_row(record, {}, {})["amount"] is None  # set aside: missing amount
    draft = _invoice_row({**record, "state": "draft"}, {}, {})
    assert draft["amount"] == 0.0  # Tryton stores the amount when posting


def test_quality_settings_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "crm-bridge.toml"
    path.write_text('[erp]\nadapter = "memory"\n[quality]\nmin_read_share = 2\n')
    with pytest.raises(ConfigError, match=r"quality\.min_read_share: 2 is greater than"):
        config_mod.load(path)
    path.write_text('[erp]\nadapter = "memory"\n[quality]\nearliest = "2020-01-01"\n')
    with pytest.raises(ConfigError, match="quality"):
        config_mod.load(path)
    path.write_text(
        '[erp]\nadapter = "memory"\n[quality]\nearliest_date = "2020-01-01"\n'
        "amount_factor = 50\nmax_amount = 1e7\nmin_read_share = 0.8\nfuture_days = 0\n"
    )
    cfg = config_mod.load(path)
    assert cfg.min_read_share == 0.8
    rules = Plausibility.of(cfg.quality, AS_OF, dt.date(2010, 1, 1), today=AS_OF)
    assert (rules.earliest, rules.latest, rules.amount_factor, rules.max_amount) == (
        dt.date(2020, 1, 1),
        AS_OF,
        50.0,
        1e7,
    )


def test_a_repeated_number_counts_only_among_posted_invoices() -> None:
    """A draft numbered like a later posted invoice does not make that one a repeat;
    the quick "any repeat?" of each rule is true whenever a row is flagged."""
    rules = Plausibility.of(None, AS_OF, None)
    frame = pl.DataFrame(
        {
            "invoice_id": ["d", "p1", "p2", "p3", "p4"],
            "customer_id": ["C1"] * 5,
            "kind": ["invoice"] * 5,
            "number": ["N1", "N1", "N1", "N1", None],
            "state": ["draft", "posted", "paid", "posted", "posted"],
            "date": [dt.date(2025, 3, 1)] * 3 + [dt.date(2026, 1, 5), dt.date(2025, 3, 1)],
            "amount": [10.0] * 5,
        }
    )
    (rule,) = [r for r in rules.checks("invoices", frame) if r.reason.startswith("duplicate")]
    flagged = frame.filter(rule.bad.fill_null(False))["invoice_id"].to_list()
    assert flagged == ["p2"]  # p1 is the first posted N1 of 2025; p3 is of 2026
    assert frame.select(rule.any).item() is True
    assert frame.filter(pl.col("invoice_id") != "p2").select(rule.any).item() is False


def test_the_amount_percentile_is_polars_lower_quantile() -> None:
    """The bound's percentile, found by a partial sort, is the value Polars'
    ``quantile(q, interpolation="lower")`` gives, for any count and ties."""
    import random

    rng = random.Random(3)
    for n in [*range(1, 120), 999, 1000, 1001, 12345]:
        values = pl.Series(
            [float(rng.choice([rng.random() * 100, rng.randint(1, 5)])) for _ in range(n)]
        )
        for q in (0.5, 0.9, 0.99):
            assert percentile(values, q) == values.quantile(q, interpolation="lower"), (n, q)
    assert percentile(pl.Series([], dtype=pl.Float64), 0.99) is None


def test_a_repeat_of_a_categorical_key_across_pages_is_found_by_its_code() -> None:
    """Categorical keys are hashed by their codes: one text is one code in every
    page (chunk) of a table, so a customer read on two pages is a repeat."""
    schema = {"k": pl.Categorical()}
    pages = [
        pl.DataFrame({"k": ["a", "b"]}, schema=schema),
        pl.DataFrame({"k": ["c", "a"]}, schema=schema),
    ]
    rule = repeated("duplicate k", pl.col("k"))
    table = pl.concat(pages)
    assert table.select(rule.any).item() is True
    assert table.select(rule.bad).to_series().to_list() == [False, False, False, True]
    assert pl.concat([pages[0], pages[1].head(1)]).select(rule.any).item() is False


def test_the_amount_bound_ignores_infinities_as_it_ignores_nan() -> None:
    """Infinite amounts are set aside by their own rule; they must not make the
    percentile infinite and so let every absurd finite amount through."""
    amounts = pl.Series([1.0] * 100 + [float("inf"), float("-inf"), float("nan")] * 3)
    bound = Plausibility.of({}, AS_OF).amount_bound(amounts)
    assert bound is not None and bound[0] == 1000.0


def test_ids_in_ascending_order_prove_no_repeat_and_nothing_else_does() -> None:
    """``ascending`` (ids as numbers where they are numbers: by length, then text)
    lets the quarantine skip counting distinct ids; it must never be true of
    ids with a repeat, whatever their order, and the count must still run when
    it is false."""
    import random

    def rows(ids: list[str | None]) -> pl.DataFrame:
        return pl.DataFrame({"k": ids}, schema={"k": pl.String})

    def ordered(ids: list[str | None]) -> bool:
        return bool(rows(ids).select(ascending(pl.col("k"))).item())

    assert ordered(["1", "2", "9", "10", "11", "100"])
    assert ordered(["L9", "L10", "L11"]) and ordered([]) and ordered(["7"])
    assert not ordered(["1", "2", "2", "3"])  # a repeat next to itself
    assert not ordered(["10", "9"]) and not ordered(["b", "a"])
    assert not ordered(["1", None, "3"])
    rule = repeated("duplicate k", pl.col("k"))
    rng = random.Random(5)
    for _ in range(300):
        ids = [str(rng.randint(1, 40)) for _ in range(rng.randint(0, 12))]
        if rng.random() < 0.5:
            ids.sort(key=lambda v: (len(v), v))
        frame = rows(list(ids))
        repeats = len(set(ids)) < len(ids)
        assert frame.select(rule.bad).to_series().any() == repeats, ids
        if repeats:
            assert not frame.select(rule.unless).item(), ids
            assert frame.select(rule.any).item(), ids
    categorical = pl.DataFrame({"k": ["C1", "C2", "C10"]}, schema={"k": pl.Categorical()})
    assert categorical.select(ascending(pl.col("k"))).item()


def test_a_record_served_twice_in_a_row_in_key_order_is_a_repeat(snap: Snapshot) -> None:
    """The ERP serves payments in key order, one of them twice in a row: the ids
    are in order but not above the one before, so they are counted and the
    second copy is set aside."""
    payments = snap.payments.sort(pl.col("payment_id").str.len_bytes(), "payment_id")
    twice = pl.concat([payments.head(3), payments.slice(2, 1), payments.slice(3)])
    assert twice.select(ascending(pl.col("payment_id"))).item() is False
    tables = {t: getattr(snap, t) for t in TABLES}
    adapter = MemoryAdapter(Snapshot(as_of=AS_OF, **{**tables, "payments": twice}))
    snapshot, _ = extract(adapter, AS_OF)
    example = payments["payment_id"][2]
    assert reasons(snapshot.quarantined, "payments") == {"duplicate payment_id": (1, example)}
    assert snapshot.payments.height == payments.height
