"""A third-party plugin's whole life on a real Tryton, as IT staff run it:
install -> sync before provisioning -> provision -> sync -> its definition changes ->
disable -> retire -> uninstall -> sync, every step exiting 0 with a working config;
then uninstall --retire-fields in one go."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from crm_bridge.adapters.tryton.adapter import FIELD_MODEL

from .conftest import Tryton
from .test_cli_errors import run
from .test_scaffold import fresh_venv

FIELD = "credit_invoices_12m"


def test_plugin_lifecycle_never_breaks_the_run(tryton: Tryton, tmp_path: Path) -> None:
    assert run("plugins", "new", "credit", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    root = tmp_path / "crm-bridge-credit"
    assert "build/" in (root / ".gitignore").read_text()
    python = fresh_venv(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    config = tryton.config(
        work / "crm-bridge.toml",
        "\n[plugins]\n# plugins we switched off, and why\ndisabled = []\n",
    )

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "crm_bridge", *args],
            cwd=work,
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=os.environ,
            timeout=600,
        )

    def ok(*args: str) -> subprocess.CompletedProcess:
        proc = cli(*args)
        assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc

    def holders(name: str) -> int:
        return sum(name in v for v in tryton.rpc.crm_values().values())

    ok("fields", "provision")  # the built-in plugins' fields only
    ok("plugins", "install", str(root))
    leftovers = [p.name for p in [*root.iterdir(), *(root / "src").iterdir()]]
    assert not [n for n in leftovers if n == "build" or n.endswith(".egg-info")], leftovers

    # Installed, not provisioned: the dry run says so, the run writes everyone else's.
    dry = ok("sync", "--dry-run")
    assert f"left out of the writes: {FIELD} (plugin credit)" in dry.stderr
    synced = ok("sync", "--json")
    assert f"left out of the writes: {FIELD}" in synced.stderr
    assert json.loads(synced.stdout)["counts"]["unprovisioned"] == {FIELD: "missing"}
    assert holders("rfm_segment") > 100 and holders(FIELD) == 0
    doctor = cli("doctor")
    assert doctor.returncode == 1 and f"missing: {FIELD}" in doctor.stdout
    assert "fix: crm-bridge fields provision" in doctor.stdout

    ok("fields", "provision")
    ok("sync")
    assert holders(FIELD) > 100

    # The definition in the ERP no longer matches the declaration (a plugin upgrade).
    (defn,) = tryton.rpc(
        f"model.{FIELD_MODEL}.search_read", [("name", "=", FIELD)], 0, 1, None, ["id"]
    )
    tryton.rpc(f"model.{FIELD_MODEL}.write", [defn["id"]], {"string": "Invoices (old label)"})
    doctor = cli("doctor")
    assert doctor.returncode == 1
    assert (
        f"defined differently from what the plugins now declare (a plugin was upgraded): {FIELD}"
        in (doctor.stdout)
    )
    ok("fields", "provision")
    ok("doctor")

    # The documented removal.
    ok("plugins", "disable", "credit")
    retired = ok("fields", "retire", "--plugin", "credit", "--yes")
    assert f"retired {FIELD}" in retired.stdout
    assert holders(FIELD) == 0
    removed = ok("plugins", "uninstall", "credit")
    assert "removed credit from [plugins] disabled" in removed.stdout
    text = config.read_text()
    assert "credit" not in text and "# plugins we switched off, and why" in text
    after = ok("sync")
    assert "Warning" not in after.stderr
    ok("doctor")
    ok("plugins", "enable", "loyalty")
    assert "credit" not in {p["name"] for p in json.loads(ok("plugins", "list", "--json").stdout)}

    # Once more, in one command: uninstall --retire-fields.
    ok("plugins", "install", str(root))
    ok("fields", "provision")
    ok("sync")
    assert holders(FIELD) > 100
    gone = ok("plugins", "uninstall", "credit", "--retire-fields", "--yes")
    assert f"retired {FIELD}" in gone.stdout
    assert holders(FIELD) == 0
    names = tryton.rpc(
        f"model.{FIELD_MODEL}.search_read", [("name", "=", FIELD)], 0, 1, None, ["id"]
    )
    assert names == []
    ok("sync")
    ok("doctor")
