"""The adapter conformance suite, tested: it passes on a sound in-memory ERP (in UTC
and in New York) and fails, check by check, on adapters broken on purpose: a key
dropped on write, ``since`` ignored or exclusive or read in the wrong zone, stamps
given in the server's zone, lines
of a changed invoice or a changed line missed, foreign fields written, a refusal
or a check that never comes, values of the wrong type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_bridge.adapter import Batch, Capabilities, Check, WriteResult
from crm_bridge.errors import ErpError
from crm_bridge.fields import Field
from crm_bridge.snapshot import Snapshot
from crm_bridge.testing import AdapterConformance, MemoryAdapter, customer, invoice

INCREMENTAL = ("customers", "invoices", "invoice_lines")
UPDATED = dt.datetime(2024, 3, 31, 12)  # every record's modification time at the start (UTC)


def _rows() -> dict[str, list[dict[str, Any]]]:
    customers = [
        customer(f"{i}", f"Customer {i}", code=f"C{i}", updated_at=UPDATED) for i in range(1, 5)
    ]
    invoices = [
        {**invoice(f"INV{i}", f"{i}", dt.date(2024, 3, i), 30.0), "updated_at": UPDATED}
        for i in range(1, 4)
    ]
    lines = [
        {
            "line_id": f"L{i}{n}",
            "invoice_id": f"INV{i}",
            "customer_id": f"{i}",
            "product_id": "P1",
            "quantity": 1.0 + n,
            "unit_price": 10.0,
            "amount": 10.0 * (1 + n),
            "cost": 6.0 * (1 + n),
        }
        for i in range(1, 4)
        for n in range(2)
    ]
    return {"customers": customers, "invoices": invoices, "invoice_lines": lines}


class SoundMemoryAdapter(MemoryAdapter):
    """``MemoryAdapter`` as a whole ERP: records with modification times kept in the
    server's ``zone`` (lines: their own, when edited alone), fields crm-bridge does
    not own, refusal of unknown customers, incremental reads."""

    capabilities = Capabilities(
        multi_record_write=True, conditional_writes=True, incremental=INCREMENTAL
    )

    def __init__(self, zone: str = "UTC") -> None:
        self.rows = _rows()
        super().__init__(Snapshot.from_rows(dt.date(2024, 4, 1), **self.rows))
        self.zone = ZoneInfo(zone)
        self.stamps = {  # (table, id) -> naive local time, as the server writes it
            (table, r[key]): self.local(r["updated_at"].replace(tzinfo=dt.UTC))
            for table, key in (("customers", "customer_id"), ("invoices", "invoice_id"))
            for r in self.rows[table]
        }
        self.foreign = {r["customer_id"]: {"name": r["name"]} for r in self.rows["customers"]}

    def local(self, at: dt.datetime) -> dt.datetime:
        return at.astimezone(self.zone).replace(tzinfo=None)

    def changed(self, table: str, key: str, since: dt.datetime) -> bool:
        stamp = self.stamps.get((table, key))
        return stamp is not None and stamp >= self.local(since.replace(tzinfo=dt.UTC))

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        rows = self.rows.get(table, [])
        if since is not None and table in self.capabilities.incremental:
            rows = self.changed_rows(table, since)
        out = []
        for row in rows:
            row = dict(row)
            key = row.get("customer_id" if table == "customers" else "invoice_id")
            if "updated_at" in row:  # back to UTC from the server's zone
                local = self.stamps[(table, key)].replace(tzinfo=self.zone)
                row["updated_at"] = local.astimezone(dt.UTC).replace(tzinfo=None)
            out.append(row)
        yield out

    def changed_rows(self, table: str, since: dt.datetime) -> list[dict[str, Any]]:
        if table not in self.rows:
            return []
        if table == "customers":
            return [r for r in self.rows[table] if self.changed(table, r["customer_id"], since)]
        if table == "invoices":
            return [r for r in self.rows[table] if self.changed(table, r["invoice_id"], since)]
        return [
            r
            for r in self.rows[table]
            if self.changed("invoices", r["invoice_id"], since)
            or self.changed(table, r["line_id"], since)
        ]

    def provision(self, fields: Sequence[Field]) -> list[str]:
        return [f"created {name}" for name in super().provision(fields)]

    def write(self, batches: Sequence[Batch]) -> WriteResult:
        known = [
            Batch(tuple(c for c in b.customer_ids if c in self.foreign), b.values, b.expected)
            for b in batches
        ]
        result = super().write(known)
        for b in batches:
            for cid in b.customer_ids:
                if cid not in self.foreign:
                    result.rejected[cid] = "no such customer"
        return result


# -- adapters broken on purpose ------------------------------------------------------
class DropsAKeyAndSaysItWroteIt(SoundMemoryAdapter):
    """Loses conf_note on write, yet its own read-back reports what it was sent."""

    def __init__(self, zone: str = "UTC") -> None:
        super().__init__(zone)
        self.sent: dict[str, dict[str, Any]] = {}

    def write(self, batches: Sequence[Batch]) -> WriteResult:
        for b in batches:
            for cid in b.customer_ids:
                self.sent.setdefault(cid, {}).update(b.values)
        kept = [
            Batch(
                b.customer_ids,
                {k: v for k, v in b.values.items() if k != "conf_note"},
                b.expected,
            )
            for b in batches
        ]
        return super().write(kept)

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        yield [
            (c, {k: v for k, v in held.items() if v is not None}) for c, held in self.sent.items()
        ]


class IgnoresSince(SoundMemoryAdapter):
    def changed_rows(self, table: str, since: dt.datetime) -> list[dict[str, Any]]:
        return self.rows[table]


class ExclusiveSince(SoundMemoryAdapter):
    """Reads what changed after ``since``, not at or after it."""

    def changed(self, table: str, key: str, since: dt.datetime) -> bool:
        stamp = self.stamps.get((table, key))
        return stamp is not None and stamp > self.local(since.replace(tzinfo=dt.UTC))


class ReadsSinceAsServerTime(SoundMemoryAdapter):
    """Compares the UTC ``since`` with the server's local stamps as they are."""

    def changed(self, table: str, key: str, since: dt.datetime) -> bool:
        stamp = self.stamps.get((table, key))
        return stamp is not None and stamp >= since


