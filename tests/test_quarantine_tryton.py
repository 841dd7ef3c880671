"""Bad records and a vanished ERP against a real Tryton (issue 14, 8 and 9).

The broken values are written straight into the test database's SQLite file
while its server is stopped, as a faulty import or a hand-made SQL fix would
leave them; the rights problem is a Tryton record rule that hides parties from
the API user.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from crm_bridge.adapters.tryton.adapter import TrytonAdapter

from crm_bridge.errors import ErpError, RefusedError

from .conftest import RawRPC, Tryton
from .test_cli_errors import assert_clear, run
from .test_faults import provision


def tamper(tryton: Tryton, *statements: str) -> dict[str, Any]:
    """Run SQL on the stopped server's database, restart it; return facts to check."""
    tryton.server.stop()
    db = sqlite3.connect(tryton.directory / "test.sqlite")
    try:
        ids = [
            r[0]
            for r in db.execute(
                "SELECT id FROM account_invoice WHERE type = 'out' AND state = 'paid' "
                "AND move IS NOT NULL ORDER BY id LIMIT 7"
            )
        ]
        for statement in statements:
            db.execute(statement.format(*ids))
        lines = dict(
            db.execute(
                "SELECT invoice, count(*) FROM account_invoice_line "
                f"WHERE invoice IN ({','.join(map(str, ids))}) GROUP BY invoice"
            ).fetchall()
        )
        (first_line,) = db.execute(
            "SELECT min(id) FROM account_invoice_line WHERE invoice = ?", (ids[-1],)
        ).fetchone()
        db.commit()
    finally:
        db.close()
    tryton.server.start()
    tryton.rpc = RawRPC(tryton.server.url, "test")
    return {"ids": [str(i) for i in ids], "lines": lines, "first_line": str(first_line)}


