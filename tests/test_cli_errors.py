"""Clear errors: one message, a hint, a non-zero exit code, no traceback, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from crm_bridge.adapters.tryton.sandbox import free_port

from .conftest import PASSWORD_ENV, Tryton


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def assert_clear(proc: subprocess.CompletedProcess, code: int, *phrases: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("Error: ")
    for phrase in phrases:
        assert phrase in proc.stderr


def test_wrong_password(tryton: Tryton, tmp_path: Path) -> None:
    tryton.config(tmp_path / "crm-bridge.toml")
    proc = run("sync", cwd=tmp_path, env={PASSWORD_ENV: "not-the-password-xyz"})
    assert_clear(proc, 1, "rejected the login of user 'admin'", "Hint: check erp.username")
    assert "not-the-password-xyz" not in proc.stderr + proc.stdout


def test_erp_unreachable(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "crm-bridge.toml").write_text(
        f'[erp]\nadapter = "tryton"\nurl = "http://127.0.0.1:{port}"\ndatabase = "x"\n'
        'username = "admin"\npassword = "${SECRET_PW}"\n'
    )
    proc = run("sync", cwd=tmp_path, env={"SECRET_PW": "hunter2-secret"})
    assert_clear(
        proc, 1, f"cannot connect to Tryton at http://127.0.0.1:{port}", "Hint: check erp.url"
    )
    assert "hunter2-secret" not in proc.stderr


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (
            '[erp]\nadapter = "tryton"\n[sync]\nbatch_size = 0\n',
            "config key sync.batch_size: 0 is less than the minimum of 1",
        ),
        (
            '[erp]\nadapter = "tryton"\nurl = "ftp://x"\ndatabase = "d"\nusername = "u"\n'
            'password = "p"\n',
            "config key erp.url: 'ftp://x' does not match",
        ),
        ("[erp]\n", "config key erp: 'adapter' is a required property"),
        (
            '[erp]\nadapter = "tryton"\npassword = "${NOT_SET_ANYWHERE}"\n',
            "config key erp.password refers to the environment variable NOT_SET_ANYWHERE",
        ),
        ('[erp]\nadapter = "odoo9"\n', "no adapter named 'odoo9'"),
        (
            '[erp]\nadapter = "tryton"\n[plugins.segmentation]\nrfm_window_days = 10\n',
            "config key plugins.segmentation.rfm_window_days: 10 is less than the minimum of 30",
        ),
        (
            '[erp]\nadapter = "tryton"\n[plugins.loyalty]\ntiers = [{key = "diamond"}]\n',
            "config key plugins.loyalty.tiers.0.key: 'diamond' is not one of",
        ),
        ("[erp\n", "is not valid TOML"),
    ],
)
def test_invalid_config(tmp_path: Path, body: str, phrase: str) -> None:
    (tmp_path / "crm-bridge.toml").write_text(body)
    proc = run("sync", "--dry-run", cwd=tmp_path)
    assert_clear(proc, 2, phrase)


def test_missing_config(tmp_path: Path) -> None:
    proc = run("doctor", cwd=tmp_path)
    assert_clear(proc, 2, "crm-bridge.toml not found", "crm-bridge init")


def test_unknown_plugin_name(tmp_path: Path) -> None:
    """A typo in a settings table stops the run; an unknown name in ``disabled`` (a
    plugin uninstalled since) is only a warning: it must not break the nightly run."""
    (tmp_path / "crm-bridge.toml").write_text(
        '[erp]\nadapter = "tryton"\nurl = "http://127.0.0.1:1"\ndatabase = "d"\n'
        'username = "u"\npassword = "${NO_SUCH_PASSWORD_ENV}"\n'
        "[plugins]\n"
        'disabled = ["credit"]  # a comment that stays\n'
        "[plugins.segmentaton]\nx = 1\n"
    )
    proc = run("sync", cwd=tmp_path, env={"NO_SUCH_PASSWORD_ENV": "pw"})
    assert_clear(
        proc,
        2,
        "unknown plugin 'segmentaton'",
        "installed plugins: kpis, loyalty, notify, rest, segmentation, soap, tryton",
    )
    config = tmp_path / "crm-bridge.toml"
    config.write_text(config.read_text().replace("[plugins.segmentaton]\nx = 1\n", ""))
    proc = run("sync", "--dry-run", cwd=tmp_path, env={"NO_SUCH_PASSWORD_ENV": "pw"})
    assert proc.returncode == 1, proc.stderr  # it went on, to the (absent) ERP
    assert proc.stderr.startswith(
        "Warning: [plugins] disabled in " + str(config) + " names 'credit', which is not "
        "installed; remove it with: crm-bridge plugins enable credit"
    )
    assert "cannot connect to Tryton" in proc.stderr
    # Enabling the name removes it, comments kept; without the ERP's secret.
    proc = run("plugins", "enable", "credit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "disabled = []  # a comment that stays" in config.read_text()
    proc = run("plugins", "disable", "nosuch", cwd=tmp_path)
    assert_clear(proc, 2, "unknown plugin 'nosuch'")


def test_doctor_reports_each_check_and_fails_until_provisioned(
    tryton: Tryton, tmp_path: Path
) -> None:
    tryton.config(tmp_path / "crm-bridge.toml")
    proc = run("doctor", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()  # plain output is the command's output: stdout
    assert [ln.split()[1] for ln in lines if ln.startswith(("ok", "FAIL"))] == [
        "reachable",
        "login",
        "module",
        "fields",
        "permissions",
    ]
    assert "fix: crm-bridge fields provision" in proc.stdout and proc.stderr == ""
    assert run("fields", "provision", cwd=tmp_path).returncode == 0
    proc = run("doctor", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"ok": false' not in proc.stdout


def test_init_writes_a_config_that_validates(tmp_path: Path) -> None:
    proc = run("init", "--url", "http://erp.example:8000", "--database", "prod", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "crm-bridge.toml").read_text()
    assert 'password = "${CRM_BRIDGE_ERP_PASSWORD}"' in text
    again = run("init", cwd=tmp_path)
    assert_clear(again, 2, "already exists", "--force")
    from crm_bridge import config

    os.environ["CRM_BRIDGE_ERP_PASSWORD"] = "x"
    try:
        cfg = config.load(tmp_path / "crm-bridge.toml")
    finally:
        del os.environ["CRM_BRIDGE_ERP_PASSWORD"]
    assert cfg.erp["database"] == "prod" and cfg.secrets == {"x"}


def test_init_knows_every_shipped_profile(tmp_path: Path) -> None:
    from crm_bridge import mapping

    for profile in [*mapping.profiles(), "tryton", "rest", "soap"]:
        proc = run("init", "--profile", profile, "--path", f"{profile}.toml", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        text = (tmp_path / f"{profile}.toml").read_text()
        assert f'adapter = "{profile}"' in text and "${CRM_BRIDGE_ERP_" in text
        # ...and it is valid for its adapter once the secrets are in the environment.
        from crm_bridge import config
        from crm_bridge.plugin_manager import load_plugins
        from crm_bridge.sync import adapter_spec

        for name in ("PASSWORD", "API_KEY", "API_SECRET"):
            os.environ[f"CRM_BRIDGE_ERP_{name}"] = "x-secret"
        try:
            adapter_spec(config.load(tmp_path / f"{profile}.toml"), load_plugins())
        finally:
            for name in ("PASSWORD", "API_KEY", "API_SECRET"):
                del os.environ[f"CRM_BRIDGE_ERP_{name}"]


def test_config_pointing_at_a_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    proc = run("--config", "conf", "sync", cwd=tmp_path)
    assert_clear(proc, 2, "config file conf is a folder, not a file", "conf/crm-bridge.toml")


@pytest.mark.parametrize(
    ("state", "command", "phrase"),
    [
        ("blocker/state.db", ("sync",), "blocker is a file, not a folder"),
        ("blocker/deeper/state.db", ("sync",), "blocker is a file, not a folder"),
        ("a-folder", ("sync",), "a-folder is a folder, not a file"),
        ("blocker/state.db", ("fields", "retire", "old_field", "--yes"), "blocker is a file"),
    ],
)
def test_an_impossible_state_path_is_named(
    tmp_path: Path, state: str, command: tuple[str, ...], phrase: str
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be\n")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "crm-bridge.toml").write_text(
        '[erp]\nadapter = "tryton"\nurl = "http://127.0.0.1:1"\ndatabase = "d"\n'
        f'username = "u"\npassword = "${{ERP_PW}}"\n[state]\npath = "{state}"\n'
    )
    proc = run(*command, cwd=tmp_path, env={"ERP_PW": "pw-secret-1"})
    assert_clear(proc, 2, "config key state.path: the state store", phrase, "[state] path")


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`crm-bridge runs --json | head -c1`: the pipe closes before crm-bridge writes."""
    from crm_bridge.state import StateStore

    (tmp_path / "crm-bridge.toml").write_text(
        '[erp]\nadapter = "tryton"\n[state]\npath = "state.db"\n'
    )
    StateStore(tmp_path / "state.db").close()
    for args in (("runs", "--json"), ("runs",), ("adapters", "list", "--json")):
        proc = subprocess.Popen(
            [sys.executable, "-m", "crm_bridge", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first byte
        stderr = proc.stderr.read().decode()
        assert proc.wait(60) == 1, stderr
        assert stderr == "", f"crm-bridge {' '.join(args)}: {stderr}"

    shell = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m crm_bridge runs --json | head -c1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert shell.stdout == "[" and shell.stderr == ""
