"""A scaffolded plugin: its own tests pass, it installs into a fresh virtual environment
with ``crm-bridge plugins install PATH``, writes its field into a real Tryton, uninstalls."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import site
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from crm_bridge.errors import ConfigError
from crm_bridge.sample_data import generate

from .conftest import PROFILE, Tryton
from .test_cli_errors import assert_clear, run


def fresh_venv(where: Path) -> Path:
    """A new virtual environment that sees crm-bridge's own packages but installs into itself."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parents = "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
    Path(purelib, "crm_bridge_parent.pth").write_text(f"import site; {parents}\n")
    return python


def test_scaffold_install_sync_uninstall(tryton: Tryton, tmp_path: Path) -> None:
    made = run("plugins", "new", "acme_kpis", "--dir", str(tmp_path), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "crm-bridge-acme-kpis"
    assert (root / "pyproject.toml").exists() and (root / "README.md").exists()
    own_tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert own_tests.returncode == 0, own_tests.stdout + own_tests.stderr
    assert "2 passed" in own_tests.stdout
    generated = (root / "tests" / "test_acme_kpis.py").read_text()
    assert "run_plugin(plugin, snapshot()" in generated  # the public runner, not internals
    assert "build/" in (root / ".gitignore").read_text()

    python = fresh_venv(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    tryton.config(work / "crm-bridge.toml")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "crm_bridge", *args],
            cwd=work,
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=os.environ,
        )

    installed = cli("plugins", "install", str(root))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = {p["name"]: p for p in json.loads(cli("plugins", "list", "--json").stdout)}
    assert listed["acme_kpis"]["distribution"] == "crm-bridge-acme-kpis"
    assert listed["acme_kpis"]["loaded"] and "compute" in listed["acme_kpis"]["hooks"]
    # The plugin is in the new environment only.
    mine = subprocess.run(
        [sys.executable, "-m", "crm_bridge", "plugins", "list", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert "acme_kpis" not in {p["name"] for p in json.loads(mine.stdout)}

    assert cli("fields", "provision").returncode == 0
    synced = cli("sync", "--json")
    assert synced.returncode == 0, synced.stderr
    held = tryton.rpc.crm_values()
    snap = generate(dataclasses.replace(PROFILE, end=tryton.end))
    since = tryton.end - dt.timedelta(days=365)
    expected = dict(
        snap.sales()
        .filter((pl.col("kind") == "invoice") & (pl.col("date") > since))
        .group_by(pl.col("customer_id").cast(pl.String))
        .len()
        .collect()
        .iter_rows()
    )
    got = {c: v["acme_kpis_invoices_12m"] for c, v in held.items() if "acme_kpis_invoices_12m" in v}
    assert got == expected and len(got) > 100

    removed = cli("plugins", "uninstall", "acme_kpis")
    assert removed.returncode == 0, removed.stderr
    listed = {p["name"] for p in json.loads(cli("plugins", "list", "--json").stdout)}
    assert "acme_kpis" not in listed and "segmentation" in listed


def test_scaffold_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    from crm_bridge.cli.scaffold import scaffold

    with pytest.raises(ConfigError, match="must be 2-41 characters"):
        scaffold("Acme-KPIs", tmp_path)
    scaffold("acme", tmp_path)
    proc = run("plugins", "new", "acme", "--dir", str(tmp_path), cwd=tmp_path)
    assert_clear(proc, 2, "already exists")