def test_absurd_and_unreadable_tryton_records_are_set_aside_by_id(
    tryton: Tryton, tmp_path: Path
) -> None:
    path = tryton.config(tmp_path / "crm-bridge.toml")
    provision(tryton, path)
    clean = json.loads(run("sync", "--json", "--dry-run", cwd=tmp_path).stdout)["counts"]
    facts = tamper(
        tryton,
        # Stored as text that Tryton cannot parse: every search that meets it fails.
        "UPDATE account_invoice SET invoice_date = '31/12/2025' WHERE id = {0}",
        "UPDATE account_invoice SET invoice_date = '1900-01-01' WHERE id = {1}",
        "UPDATE account_invoice SET invoice_date = '2999-12-31' WHERE id = {2}",
        "UPDATE account_invoice SET untaxed_amount_cache = NULL WHERE id = {3}",
        "UPDATE account_invoice SET untaxed_amount_cache = -999999999999.99 WHERE id = {4}",
        "UPDATE account_invoice SET untaxed_amount_cache = 1e15 WHERE id = {5}",
        # A line on a product that is gone (deleted behind Tryton's back).
        "UPDATE account_invoice_line SET product = 999999 WHERE id = "
        "(SELECT min(id) FROM account_invoice_line WHERE invoice = {6})",
    )
    ids = facts["ids"]
    proc = run("sync", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # records set aside: the run is done (README)
    counts = json.loads(proc.stdout)["counts"]
    aside = counts["quarantined"]["invoices"]
    unreadable = aside.pop("the ERP cannot read it")
    assert unreadable["count"] == 1 and unreadable["example"] == ids[0]
    assert "Invalid isoformat string: '31/12/2025'" in unreadable["error"]
    assert aside.pop("missing or unreadable amount") == {"count": 1, "example": ids[3]}
    assert aside.pop("date before 2023-01-01 (start of the first fiscal year)") == {
        "count": 1,
        "example": ids[1],
    }
    (after,) = [r for r in aside if r.startswith("date after ")]
    assert aside.pop(after) == {"count": 1, "example": ids[2]}
    (beyond,) = [r for r in aside if r.startswith("amount beyond ±")]
    assert aside.pop(beyond)["count"] == 2
    assert aside == {}
    # Their lines say why; the payments are the same as on the clean database (the
    # unreadable invoice's receivable line is not taken for a payment).
    lines = counts["quarantined"]["invoice_lines"]
    assert lines.pop("unknown product") == {"count": 1, "example": facts["first_line"]}
    assert lines.pop("invoice set aside")["count"] == sum(
        n for i, n in facts["lines"].items() if str(i) in ids[:6]
    )
    assert lines == {}
    assert counts["read"]["invoices"] == clean["read"]["invoices"] - 6
    assert counts["read"]["payments"] == clean["read"]["payments"]
    assert counts["written"] > 250
    # The output names them, with what to do.
    text = run("sync", "--dry-run", cwd=tmp_path)
    assert (
        "set aside 1 invoices: the ERP cannot read it: Invalid isoformat string: "
        f"'31/12/2025' (e.g. {ids[0]})"
    ) in text.stderr


def hide_parties(rpc: RawRPC, domain: str) -> int:
    """A global record rule: the API user reads only the parties matching ``domain``."""
    [rule] = rpc(
        "model.ir.rule.group.create",
        [
            {
                "name": "crm-bridge test: hidden parties",
                "model": "party.party",
                "global_p": True,
                "perm_read": True,
                "perm_write": False,
                "perm_create": False,
                "perm_delete": False,
                "rules": [["create", [{"domain": domain}]]],
            }
        ],
    )
    return int(rule)


def test_a_user_who_cannot_read_the_customers_stops_the_run(tryton: Tryton, tmp_path: Path) -> None:
    path = tryton.config(tmp_path / "crm-bridge.toml")
    provision(tryton, path)
    first = run("sync", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    customers = json.loads(first.stdout)["counts"]["read"]["customers"]
    assert customers > 250
    held = tryton.rpc.crm_values()
    rule = hide_parties(tryton.rpc, '[["id", "<", 0]]')
    # A full read (every full_refresh_days; an incremental run reads only what
    # changed and keeps the rest from the last run, so it loses nothing).
    stopped = run("sync", "--full", cwd=tmp_path)
    assert_clear(
        stopped,
        4,
        f"the ERP served no customers (run 1 read {customers})",
        "The API user may lack the right to read all customers",
        "the adapter's filters",
        "Hint: check the API user's rights",
        "crm-bridge sync --allow-shrink",
    )
    dry = run("sync", "--full", "--dry-run", cwd=tmp_path)
    assert_clear(dry, 4, "the ERP served no customers")
    history = json.loads(run("runs", "--json", cwd=tmp_path).stdout)
    assert history[0]["status"] == "failed" and "no customers" in history[0]["message"]
    # A partial view (a third of the parties) stops too.
    tryton.rpc("model.ir.rule.group.delete", [rule])
    ids = sorted(tryton.rpc.party_ids().values())
    third = f'[["id", "<", {ids[len(ids) // 3]}]]'
    rule = hide_parties(tryton.rpc, third)
    partial = run("sync", "--full", cwd=tmp_path)
    assert_clear(partial, 4, "customers where run 1 read", "lack the right")
    tryton.rpc("model.ir.rule.group.delete", [rule])
    assert tryton.rpc.crm_values() == held  # nothing was written
    hide_parties(tryton.rpc, third)
    allowed = run("sync", "--full", "--allow-shrink", "--json", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["counts"]["read"]["customers"] < customers / 2


class FailingServer:
    """Stands in for TrytonRPC: a search that meets one of ``bad`` fails, as
    Tryton's does on an unparseable stored date."""

    def __init__(self, ids: range, bad: set[int]) -> None:
        self.ids, self.bad, self.calls = ids, bad, 0

    def call(self, method: str, domain: list[Any], offset: int, limit: Any, *_: Any) -> Any:
        self.calls += 1
        low = max([v for f, op, v in domain if f == "id" and op == ">"], default=0)
        high = min([v for f, op, v in domain if f == "id" and op == "<="], default=10**9)
        found = [i for i in self.ids if low < i <= high][: limit or None]
        if self.bad & set(found):
            raise RefusedError(f"Tryton refused {method}: Invalid isoformat string: '31/12/2025'")
        return [{"id": i, "name": f"n{i}"} for i in found]


def adapter_over(server: FailingServer) -> TrytonAdapter:
    adapter = TrytonAdapter(
        {"url": "http://127.0.0.1:9", "database": "x", "username": "u", "password": "p"}
    )
    adapter.rpc = server  # type: ignore[assignment]
    adapter._models = {"party.party"}
    adapter.page_size = 1000
    return adapter


def test_a_page_that_fails_is_bisected_down_to_the_records_that_fail() -> None:
    server = FailingServer(range(1, 4501, 2), bad={7, 2501})  # odd ids: sparse
    adapter = adapter_over(server)
    rows = [r["id"] for page in adapter.pages("party.party", [], ["name"]) for r in page]
    assert rows == [i for i in range(1, 4501, 2) if i not in (7, 2501)]
    assert set(adapter.unreadable["party.party"]) == {7, 2501}
    assert "Invalid isoformat string" in adapter.unreadable["party.party"][7]
    assert server.calls < 60  # two bisections of 1000 ids, not a call per record


def test_when_everything_fails_it_is_not_bad_records_and_the_read_stops() -> None:
    server = FailingServer(range(1, 5000), bad=set(range(1, 5000)))
    adapter = adapter_over(server)
    with pytest.raises(ErpError, match=r"fails to read more than 50 records of party\.party") as e:
        list(adapter.pages("party.party", [], ["name"]))
    assert e.value.hint and "access rights" in e.value.hint
    assert server.calls < 200
