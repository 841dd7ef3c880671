"""One test of its own for every hook (``test_hook_<name>``); the last test fails
when a hook has none or is missing from docs/plugin_hooks.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import polars as pl
import pytest
from click.testing import CliRunner
from crm_bridge.cli import cli

from crm_bridge import AdapterSpec, Field, hookimpl, hookspecs
from crm_bridge.errors import ConfigError
from crm_bridge.sync import connect, sync

from .test_pipeline import setup


class Tiny:
    """A plugin using every contribution hook once."""

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("tiny_orders", "integer", "Orders", help="Invoices ever, all states.")]

    @hookimpl
    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"bonus": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        }

    @hookimpl
    def compute(self, snapshot: Any, settings: Any) -> pl.DataFrame:
        bonus = settings.get("bonus", 0)
        return snapshot.invoices.group_by("customer_id").agg(
            tiny_orders=pl.len().cast(pl.Int64) + bonus
        )

    @hookimpl
    def register_adapters(self, register: Any) -> None:
        register(AdapterSpec("tiny-erp", lambda settings: None, {"type": "object"}, "a test ERP"))

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command("tiny-hello")
        def hello() -> None:
            click.echo("hello from tiny")

    @hookimpl
    def report_views(self, snapshot: Any, values: pl.DataFrame, settings: Any) -> dict[str, Any]:
        return {"Tiny orders": values.select("name", "tiny_orders")}


def test_hook_declare_fields(tmp_path: Path) -> None:
    _cfg, plugins, _ = setup(tmp_path, (Tiny(), "tiny"))
    field = plugins.fields()["tiny_orders"]
    assert field.owner == "tiny" and field.type == "integer"


def test_hook_config_schema(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path, (Tiny(), "tiny"))
    cfg.data["plugins"] = {"tiny": {"bonus": -1}}
    with pytest.raises(ConfigError, match=r"plugins\.tiny\.bonus: -1 is less than the minimum"):
        connect(cfg, plugins)


def test_hook_compute(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path, (Tiny(), "tiny"))
    cfg.data["plugins"] = {"tiny": {"bonus": 100}}
    sync(cfg, plugins)
    counts = adapter.snapshot.invoices.group_by("customer_id").len()
    for cid, n in counts.iter_rows():
        assert adapter.values[str(cid)]["tiny_orders"] == n + 100


class LazyTiny:
    """A plugin returning its frame lazily: the core collects it."""

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("lazy_sales", "integer", "Sales", help="Posted invoices and credit notes.")]

    @hookimpl
    def compute(self, snapshot: Any, settings: Any) -> pl.LazyFrame:
        return snapshot.sales().group_by("customer_id").agg(lazy_sales=pl.len().cast(pl.Int64))


def test_hook_compute_may_return_a_lazy_frame(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path, (LazyTiny(), "lazy"))
    result = sync(cfg, plugins)
    assert result.status == "ok"
    sales = adapter.snapshot.invoices.filter(pl.col("state").is_in(["posted", "paid"]))
    counts = dict(sales.group_by(pl.col("customer_id").cast(pl.String)).len().iter_rows())
    got = {c: v["lazy_sales"] for c, v in adapter.values.items() if "lazy_sales" in v}
    assert got == counts and len(got) > 20


def test_hook_register_adapters(tmp_path: Path) -> None:
    _cfg, plugins, _ = setup(tmp_path, (Tiny(), "tiny"))
    spec = plugins.adapters()["tiny-erp"]
    assert spec.description == "a test ERP" and spec.factory({}) is None


def test_hook_register_commands(tmp_path: Path) -> None:
    _cfg, plugins, _ = setup(tmp_path, (Tiny(), "tiny"))
    group = click.Group("x")
    plugins.pm.hook.register_commands(cli=group)
    result = CliRunner().invoke(group, ["tiny-hello"])
    assert result.output == "hello from tiny\n"


def test_hook_before_apply_and_after_sync(tmp_path: Path) -> None:
    seen: list[str] = []

    class Watcher:
        @hookimpl
        def before_apply(self, plan: Any, dry_run: bool) -> None:
            seen.append(f"before {dry_run} {plan.customers}")

        @hookimpl
        def after_sync(self, result: Any) -> None:
            seen.append(f"after {result.status}")

    cfg, plugins, adapter = setup(tmp_path, (Watcher(), "watcher"))
    result = sync(cfg, plugins)
    assert seen == [f"before False {result.plan.customers}", "after ok"]
    assert adapter.write_calls  # before_apply came before these


def test_hook_after_sync_is_called_on_a_failed_run_too(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Watcher:
        @hookimpl
        def after_sync(self, result: Any, config: Any) -> None:
            seen.append((result.status, result.error, config.redact("pw=hunter2-long")))

    cfg, plugins, _adapter = setup(tmp_path, (Watcher(), "watcher"))
    cfg.secrets.add("hunter2-long")
    cfg.data["erp"]["adapter"] = "no-such-erp"
    with pytest.raises(ConfigError):
        sync(cfg, plugins)
    ((status, error, redacted),) = seen
    assert status == "failed" and "no adapter named 'no-such-erp'" in error
    assert redacted == "pw=***"


def test_hook_report_views(tmp_path: Path) -> None:
    cfg, plugins, _adapter = setup(tmp_path, (Tiny(), "tiny"))
    cfg.data["state"] = {"path": str(tmp_path / "state.db")}
    sync(cfg, plugins)
    html = tmp_path / "r.html"
    config = tmp_path / "crm-bridge.toml"
    config.write_text(config.read_text() + f'[state]\npath = "{tmp_path / "state.db"}"\n')
    result = CliRunner().invoke(
        cli, ["--config", str(config), "report", "--html", str(html)], obj=plugins
    )
    assert result.exit_code == 0, result.output
    page = html.read_text()
    assert "<h2>Tiny orders</h2>" in page and "<th>tiny_orders</th>" in page


def test_every_hook_has_a_test_of_its_own_and_a_doc_entry() -> None:
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    docs = (Path(__file__).parent.parent / "docs" / "plugin_hooks.md").read_text()
    hooks = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "crm_bridge_spec")]
    assert len(hooks) >= 8
    for name in hooks:
        assert re.search(rf"def test_hook_\w*{name}", tests), f"hook {name} has no test_hook_{name}"
        assert f"### `{name}(" in docs, f"hook {name} is not in docs/plugin_hooks.md"
