"""The plugin manager: entry points, the allow-list, enable/disable, listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from crm_bridge.cli import cli

from crm_bridge.errors import PluginError
from crm_bridge.fields import Field
from crm_bridge.hookspecs import hookimpl
from crm_bridge.plugin_manager import load_plugins


def test_builtins_load_through_entry_points() -> None:
    plugins = load_plugins()
    assert {"segmentation", "loyalty", "kpis", "tryton"} <= set(plugins.info)
    for name in ("segmentation", "loyalty", "kpis"):
        info = plugins.info[name]
        assert info.loaded and info.distribution == "crm-bridge"
        assert {"compute", "config_schema", "declare_fields"} <= set(info.hooks)
    assert "tryton" in plugins.adapters()
    fields = plugins.fields()
    assert fields["rfm_segment"].owner == "segmentation"
    assert fields["loyalty_tier"].owner == "loyalty"
    assert fields["kpi_clv_12m"].owner == "kpis"


def test_allow_list_limits_what_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BRIDGE_LOAD_PLUGINS", "segmentation")
    plugins = load_plugins()
    assert plugins.info["segmentation"].loaded and not plugins.info["kpis"].loaded
    assert not plugins.info["tryton"].loaded and not plugins.info["tryton"].enabled
    assert plugins.adapters() == {}
    monkeypatch.setenv("CRM_BRIDGE_LOAD_PLUGINS", "")
    plugins = load_plugins()
    assert not any(i.loaded for i in plugins.info.values())
    assert plugins.fields() == {}


def test_disabled_plugins_are_listed_but_not_loaded() -> None:
    plugins = load_plugins(disabled=["segmentation"])
    assert not plugins.info["segmentation"].loaded and not plugins.info["segmentation"].enabled
    assert "rfm_segment" not in plugins.fields() and "loyalty_tier" in plugins.fields()


def test_two_plugins_declaring_one_field_is_an_error() -> None:
    class Twin:
        @hookimpl
        def declare_fields(self) -> list[Field]:
            return [Field("rfm_segment", "char", "Copy")]

    plugins = load_plugins()
    plugins.register(Twin(), "twin")
    with pytest.raises(PluginError, match="declared by both 'segmentation' and 'twin'"):
        plugins.fields()


def test_plugins_list_json_and_disable_enable(tmp_path: Path) -> None:
    cfg = tmp_path / "crm-bridge.toml"
    cfg.write_text('# keep me\n[erp]\nadapter = "tryton"\n\n[plugins]\ndisabled = []\n')
    runner = CliRunner()
    result = runner.invoke(cli, ["plugins", "list", "--json"], obj=load_plugins())
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert listed["kpis"]["enabled"] and "compute" in listed["kpis"]["hooks"]
    args = ["--config", str(cfg), "plugins", "disable", "kpis"]
    assert runner.invoke(cli, args, obj=load_plugins()).exit_code == 0
    assert 'disabled = ["kpis"]' in cfg.read_text() and "# keep me" in cfg.read_text()
    args = ["--config", str(cfg), "plugins", "enable", "kpis"]
    assert runner.invoke(cli, args, obj=load_plugins()).exit_code == 0
    assert "disabled = []" in cfg.read_text()


def test_every_builtin_field_explains_itself() -> None:
    fields = load_plugins().fields()
    assert len(fields) >= 30
    for f in fields.values():
        assert f.label and len(f.help) >= 20, f"{f.name} needs a help text"
        docs = Path(__file__).parent.parent / "docs" / "plugins" / f"{f.owner}.md"
        assert f"`{f.name}`" in docs.read_text(), f"{f.name} is not in {docs.name}"


def test_version_lists_plugins_and_verbose_traces_hook_calls(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"], obj=load_plugins())
    assert result.exit_code == 0
    assert result.output.splitlines()[0].startswith("crm-bridge ")
    assert "  segmentation 0.1.0 [crm-bridge]" in result.output
    result = runner.invoke(cli, ["adapters", "list", "--json"], obj=load_plugins())
    listed = {a["name"]: a for a in json.loads(result.output)}
    assert {"tryton", "rest", "soap", "odoo", "erpnext", "dolibarr", "nav"} <= set(listed)
    assert "verify_tls" in listed["tryton"]["settings"]
    assert listed["odoo"]["required"] == ["url", "database", "api_key"]
    assert listed["odoo"]["capabilities"]["multi_record_write"] is True
    assert listed["nav"]["capabilities"]["provisioning"] is False
    plugins = load_plugins()
    lines: list[str] = []
    plugins.enable_tracing(lines.append)
    plugins.fields()
    plugins.adapters()
    assert "hook declare_fields [loyalty]" in " ".join(lines)
    assert any("register_adapters" in line for line in lines)


def test_plugins_list_has_a_header_and_adapters_show_prints_the_shipped_docs() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["plugins", "list"], obj=load_plugins())
    assert listed.exit_code == 0
    assert listed.output.splitlines()[0].split() == ["name", "version", "state", "hooks"]
    shown = runner.invoke(cli, ["adapters", "show", "dolibarr"], obj=load_plugins())
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("# Dolibarr")
    described = runner.invoke(cli, ["adapters", "list"], obj=load_plugins())
    assert "docs: crm-bridge adapters show dolibarr" in described.output
    assert "docs/adapters/" not in described.output  # a path a pip install does not have
    missing = runner.invoke(cli, ["adapters", "show", "nosuch"], obj=load_plugins())
    assert missing.exit_code == 2 and "no adapter profile named 'nosuch'" in missing.output