class ReportsLocalStamps(SoundMemoryAdapter):
    """Reads ``since`` right but gives updated_at in the server's zone (the watermark
    of the next run then drifts by the zone's offset)."""

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        for page in super().extract(table, since):
            yield [
                {**r, "updated_at": self.local(r["updated_at"].replace(tzinfo=dt.UTC))}
                if r.get("updated_at")
                else r
                for r in page
            ]


class MissesALineChangedAlone(SoundMemoryAdapter):
    """Lines only of changed invoices (Tryton's adapter did this)."""

    def changed_rows(self, table: str, since: dt.datetime) -> list[dict[str, Any]]:
        if table != "invoice_lines":
            return super().changed_rows(table, since)
        return [r for r in self.rows[table] if self.changed("invoices", r["invoice_id"], since)]


class ReadsOnlyChangedLines(SoundMemoryAdapter):
    """Lines by their own stamp: a paid invoice's lines are lost (ERPNext's trap)."""

    def changed_rows(self, table: str, since: dt.datetime) -> list[dict[str, Any]]:
        if table != "invoice_lines":
            return super().changed_rows(table, since)
        return [r for r in self.rows[table] if self.changed(table, r["line_id"], since)]


class WritesForeignFields(SoundMemoryAdapter):
    def write(self, batches: Sequence[Batch]) -> WriteResult:
        for b in batches:
            for cid in b.customer_ids:
                if cid in self.foreign:
                    self.foreign[cid]["name"] = self.foreign[cid]["name"].upper()
        return super().write(batches)


class ProvisionsSilentlyWithoutTheCapability(SoundMemoryAdapter):
    capabilities = Capabilities(
        multi_record_write=True, conditional_writes=True, provisioning=False
    )

    def provision(self, fields: Sequence[Field]) -> list[str]:
        return []


class DeclaresATableThatIsNot(SoundMemoryAdapter):
    capabilities = Capabilities(
        multi_record_write=True,
        conditional_writes=True,
        incremental=("customers", "invoice", "invoice_lines"),
    )


