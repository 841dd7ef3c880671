"""The ERP fails: a fault-injecting proxy in front of a real Tryton, at extract and apply."""

from __future__ import annotations

import json
from pathlib import Path

from crm_bridge import config as config_mod
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import connect, sync

from .conftest import Tryton
from .faultproxy import FaultProxy
from .test_cli_errors import assert_clear, run
from .test_end_to_end import assert_holds, expected_values

TIMEOUT = 15


def proxied_config(tryton: Tryton, proxy: FaultProxy, path: Path) -> Path:
    tryton.config(path)
    text = path.read_text().replace(tryton.server.url, proxy.url)
    # A timeout long enough for a real answer on a loaded 2-core machine (3 s was not),
    # shorter than the proxy's "slow" fault.
    path.write_text(text.replace('username = "admin"', f'username = "admin"\ntimeout = {TIMEOUT}'))
    return path


def provision(tryton: Tryton, path: Path) -> None:
    direct = path.with_name("direct.toml")
    tryton.config(direct)
    cfg = config_mod.load(direct)
    adapter, fields = connect(cfg, load_plugins())
    adapter.provision(list(fields.values()))
    adapter.close()


def test_transient_faults_at_extract_and_apply_are_retried(tryton: Tryton, tmp_path: Path) -> None:
    with FaultProxy(tryton.server.url, slow_seconds=TIMEOUT + 2) as proxy:
        cfg_path = proxied_config(tryton, proxy, tmp_path / "crm-bridge.toml")
        provision(tryton, cfg_path)
        proxy.inject("model.account.invoice.search_read", "500", "429", "garbage")
        proxy.inject("model.account.invoice.line.search_read", "reset", "truncated", "503")
        proxy.inject("model.party.party.crm_apply", "503", "slow", "reset")
        result = sync(config_mod.load(cfg_path), load_plugins())
    assert result.status == "ok"
    assert sorted(proxy.injected) == sorted(
        [("model.account.invoice.search_read", f) for f in ("500", "429", "garbage")]
        + [("model.account.invoice.line.search_read", f) for f in ("reset", "truncated", "503")]
        + [("model.party.party.crm_apply", f) for f in ("503", "slow", "reset")]
    )
    # Nothing lost, nothing doubled: Tryton holds exactly what the plugins computed.
    expected = expected_values(tryton)
    held = tryton.rpc.crm_values()
    assert_holds(held, expected)  # value for value
    assert result.applied is not None and result.applied.written == len(expected)


def test_a_server_that_keeps_failing_gets_one_clear_message(tryton: Tryton, tmp_path: Path) -> None:
    with FaultProxy(tryton.server.url) as proxy:
        cfg_path = proxied_config(tryton, proxy, tmp_path / "crm-bridge.toml")
        provision(tryton, cfg_path)
        proxy.inject("model.party.party.crm_apply", *["503"] * 5)
        proc = run("sync", "--json", cwd=tmp_path)
        assert proxy.calls["model.party.party.crm_apply"] == 5
    assert_clear(
        proc,
        1,
        f"Tryton at {proxy.url} (database test) answered HTTP 503",
        "Hint: the server is overloaded or failing",
    )
    # The failed run is on record; the next run, with the server back, finishes the job.
    history = json.loads(run("runs", "--json", cwd=tmp_path).stdout)
    assert history[0]["status"] == "failed" and "HTTP 503" in history[0]["message"]
    cfg_path.write_text(cfg_path.read_text().replace(proxy.url, tryton.server.url))
    again = json.loads(run("sync", "--json", cwd=tmp_path).stdout)
    expected = expected_values(tryton)
    assert again["counts"]["resumed_customers"] > 0
    assert again["counts"]["resumed_customers"] + again["counts"]["written"] == len(expected)
    assert_holds(tryton.rpc.crm_values(), expected)  # value for value
