"""The public plugin test runner, ``crm_bridge.testing.run_plugin``, and the worked
example of docs/plugin_hooks.md, run as written."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from crm_bridge import Field, Snapshot, hookimpl
from crm_bridge.errors import ConfigError
from crm_bridge.testing import customer, invoice, payment, quote, run_plugin

D = dt.date
DOCS = Path(__file__).parent.parent / "docs" / "plugin_hooks.md"


def test_the_worked_example_of_the_docs_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = DOCS.read_text()
    example = text[text.index("### Worked example") :]
    plugin_code, test_code = re.findall(r"```python\n(.*?)```", example, re.S)[:2]
    package = tmp_path / "crm_bridge_credit"
    package.mkdir()
    (package / "__init__.py").write_text(plugin_code)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, Any] = {}
    exec(compile(test_code, "test_credit.py", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
    sys.modules.pop("crm_bridge_credit", None)


class Two:
    """Declares two fields, returns one; its setting has a schema default."""

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("two_n", "integer", "N"), Field("two_label", "char", "Label")]

    @hookimpl
    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "bonus": {"type": "integer", "default": 10},
                "nested": {
                    "type": "object",
                    "properties": {"depth": {"type": "integer", "default": 2}},
                },
            },
        }

    @hookimpl
    def compute(self, snapshot: Snapshot, settings: Any) -> pl.LazyFrame:
        assert settings["nested"]["depth"] == 2
        return (
            snapshot.scan("invoices")
            .group_by("customer_id")
            .agg((pl.len().cast(pl.Int64) + settings["bonus"]).alias("two_n"))
        )


def rows() -> Snapshot:
    snap = Snapshot.from_rows(
        as_of=D(2026, 6, 30),
        customers=[customer("A"), customer("B", "Bee")],
        invoices=[invoice("1", "A", D(2026, 6, 1), 10.0)],
        payments=[payment("p1", "A", D(2026, 6, 5), 10.0, invoice_id="1")],
        sale_orders=[quote("q1", "B", D(2026, 6, 2), 99.0)],
    )
    snap.current = {"B": {"two_label": "kept"}}
    return snap


def test_run_plugin_applies_schema_defaults_and_reports_a_missing_column() -> None:
    snap = rows()
    assert snap.customers["name"].to_list() == ["A", "Bee"]
    assert snap.payments["invoice_id"].to_list() == ["1"]
    assert snap.sale_orders["state"].to_list() == ["quotation"]
    run = run_plugin(Two(), snap, settings={"nested": {}}, name="two")
    assert run.settings == {"bonus": 10, "nested": {"depth": 2}}
    assert run.values == {"A": {"two_n": 11}} and run.ok
    assert run.warnings == [
        "plugin 'two' returned no column for its declared field(s) two_label: "
        "left as the ERP holds them"
    ]
    # The missing column does not clear the value the ERP holds for it.
    assert [(c.customer_id, c.field, c.new) for c in run.plan.changes] == [("A", "two_n", 11)]


def test_run_plugin_refuses_bad_settings_and_reports_rejections() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.two\.bonus"):
        run_plugin(Two(), rows(), settings={"bonus": "x"}, name="two")

    class Floaty:
        @hookimpl
        def declare_fields(self) -> list[Field]:
            return [Field("floaty_n", "integer", "N")]

        @hookimpl
        def compute(self, snapshot: Snapshot, settings: Any) -> pl.DataFrame:
            return pl.DataFrame({"customer_id": ["A"], "floaty_n": [1.5]})

    run = run_plugin(Floaty(), rows(), name="floaty")
    assert not run.ok and run.values == {}
    (r,) = run.rejections
    assert (r.plugin, r.field) == ("floaty", "floaty_n")
    assert r.example == "customer 'A': float 1.5" and "expects integer" in r.reason
    assert run.column("floaty_n") == {}
