"""The adapter conformance suite: the behaviour every adapter owes the core, as
plain pytest tests (``crm_bridge.testing.AdapterConformance``; docs/adapters.md).

Values written are read back through an independent path the subclass gives
(plain JSON-RPC, HTTP or SQL), never through the adapter's own read-back, and
incremental reads are checked at the boundary, a mid-point, in the server's
zone and for changes of an invoice or of a line alone.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from crm_bridge.adapter import Batch, Capabilities
from crm_bridge.fields import Field

CONFORMANCE_FIELDS: tuple[Field, ...] = (
    Field("conf_segment", "selection", "Segment", choices=(("gold", "Gold"), ("iron", "Iron"))),
    Field("conf_score", "integer", "Score", minimum=0, maximum=100),
    Field("conf_spend", "numeric", "Spend", digits=2),
    Field("conf_since", "date", "Since"),
    Field("conf_note", "char", "Note"),
    Field("conf_flag", "boolean", "Flag"),
)


# Modification times the incremental checks give records (UTC): later than any
# fixture's records, before 2038 (MariaDB TIMESTAMP), and on another day in
# Riga or New York than in UTC, so a stamp read in the wrong zone is found.
FIRST_CHANGE = dt.datetime(2037, 6, 1, 22, 30)
SECOND_CHANGE = FIRST_CHANGE + dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


class AdapterConformance:
    """The behaviour every adapter owes the core, as tests.

    Subclass it as ``TestMyAdapter`` in a pytest module and implement:

    - :meth:`make_adapter`: a fresh adapter on an ERP holding a few customers
      (at least three) with invoices and lines;
    - :meth:`foreign`: the values of fields crm-bridge does not own, read
      without the adapter;
    - :meth:`raw_values`: crm-bridge's values as the ERP holds them, read
      without the adapter (plain JSON-RPC, HTTP or SQL, or the fake's store):
      every value the suite checks after a write is read back this way, never
      through the adapter's own ``current_values``;
    - :meth:`touch` when the adapter lists tables in
      ``capabilities.incremental``: change one record's modification time in
      the ERP, without the adapter.

    ``server_zone`` names the timezone the ERP under test keeps its
    modification times in (a subclass running the ERP elsewhere than UTC sets
    it, and :meth:`touch` writes local times): the incremental checks pass
    ``since`` in UTC, as the core does, whatever the server's zone.
    """

    fields: tuple[Field, ...] = CONFORMANCE_FIELDS
    server_zone: str = "UTC"

    def make_adapter(self) -> Any:
        raise NotImplementedError

    def foreign(self, customer_id: str) -> dict[str, Any]:
        """Values of a few fields crm-bridge does not own, read straight from the ERP."""
        raise NotImplementedError

    def raw_values(self) -> dict[str, dict[str, Any]]:
        """{customer_id: {field: value}} of crm-bridge's fields, read straight from the
        ERP, keyed by crm-bridge's field names (any ERP prefix removed), values as
        :meth:`crm_bridge.fields.Field.parse` reads them (the subclass decodes an
        encoding of its own ERP that ``parse`` does not know).  Customers holding
        nothing may be left out."""
        raise NotImplementedError

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        """Make the ERP hold record ``record_id`` of ``table`` as modified at ``at``
        (an aware datetime; written in ``server_zone``, in the ERP's own format),
        as an edit at that time would, without the adapter.  For ``invoice_lines``,
        ``record_id`` is a line: move what the ERP moves when a line is edited (its
        own stamp, and the invoice's where the ERP does that).  Only needed for the
        tables in ``capabilities.incremental``."""
        raise NotImplementedError

    # helpers
    def _read(self, adapter: Any) -> dict[str, list[dict[str, Any]]]:
        from crm_bridge.snapshot import TABLES

        return {t: self._since(adapter, t, None) for t in TABLES}

    def _customers(self, adapter: Any, n: int) -> list[str]:
        """The ids of the first ``n`` customers the adapter reads."""
        ids = [r["customer_id"] for r in self._since(adapter, "customers", None)][:n]
        assert len(ids) == n, f"the suite needs an ERP with at least {n} customers"
        return ids

    def _values(self) -> dict[str, dict[str, Any]]:
        """crm-bridge's values read back raw from the ERP, as their fields' types."""
        from crm_bridge.extract import read_back

        return read_back(self.raw_values(), {f.name: f for f in self.fields})

    def _provisioned(self) -> Any:
        adapter = self.make_adapter()
        adapter.provision(self.fields)
        adapter.close()
        return self.make_adapter()

    def _since(self, adapter: Any, table: str, since: dt.datetime | None) -> list[dict[str, Any]]:
        """The rows read (every row without ``since``), pages of dicts or frames alike."""
        pages = adapter.extract(table, since) if since else adapter.extract(table)
        rows: list[dict[str, Any]] = []
        for page in pages:
            rows += page.to_dicts() if hasattr(page, "to_dicts") else page
        return rows

    def _ids(self, adapter: Any, table: str, since: dt.datetime) -> set[str]:
        from crm_bridge.snapshot import TABLES

        key = next(iter(TABLES[table]))
        return {r[key] for r in self._since(adapter, table, since)}

    def _stamps(self, adapter: Any, table: str, since: dt.datetime) -> dict[str, Any]:
        """{id: updated_at} of the rows read since, as the canonical column holds it."""
        from crm_bridge.snapshot import TABLES, frame

        key = next(iter(TABLES[table]))
        rows = frame(table, self._since(adapter, table, since))
        return dict(zip(rows[key].cast(str).to_list(), rows["updated_at"].to_list(), strict=True))

    def _touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        self.touch(table, record_id, at.replace(tzinfo=dt.UTC))

    # the suite
    def test_declares_capabilities(self) -> None:
        adapter = self.make_adapter()
        from crm_bridge.snapshot import TABLES
        from crm_bridge.table_cache import PARENTS

        assert isinstance(adapter.capabilities, Capabilities)
        assert adapter.capabilities.concurrent_writes >= 1
        incremental = set(adapter.capabilities.incremental)
        assert incremental <= set(TABLES), f"not canonical tables: {incremental - set(TABLES)}"
        for child, (parent, _) in PARENTS.items():  # lines are read since their parent's mark
            assert child not in incremental or parent in incremental, f"{child} without {parent}"

    def test_extracts_canonical_tables(self) -> None:
        from crm_bridge.snapshot import TABLES, frame

        adapter = self.make_adapter()
        tables = self._read(adapter)
        assert tables["customers"], "no customers read"
        assert tables["invoices"] and tables["invoice_lines"], "no invoices or lines read"
        customers = {r["customer_id"] for r in tables["customers"]}
        for table, rows in tables.items():
            key = next(iter(TABLES[table]))
            ids = [r[key] for r in rows]
            assert len(ids) == len(set(ids)), f"{table}: duplicate ids across pages"
            assert all(isinstance(i, str) and i for i in ids), f"{table}: ids must be text"
            for row in rows:
                assert set(row) <= set(TABLES[table]), f"{table}: unknown columns"
            built = frame(table, rows)
            for column in built.columns:  # a value its canonical column cannot hold is lost
                sent = sum(r.get(column) is not None for r in rows)
                kept = built[column].count()
                assert kept == sent, f"{table}.{column}: {sent - kept} value(s) of a wrong type"
            if "customer_id" in TABLES[table] and table != "customers":
                assert {r["customer_id"] for r in rows} <= customers, f"{table}: unknown customer"
        invoices = {r["invoice_id"]: r for r in tables["invoices"]}
        for line in tables["invoice_lines"]:
            assert line["invoice_id"] in invoices
            assert line["customer_id"] == invoices[line["invoice_id"]]["customer_id"]
        assert {r["kind"] for r in tables["invoices"]} <= {"invoice", "credit_note"}
        assert {r["state"] for r in tables["invoices"]} <= {"draft", "posted", "paid", "cancelled"}

    def test_incremental_reads_what_changed_since(self) -> None:
        tables = self.make_adapter().capabilities.incremental
        adapter = self.make_adapter()
        for table in tables:
            everything = self._since(adapter, table, None)
            since_epoch = self._since(adapter, table, dt.datetime(1971, 1, 1))
            assert since_epoch == everything, f"{table}: since 1971 must read every row"
            assert self._since(adapter, table, dt.datetime(2999, 1, 1)) == []

    def test_incremental_boundary_is_inclusive_and_midpoints_split(self) -> None:
        """Two records changed a day apart: ``since`` at the first change reads both,
        half-way reads the second, at the second change exactly still reads it
        (inclusive), a second later reads none; in the server's zone."""
        incremental = self.make_adapter().capabilities.incremental
        for table, key in (("customers", "customer_id"), ("invoices", "invoice_id")):
            if table not in incremental:
                continue
            first, second = [r[key] for r in self._read(self.make_adapter())[table]][:2]
            self._touch(table, first, FIRST_CHANGE)
            self._touch(table, second, SECOND_CHANGE)
            adapter = self.make_adapter()
            middle = FIRST_CHANGE + (SECOND_CHANGE - FIRST_CHANGE) / 2
            where = f"{table} changed at {FIRST_CHANGE} and {SECOND_CHANGE} UTC"
            assert self._ids(adapter, table, FIRST_CHANGE) == {first, second}, where
            assert self._ids(adapter, table, FIRST_CHANGE + SECOND) == {second}, where
            assert self._ids(adapter, table, middle) == {second}, where
            assert self._ids(adapter, table, SECOND_CHANGE) == {second}, f"{where}: inclusive"
            assert self._ids(adapter, table, SECOND_CHANGE + SECOND) == set(), where
            # The watermark comes from these: the change's time in UTC, whatever the
            # server's zone; or none where the ERP gives none (the watermark then stays
            # where it was: more is read again, nothing missed).
            stamps = self._stamps(adapter, table, FIRST_CHANGE)
            changes = {first: FIRST_CHANGE, second: SECOND_CHANGE}
            wrong = {k: v for k, v in stamps.items() if v is not None and v != changes[k]}
            assert set(stamps) == set(changes) and not wrong, (
                f"{where}: updated_at must be the change's time in UTC, not {wrong}"
            )

    def test_incremental_lines_of_a_changed_invoice_come_whole(self) -> None:
        """An invoice changed, its lines not (a payment): every line of it is read."""
        adapter = self.make_adapter()
        if not {"invoices", "invoice_lines"} <= set(adapter.capabilities.incremental):
            return
        lines = self._read(adapter)["invoice_lines"]
        invoice = lines[0]["invoice_id"]
        self._touch("invoices", invoice, FIRST_CHANGE)
        read = self._since(self.make_adapter(), "invoice_lines", FIRST_CHANGE)
        expected = [r for r in lines if r["invoice_id"] == invoice]
        key = "line_id"
        assert sorted(read, key=lambda r: r[key]) == sorted(expected, key=lambda r: r[key])

    def test_incremental_reads_a_changed_line_of_an_unchanged_invoice(self) -> None:
        """One line edited (the ERP moves what it moves on such an edit): it is read,
        with the values a full read gives it."""
        adapter = self.make_adapter()
        if "invoice_lines" not in adapter.capabilities.incremental:
            return
        lines = self._read(adapter)["invoice_lines"]
        line = lines[-1]
        self._touch("invoice_lines", line["line_id"], FIRST_CHANGE)
        read = {
            r["line_id"]: r for r in self._since(self.make_adapter(), "invoice_lines", FIRST_CHANGE)
        }
        assert read.get(line["line_id"]) == line
        assert {r["invoice_id"] for r in read.values()} == {line["invoice_id"]}

    def test_provision_is_idempotent_and_checked(self) -> None:
        from crm_bridge.errors import ErpError

        adapter = self.make_adapter()
        absent = Field("conf_absent", "char", "Absent")  # a field no ERP holds yet
        checks = {c.name: c for c in adapter.check([absent])}
        assert not checks["fields"].ok, "a field is missing, yet the check passes"
        assert absent.name in checks["fields"].detail, checks["fields"]
        if not adapter.capabilities.provisioning:  # an admin adds the fields
            try:
                adapter.provision([*self.fields, absent])
            except ErpError as exc:
                assert absent.name in str(exc), f"the refusal does not name the field: {exc}"
            else:
                raise AssertionError("provision() without the capability must refuse")
            return
        first = adapter.provision(self.fields)
        names = {f.name for f in self.fields}
        # Besides the fields, an adapter may create what shows them (a heading, views).
        created = [c for c in first if c.removeprefix("created ") in names]
        assert sorted(created) == sorted(f"created {n}" for n in names), first
        assert all(c.startswith("created ") for c in first), first
        assert self.make_adapter().provision(self.fields) == []
        checks = {c.name: c for c in self.make_adapter().check(self.fields)}
        assert checks["fields"].ok, checks["fields"]

    def test_writes_and_reads_back_only_its_fields(self) -> None:
        adapter = self._provisioned()
        customers = self._customers(adapter, 3)
        before = {cid: self.foreign(cid) for cid in customers}
        gold = {
            "conf_segment": "gold",
            "conf_score": 87,
            "conf_spend": Decimal("1234.50"),
            "conf_since": dt.date(2024, 2, 29),
            "conf_note": "Gold: spend 1,234.50 ≥ 1,000",
            "conf_flag": True,
        }
        iron = {**gold, "conf_segment": "iron", "conf_score": 3, "conf_flag": False}
        result = adapter.write([Batch(tuple(customers[:2]), gold), Batch((customers[2],), iron)])
        assert sorted(result.written) == sorted(customers) and not result.rejected
        back = self._values()
        assert back.get(customers[0]) == gold and back.get(customers[1]) == gold
        assert back.get(customers[2]) == iron
        assert {cid: self.foreign(cid) for cid in customers} == before

    def test_current_values_are_what_the_erp_holds(self) -> None:
        """The adapter's own read-back agrees with the raw one."""
        from crm_bridge.extract import read_back

        adapter = self._provisioned()
        customers = self._customers(adapter, 2)
        adapter.write([Batch((customers[0],), {"conf_score": 41, "conf_note": "raw"})])
        adapter.write([Batch((customers[1],), {"conf_since": dt.date(2023, 12, 31)})])
        fresh = self.make_adapter()
        own = {cid: v for page in fresh.current_values() for cid, v in page}
        fields = {f.name: f for f in self.fields}
        mine = {c: {k: v for k, v in vals.items() if k in fields} for c, vals in own.items()}
        assert {c: v for c, v in read_back(mine, fields).items() if v} == self._values()

    def test_writes_change_only_the_keys_sent(self) -> None:
        adapter = self._provisioned()
        customers = self._customers(adapter, 2)
        first = {"conf_score": 7, "conf_note": "keep me", "conf_segment": "gold"}
        assert sorted(adapter.write([Batch(tuple(customers), first)]).written) == sorted(customers)
        # One key changed, one cleared (None); the third is not sent and stays.
        change = Batch((customers[0],), {"conf_score": 8, "conf_note": None})
        result = self.make_adapter().write([change])
        assert result.written == [customers[0]] and not result.rejected
        back = self._values()
        keys = sorted(first)  # (an ERP may read a boolean never written as false)
        assert {k: back.get(customers[0], {}).get(k) for k in keys} == {
            "conf_note": None,
            "conf_score": 8,
            "conf_segment": "gold",
        }
        assert {k: back.get(customers[1], {}).get(k) for k in keys} == first

    def test_a_write_checks_the_values_it_expects_where_it_can(self) -> None:
        adapter = self._provisioned()
        (cid,) = self._customers(adapter, 1)
        adapter.write([Batch((cid,), {"conf_score": 5, "conf_segment": "iron"})])
        # The plan saw 4 and gold, but the ERP holds 5 and iron (edited since).
        stale = Batch((cid,), {"conf_score": 6, "conf_segment": "gold"}, {"conf_score": 4})
        result = self.make_adapter().write([stale])
        back = self._values()[cid]
        assert back["conf_segment"] == "gold"  # no expectation: written
        if adapter.capabilities.conditional_writes:
            assert result.conflicts == {cid: {"conf_score": 5}}
            assert back["conf_score"] == 5  # left as found
            # A key that already holds its new value is settled: no conflict.
            again = self.make_adapter().write(
                [Batch((cid,), {"conf_segment": "gold"}, {"conf_segment": "iron"})]
            )
            assert again.written == [cid] and not again.conflicts
        else:  # documented: this ERP cannot check, the write wins
            assert not result.conflicts and back["conf_score"] == 6

    def test_refused_record_is_reported_and_the_rest_written(self) -> None:
        adapter = self._provisioned()
        customers = self._customers(adapter, 2)
        ghost = "999999"
        values = {"conf_score": 5}
        result = adapter.write([Batch((customers[0], ghost, customers[1]), values)])
        assert sorted(result.written) == sorted(customers)
        assert list(result.rejected) == [ghost] and result.rejected[ghost]
        back = self._values()
        assert all(back.get(c, {}).get("conf_score") == 5 for c in customers)

    def test_retire_clears_a_field(self) -> None:
        adapter = self._provisioned()
        customers = self._customers(adapter, 2)
        adapter.write([Batch(tuple(customers), {"conf_note": "x", "conf_score": 1})])
        assert self.make_adapter().retire("conf_note") == 2
        back = self._values()
        assert all("conf_note" not in back.get(c, {}) for c in customers)
        assert all(back.get(c, {}).get("conf_score") == 1 for c in customers)