class ChecksNothing(SoundMemoryAdapter):
    def check(self, fields: Sequence[Field]) -> list[Check]:
        return [Check("fields", True, "ok")]


class AcceptsUnknownCustomers(SoundMemoryAdapter):
    def write(self, batches: Sequence[Batch]) -> WriteResult:
        return MemoryAdapter.write(self, batches)


class SendsAmountsAsText(SoundMemoryAdapter):
    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        for page in super().extract(table, since):
            yield [{**r, "amount": f"{r['amount']} EUR"} if "amount" in r else r for r in page]


# -- the suite on the sound ERP ------------------------------------------------------
class TestSoundMemoryErp(AdapterConformance):
    adapter_class: type[SoundMemoryAdapter] = SoundMemoryAdapter

    @pytest.fixture(autouse=True)
    def _erp(self) -> None:
        self.erp = self.adapter_class(self.server_zone)

    def make_adapter(self) -> SoundMemoryAdapter:
        return self.erp

    def foreign(self, customer_id: str) -> dict[str, Any]:
        return dict(self.erp.foreign[customer_id])

    def raw_values(self) -> dict[str, dict[str, Any]]:
        return {cid: dict(held) for cid, held in self.erp.values.items()}

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        self.erp.stamps[(table, record_id)] = self.erp.local(at)


class TestSoundMemoryErpInNewYork(TestSoundMemoryErp):
    server_zone = "America/New_York"


SUITE = sorted(name for name in dir(AdapterConformance) if name.startswith("test_"))
BOUNDARY = "test_incremental_boundary_is_inclusive_and_midpoints_split"
WHOLE = "test_incremental_lines_of_a_changed_invoice_come_whole"
ALONE = "test_incremental_reads_a_changed_line_of_an_unchanged_invoice"
ROUND_TRIP = "test_writes_and_reads_back_only_its_fields"


@pytest.mark.parametrize(
    ("broken", "zone", "failing"),
    [
        (
            DropsAKeyAndSaysItWroteIt,
            "UTC",
            {
                ROUND_TRIP,
                "test_writes_change_only_the_keys_sent",
                "test_current_values_are_what_the_erp_holds",
                "test_retire_clears_a_field",
            },
        ),
        (
            IgnoresSince,
            "UTC",
            {"test_incremental_reads_what_changed_since", BOUNDARY, WHOLE, ALONE},
        ),
        (ExclusiveSince, "UTC", {BOUNDARY, WHOLE, ALONE}),
        (ReadsSinceAsServerTime, "UTC", set()),
        (ReadsSinceAsServerTime, "America/New_York", {BOUNDARY, WHOLE, ALONE}),
        (ReadsSinceAsServerTime, "Europe/Riga", {BOUNDARY}),
        (ReportsLocalStamps, "UTC", set()),
        (ReportsLocalStamps, "Europe/Riga", {BOUNDARY}),
        (MissesALineChangedAlone, "UTC", {ALONE}),
        (ReadsOnlyChangedLines, "UTC", {"test_incremental_reads_what_changed_since", WHOLE}),
        (WritesForeignFields, "UTC", {ROUND_TRIP}),
        (
            ProvisionsSilentlyWithoutTheCapability,
            "UTC",
            {"test_provision_is_idempotent_and_checked"},
        ),
        (ChecksNothing, "UTC", {"test_provision_is_idempotent_and_checked"}),
        (DeclaresATableThatIsNot, "UTC", {"test_declares_capabilities"}),
        (AcceptsUnknownCustomers, "UTC", {"test_refused_record_is_reported_and_the_rest_written"}),
        (SendsAmountsAsText, "UTC", {"test_extracts_canonical_tables"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_the_suite_fails_a_broken_adapter_exactly_where_it_is_broken(
    broken: type[SoundMemoryAdapter], zone: str, failing: set[str]
) -> None:
    failed = set()
    for name in SUITE:
        suite = TestSoundMemoryErp()
        suite.server_zone = zone
        suite.erp = broken(zone)
        try:
            getattr(suite, name)()
        except (AssertionError, ErpError):
            failed.add(name)
    assert failed == failing
