"""Labels in the users' languages inside a real Tryton: ``fields provision`` writes every
field's label, help text and choice names in each language Tryton has active, and a
second run changes nothing — also when the admin running it reads Russian."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crm_bridge import config as config_mod
from crm_bridge import i18n
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sync import connect

from .conftest import RawRPC, Tryton
from .test_cli_errors import run

LANGUAGES = ("ru", "lv", "zh_CN")


def _in(rpc: RawRPC, language: str, method: str, *params: Any) -> Any:
    """``method`` called as a user who reads ``language``."""
    saved = rpc.context
    rpc.context = {**saved, "language": language}
    try:
        return rpc(method, *params)
    finally:
        rpc.context = saved


def _keys(rpc: RawRPC, language: str) -> dict[str, dict[str, Any]]:
    """The key definitions as Tryton gives them to its client in ``language``."""
    keys = _in(rpc, language, "model.crm_bridge.field.search_get_keys", [], None)
    return {k["name"]: k for k in keys}


def test_provision_writes_every_active_language_and_a_second_run_changes_nothing(
    tryton: Tryton, tmp_path: Path
) -> None:
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml")
    cfg = config_mod.load(cfg_path)
    adapter, _fields = connect(cfg, load_plugins())
    try:
        assert adapter.languages() == []
        activated = adapter.activate_languages(LANGUAGES)
        assert sorted(activated) == sorted(LANGUAGES)
        assert adapter.languages() == list(LANGUAGES)
    finally:
        adapter.close()
    values_before = tryton.rpc.crm_values()
    # The companion module's own texts (the CRM list's columns, the menu) come with it.
    columns = _in(tryton.rpc, "ru", "model.party.party.fields_get", ["crm_rfm_segment"])
    assert columns["crm_rfm_segment"]["string"] == "Сегмент RFM"
    menus = _in(tryton.rpc, "zh_CN", "model.ir.ui.menu.search_read", [], 0, None, None, ["name"])
    assert {"客户分段", "各忠诚度等级的客户数"} <= {m["name"] for m in menus}

    first = run("fields", "provision", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    changes = json.loads(first.stdout)["changes"]
    fields = load_plugins().fields()
    for language in LANGUAGES:
        translated = {c.split()[1] for c in changes if c.endswith(f"({language})")}
        assert {"rfm_segment", "loyalty_tier", "kpi_churn_risk"} <= translated, language

    for language in LANGUAGES:
        keys = _keys(tryton.rpc, language)
        with i18n.using(language):
            for name in ("rfm_segment", "loyalty_tier", "kpi_revenue_12m"):
                field = fields[name]
                assert keys[name]["string"] == i18n._(field.label) != field.label, language
                assert keys[name]["help"] == i18n._(field.help)
                if field.choices:
                    assert dict(keys[name]["selection"]) == {k: i18n._(v) for k, v in field.choices}
    assert _keys(tryton.rpc, "ru")["rfm_segment"]["string"] == "Сегмент RFM"
    assert dict(_keys(tryton.rpc, "zh_CN")["loyalty_tier"]["selection"])["gold"] == "黄金"
    english = _keys(tryton.rpc, "en")
    assert english["rfm_segment"]["string"] == "RFM segment"
    assert dict(english["rfm_segment"]["selection"])["at_risk"] == "At risk"

    again = run("fields", "provision", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["changes"] == []

    # The admin now reads Russian: provisioning still compares and writes the English
    # definitions in English, and the translations are left as they are.
    tryton.rpc("model.res.user.set_preferences", {"language": "ru"})
    russian_admin = run("fields", "provision", "--json", cwd=tmp_path)
    assert json.loads(russian_admin.stdout)["changes"] == []
    assert _keys(tryton.rpc, "en")["rfm_segment"]["string"] == "RFM segment"
    assert _keys(tryton.rpc, "ru")["rfm_segment"]["string"] == "Сегмент RFM"
    assert tryton.rpc.crm_values() == values_before  # values never touched


def test_locale_languages_limits_what_is_provisioned(tryton: Tryton, tmp_path: Path) -> None:
    cfg_path = tryton.config(tmp_path / "crm-bridge.toml", '\n[locale]\nlanguages = ["lv"]\n')
    adapter, _fields = connect(config_mod.load(cfg_path), load_plugins())
    try:
        adapter.activate_languages(["ru", "lv"])
    finally:
        adapter.close()
    proc = run("fields", "provision", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    changes = json.loads(proc.stdout)["changes"]
    assert any(c.endswith("(lv)") for c in changes)
    assert not any(c.endswith("(ru)") for c in changes)
    assert _keys(tryton.rpc, "ru")["rfm_segment"]["string"] == "RFM segment"  # not written
    assert _keys(tryton.rpc, "lv")["rfm_segment"]["string"] == "RFM segments"
