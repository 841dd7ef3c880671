"""crm-bridge diagnose: each verdict from hand-built data, then the CLI on the real Tryton."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from crm_bridge import Snapshot
from crm_bridge.diagnose import PROCESSES, diagnose
from crm_bridge.testing import invoice

from .conftest import Tryton
from .test_cli_errors import run
from .test_i18n import untranslated

AS_OF = dt.date(2026, 6, 30)


def _verdicts(snapshot: Snapshot) -> dict[str, str]:
    return {f.parameter: f.status for f in diagnose(snapshot)}


def _customers(n: int) -> list[dict]:
    return [{"customer_id": str(i), "name": f"C{i}", "active": True} for i in range(n)]


def test_an_erp_with_only_free_text_invoices_is_mostly_absent() -> None:
    invoices = [
        invoice(f"i{k}", str(k % 3), AS_OF - dt.timedelta(days=30 * k), 100.0) for k in range(6)
    ]
    lines = [
        {
            "line_id": f"l{k}",
            "invoice_id": f"i{k}",
            "customer_id": str(k % 3),
            "product_id": None,
            "quantity": 1,
            "unit_price": 100.0,
            "amount": 100.0,
        }
        for k in range(6)
    ]
    got = _verdicts(
        Snapshot.from_rows(AS_OF, customers=_customers(3), invoices=invoices, invoice_lines=lines)
    )
    assert got["Sales volume per customer"] == "+"
    assert got["Products per customer"] == "-"  # no line names a product
    assert got["Sales dynamics per customer"] == "-"  # 5 months of history
    assert got["Sales funnel"] == "-" and got["History of offers made"] == "-"
    assert got["Complaints received (count and content)"] == "-"
    assert got["Document flow per customer"] == "-"  # no payments, though due dates exist


def test_lost_deals_without_reasons_are_partial() -> None:
    opportunities = [
        {
            "opportunity_id": str(k),
            "customer_id": "0",
            "date": AS_OF,
            "state": state,
            "lost_reason": "Price" if k == 0 else None,
        }
        for k, state in enumerate(["lost", "lost", "lost", "won", "lead", "opportunity"])
    ]
    findings = {
        f.parameter: f
        for f in diagnose(
            Snapshot.from_rows(AS_OF, customers=_customers(1), opportunities=opportunities)
        )
    }
    refusals = findings["Refusal categories by sale stage"]
    assert refusals.status == "-"  # 1 of 3 lost deals has a reason: 33% < 50%
    assert "3 lost opportunities (33% with a reason)" in refusals.evidence
    assert "reason" in refusals.advice
    assert findings["Sales funnel"].status == "+"  # lead, opportunity, won and lost all seen


def test_every_finding_belongs_to_one_of_the_five_processes() -> None:
    findings = diagnose(Snapshot.from_rows(AS_OF, customers=_customers(1)))
    assert len(findings) == 11
    assert {f.process for f in findings} == set(PROCESSES)
    assert all(f.status in ("+", "+/-", "-") and f.evidence and f.advice for f in findings)


def test_cli_diagnose_on_the_demo_erp(tryton: Tryton, tmp_path: Path) -> None:
    tryton.config(tmp_path / "crm-bridge.toml")
    proc = run("diagnose", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = {f["parameter"]: f for f in json.loads(proc.stdout)}
    for parameter in (
        "Products per customer",
        "Sales volume per customer",
        "Sales volume per product",
        "Sales dynamics per customer",
        "Sales funnel",
    ):
        assert got[parameter]["status"] == "+", got[parameter]
    assert got["Tasks and contacts per customer"]["status"] == "-"
    text = run("diagnose", cwd=tmp_path)
    assert text.returncode == 0 and "Value creation" in text.stdout and "maturity:" in text.stdout
    chinese = run("diagnose", "--lang", "zh_CN", cwd=tmp_path)
    assert chinese.returncode == 0, chinese.stderr
    assert "战略制定" in chinese.stdout and "成熟度：" in chinese.stdout
    assert untranslated(chinese.stdout.splitlines(), "zh_CN") == []
    assert not re.search(r"[a-z]{4,} [a-z]{3,}", chinese.stdout), chinese.stdout
    as_json = run("diagnose", "--json", cwd=tmp_path, env={"LANG": "ru_RU.UTF-8"})
    assert {f["process"] for f in json.loads(as_json.stdout)} >= {"Разработка стратегии"}
    assert not (tmp_path / "tables").exists()  # diagnose never writes the table cache
