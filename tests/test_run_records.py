"""Runs readable the next morning, traces that help, signals for schedulers:
run records with every rejection, --verbose, --log-json, --metrics-file,
provisioning checked before writing, fields retired by plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from crm_bridge.cli import cli

from crm_bridge import Field, hookimpl
from crm_bridge.sync import sync

from .test_pipeline import Crashing, setup


class BadQuery:
    """A lazy query that fails in Polars with its whole plan in the message."""

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("badq_n", "integer", "N")]

    @hookimpl
    def compute(self, snapshot: Any, settings: Any) -> pl.LazyFrame:
        return (
            snapshot.scan("invoices")
            .join(snapshot.scan("customers"), on="customer_id")
            .group_by("customer_id")
            .agg(pl.col("no_such_column").sum().alias("badq_n"))
        )


class Slow:
    """Declares two fields, returns one; its query takes 0.4 s to collect."""

    @hookimpl
    def declare_fields(self) -> list[Field]:
        return [Field("slow_n", "integer", "N"), Field("slow_gone", "char", "Gone")]

    @hookimpl
    def compute(self, snapshot: Any, settings: Any) -> pl.LazyFrame:
        def wait(frame: pl.DataFrame) -> pl.DataFrame:
            time.sleep(0.4)
            return frame

        return (
            snapshot.scan("customers")
            .select("customer_id", slow_n=pl.lit(1, pl.Int64))
            .map_batches(wait)
        )


def cli_config(tmp_path: Path, extra: str = "") -> Path:
    """The config of ``setup`` as a file, with a secret the local commands must not need."""
    path = tmp_path / "crm-bridge.toml"
    path.write_text(
        '[erp]\nadapter = "memory"\npassword = "${CRM_BRIDGE_NEVER_SET}"\n'
        '[sync]\nas_of = "2026-06-30"\nbatch_size = 7\n' + extra
    )
    return path


def test_runs_show_names_each_rejection_without_any_erp_secret(tmp_path: Path) -> None:
    cfg, plugins, _ = setup(tmp_path, (Crashing(), "crashing"), (BadQuery(), "badq"))
    result = sync(cfg, plugins)
    assert result.status == "partial"
    cli_config(tmp_path)

    def local(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "crm_bridge", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    shown = local("runs", "show", str(result.run_id))
    assert shown.returncode == 0, shown.stderr
    assert f"run {result.run_id}: partial" in shown.stdout
    assert "rejected plugin crashing: raised ZeroDivisionError: division by zero" in shown.stdout
    assert "rejected plugin badq: raised ColumnNotFoundError" in shown.stdout
    as_json = json.loads(local("runs", "show", str(result.run_id), "--json").stdout)
    rejections = {r["plugin"]: r for r in as_json["counts"]["plugin_rejections"]}
    assert rejections["crashing"]["reason"] == "raised ZeroDivisionError: division by zero"
    # A Polars error is its first line, not kilobytes of query plan.
    reason = rejections["badq"]["reason"]
    assert "no_such_column" in reason and "\n" not in reason and len(reason) <= 320
    assert "plan" not in reason.lower()
    listed = local("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["partial"]
    # A command that talks to the ERP still needs the secret, and says so.
    assert "CRM_BRIDGE_NEVER_SET" in local("sync", "--dry-run").stderr


def test_verbose_is_one_short_line_per_hook_call_with_the_query_time(tmp_path: Path) -> None:
    _cfg, plugins, _ = setup(tmp_path, (Slow(), "slow"))
    config = cli_config(tmp_path).read_text().replace('password = "${CRM_BRIDGE_NEVER_SET}"\n', "")
    (tmp_path / "crm-bridge.toml").write_text(config)
    result = CliRunner().invoke(
        cli,
        ["--config", str(tmp_path / "crm-bridge.toml"), "--verbose", "sync", "--dry-run"],
        obj=plugins,
    )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("hook ")]
    assert all(len(ln) < 200 for ln in lines), max(lines, key=len)
    names = {ln.split()[1] for ln in lines}
    assert {"register_adapters", "declare_fields", "compute", "after_sync"} <= names
    assert any(ln.startswith("hook register_adapters [memory]") for ln in lines)
    (slow,) = [ln for ln in lines if ln.startswith("hook compute [slow]")]
    assert float(slow.split()[3].rstrip("s")) >= 0.4  # the collection is included
    assert slow.endswith("DataFrame 60x2")
    assert any(ln.startswith("hook after_sync [notify]") for ln in lines)
    assert len(result.output) < 20_000
    # The declared column it did not return is reported, and not cleared.
    assert "plugin 'slow' returned no column for its declared field(s) slow_gone" in (result.output)


def test_a_missing_column_is_recorded_and_never_clears_its_field(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path, (Slow(), "slow"))
    cid = next(iter(adapter.values)) if adapter.values else "1"
    adapter.values.setdefault(cid, {})["slow_gone"] = "kept"
    with pytest.warns(Warning, match="slow_gone"):
        result = sync(cfg, plugins)
    assert result.counts["missing_columns"] == {"slow": ["slow_gone"]}
    assert adapter.values[cid]["slow_gone"] == "kept"
    assert all(v.get("slow_n") == 1 for v in adapter.values.values() if "rfm_segment" in v)


def test_unprovisioned_fields_are_left_out_and_the_others_written(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path, (Slow(), "slow"))
    adapter.require_provisioning = True
    builtin = [f for f in plugins.fields().values() if f.owner != "slow"]
    adapter.provision(builtin)
    with pytest.warns(Warning, match=r"left out of the writes: slow_gone, slow_n \(plugin slow\)"):
        dry = sync(cfg, plugins, dry_run=True)
    assert dry.plan.changes and not {c.field for c in dry.plan.changes} & {"slow_n"}
    with pytest.warns(Warning, match="slow_n"):
        real = sync(cfg, plugins)
    assert real.status == "ok" and real.counts["unprovisioned"] == {
        "slow_gone": "missing",
        "slow_n": "missing",
    }
    written = [v for v in adapter.values.values() if v]
    assert any("rfm_segment" in v for v in written)
    assert all("slow_n" not in v for v in written)
    # With auto_provision the run provisions first, then writes them.
    cfg.data["sync"]["auto_provision"] = True
    again = sync(cfg, plugins)
    assert again.counts["unprovisioned"] == {} and "slow_n" in adapter.provisioned
    assert all(v.get("slow_n") == 1 for v in adapter.values.values() if "rfm_segment" in v)


def test_fields_retire_by_plugin_and_by_several_names(tmp_path: Path) -> None:
    cfg, plugins, adapter = setup(tmp_path)
    sync(cfg, plugins)
    kpis = {n for n, f in plugins.fields().items() if f.owner == "kpis"}
    assert any(kpis & set(v) for v in adapter.values.values())
    config = tmp_path / "crm-bridge.toml"
    runner = CliRunner()
    refused = runner.invoke(
        cli, ["--config", str(config), "fields", "retire", "--plugin", "kpis", "--yes"], obj=plugins
    )
    assert refused.exit_code == 2 and "declared by the enabled plugin 'kpis'" in refused.output
    from crm_bridge.plugin_manager import load_plugins
    from crm_bridge.testing import MemoryAdapterPlugin

    without = load_plugins(disabled=["kpis"])
    without.register(MemoryAdapterPlugin(adapter), "memory")
    done = runner.invoke(
        cli, ["--config", str(config), "fields", "retire", "--plugin", "kpis", "--yes"], obj=without
    )
    assert done.exit_code == 0, done.output
    assert done.output.count("retired ") == len(kpis)
    assert not any(kpis & set(v) for v in adapter.values.values())
    assert any("rfm_segment" in v for v in adapter.values.values())
    both = runner.invoke(
        cli,
        ["--config", str(config), "fields", "retire", "x_one", "x_two", "--yes"],
        obj=without,
    )
    assert both.exit_code == 0, both.output
    assert "retired x_one" in both.output and "retired x_two" in both.output


def test_log_json_and_metrics_file(tmp_path: Path) -> None:
    _cfg, plugins, _ = setup(tmp_path, (Crashing(), "crashing"))
    config = tmp_path / "crm-bridge.toml"
    metrics = tmp_path / "textfile" / "crm_bridge.prom"
    metrics.parent.mkdir()
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "--log-json", "sync", "--quiet", "--metrics-file", str(metrics)],
        obj=plugins,
    )
    assert result.exit_code == 3, result.output
    events = [json.loads(ln) for ln in result.output.splitlines() if ln.startswith("{")]
    (run,) = [e for e in events if e["event"] == "run"]
    assert run["status"] == "partial" and run["rejected_plugins"][0]["plugin"] == "crashing"
    assert all("ts" in e for e in events)
    text = metrics.read_text()
    assert 'crm_bridge_run_status{status="partial"} 1' in text
    assert 'crm_bridge_run_status{status="ok"} 0' in text
    assert "crm_bridge_rejected_plugins 1" in text
    assert 'crm_bridge_read_records{table="customers"} 60' in text
    assert "# TYPE crm_bridge_run_duration_seconds gauge" in text
    assert [p.name for p in metrics.parent.iterdir()] == ["crm_bridge.prom"]  # no temp file
    # A run that fails still writes its metrics, and the error as a JSON event.
    config.write_text(config.read_text().replace('"memory"', '"no-such-erp"'))
    failed = CliRunner().invoke(
        cli,
        ["--config", str(config), "--log-json", "sync", "--metrics-file", str(metrics)],
        obj=plugins,
    )
    assert failed.exit_code == 2
    assert 'crm_bridge_run_status{status="failed"} 1' in metrics.read_text()
    errors = [json.loads(ln) for ln in failed.output.splitlines() if ln.startswith("{")]
    assert errors[-1]["event"] == "error" and "no-such-erp" in errors[-1]["message"]
