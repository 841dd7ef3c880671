"""The message catalogs: complete, placeholders kept, the glossary followed; the language
reaches the diagnosis, the loyalty reason and the choice of a command's language."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
from crm_bridge.plugins import loyalty

from crm_bridge import Snapshot, i18n
from crm_bridge.diagnose import PROCESSES, diagnose
from crm_bridge.errors import ConfigError
from crm_bridge.i18n import N_
from crm_bridge.plugin_manager import load_plugins

GLOSSARY = Path(__file__).parents[1] / "docs" / "glossary.md"
TRANSLATED = ("ru", "lv", "zh_CN")
AS_OF = dt.date(2026, 6, 30)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_catalog_translates_every_message_with_the_same_placeholders(
    language: str,
) -> None:
    messages = i18n.builtin_messages()
    assert len(messages) > 150  # fields, report, diagnosis, loyalty reasons, CLI
    assert i18n.problems(i18n.read_catalog(language), messages) == []


def test_a_catalog_lacking_a_message_or_changing_a_placeholder_fails() -> None:
    catalog = i18n.read_catalog("ru")
    catalog.delete("Churn risk")
    catalog["{rows} more rows in the XLSX."].string = "Ещё строк в XLSX: {n}."
    catalog[("{count} invoice", "{count} invoices")].string = ("{count} счёт", "{count} счёта", "")
    found = i18n.problems(catalog, i18n.builtin_messages())
    assert len(found) == 3, found
    assert any("no msgid 'Churn risk'" in p for p in found), found
    assert any("['n']" in p and "['rows']" in p for p in found), found
    assert any("untranslated" in p and "{count} invoice" in p for p in found), found


def test_catalogs_follow_the_glossary() -> None:
    terms = _glossary()
    assert len(terms) >= 25
    fields = load_plugins([]).fields().values()
    labels = [f.label for f in fields] + [label for f in fields for k, label in f.choices]
    labels += [*PROCESSES, *_report_titles(), *_diagnosis_parameters()]
    checked = 0
    for language in TRANSLATED:
        with i18n.using(language):
            for en, *translations in terms:
                term = translations[("ru", "lv", "zh_CN").index(language)]
                pattern = re.compile(rf"\b{re.escape(en)}s?\b", re.IGNORECASE)
                for label in labels:
                    if pattern.search(label):
                        checked += 1
                        text = i18n._(label)
                        assert _uses(text, term, language), (language, label, text, term)
    assert checked > 150


def test_diagnosis_in_chinese_has_no_english_left() -> None:
    snapshot = Snapshot.from_rows(
        AS_OF, customers=[{"customer_id": "1", "name": "C1", "active": True}]
    )
    with i18n.using("zh_CN"):
        findings = diagnose(snapshot)
    english = {f.parameter for f in diagnose(snapshot)} | set(PROCESSES)
    for f in findings:
        for text in (f.process, f.parameter, f.evidence, f.advice):
            assert text not in english and not re.search(r"[a-z]{4,} [a-z]{3,}", text), text
    assert findings[0].process == "战略制定"


def test_loyalty_reason_in_russian_with_plural_forms() -> None:
    m = pl.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "spend": [12806.0, 900.0, 4000.0],
            "purchases": [5, 1, 2],
            "margin": [0.0, 0.0, 0.0],
            "avg_days_late": [0.0, 3.2, 0.0],
            "overdue_days": [0, 0, 75],
        },
        schema_overrides={"customer_id": pl.Categorical},
    )
    previous = pl.DataFrame(
        schema={"customer_id": pl.Categorical, "prev_tier": pl.String, "prev_below_since": pl.Date}
    )
    tiers = loyalty.tiers(m, loyalty.DEFAULT_TIERS, AS_OF, 90, previous)
    reasons = {}
    for language in ("en", "ru"):
        with i18n.using(language):
            out = tiers.with_columns(reason=loyalty._reason(loyalty.DEFAULT_TIERS, 365, [1, 2, 5]))
        reasons[language] = out["reason"].to_list()
    assert reasons["en"][0] == (
        "Gold: 365-day spend 12806, 5 invoices; paid on time (meets spend >= 10,000, >= 4 invoices)"
    )
    assert reasons["ru"][0] == (
        "Золотой: покупки за 365 дн.: 12806, 5 счетов; оплата в срок "
        "(покупки >= 10\xa0000, счетов >= 4)"
    )
    assert "1 счёт;" in reasons["ru"][1] and "Бронзовый" in reasons["ru"][1]
    assert "2 счёта;" in reasons["ru"][2] and "просроченный счёт 75 дн." in reasons["ru"][2]


def test_the_language_of_a_command() -> None:
    assert i18n.normalize("ru_RU.UTF-8") == "ru"
    assert i18n.normalize("zh-Hans-CN") == "zh_CN" and i18n.normalize("zh_TW") is None
    assert i18n.normalize("C.UTF-8") == "en" and i18n.normalize("de_DE") is None
    assert i18n.from_environment({"LANG": "lv_LV.UTF-8"}) == "lv"
    assert i18n.from_environment({"LC_ALL": "de_DE.UTF-8", "LANG": "ru_RU"}) is None
    assert i18n.resolve("zh_CN", "ru") == "zh_CN"
    assert i18n.resolve(None, "lv") == "lv"
    with pytest.raises(ConfigError, match="no catalog for this language"):
        i18n.resolve("klingon", None)


def _glossary() -> list[tuple[str, str, str, str]]:
    text = GLOSSARY.read_text("utf-8").split("## Terms")[1].split("##")[0]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("en", "---") and "/" not in cells[0]:
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def _uses(text: str, term: str, language: str) -> bool:
    """Whether ``text`` uses every word of ``term`` (Russian and Latvian: its stem)."""
    text = text.lower().replace("ё", "е")
    for word in re.findall(r"\w+", term.lower().replace("ё", "е")):
        stem = word if language == "zh_CN" else word[: max(4, len(word) - 3)]
        if stem not in text:
            return False
    return True


def _report_titles() -> list[str]:
    source = (Path(i18n.__file__).parent / "report.py").read_text("utf-8")
    titles = re.findall(r'View\(\s*_\("([^"]+)"\)', source)
    assert len(titles) >= 8
    return [*titles, N_("Segment × product matrix")]


def _diagnosis_parameters() -> list[str]:
    source = (Path(i18n.__file__).parent / "diagnose.py").read_text("utf-8")
    return re.findall(r'PROCESSES\[\d\],\s*N_\("([^"]+)"\)', source)


def untranslated(texts: list[str], language: str) -> list[str]:
    """The texts (an output's text nodes or cells) that are, or hold, a catalog message
    left in English although ``language`` translates it."""
    catalog = i18n.read_catalog(language)
    whole, parts = set(), set()
    for entry in catalog:
        ids = [entry.id] if isinstance(entry.id, str) else list(entry.id)
        strings = [entry.string] if isinstance(entry.string, str) else list(entry.string)
        for message in ids:
            if not message or any(message in s for s in strings):
                continue  # a message its translation keeps (ABC, RFM segment -> RFM segments)
            whole.add(message)
            parts.update(p.strip(" ,;:()") for p in i18n.PLACEHOLDER.sub("\0", message).split("\0"))
    parts = {p for p in parts if len(p) >= 10 and " " in p}
    return [t for t in texts if t.strip() in whole or any(p in t for p in parts)]


def html_texts(page: str) -> list[str]:
    """The text nodes of an HTML page (charts' SVG text included)."""
    import html

    return [html.unescape(t).strip() for t in re.split(r"<[^>]+>", page) if t.strip()]


def test_last_refusal_in_latvian_and_unchanged_in_english() -> None:
    from crm_bridge.plugins import kpis

    english = [
        "2026-03-01 quote refused",
        "2026-03-02 opportunity lost: no reason recorded",
        "2026-03-03 opportunity lost: Price",
        None,
    ]
    frame = pl.DataFrame({"r": english})
    assert frame.select(kpis._in_words(pl.col("r")))["r"].to_list() == english
    with i18n.using("lv"):
        latvian = frame.select(kpis._in_words(pl.col("r")))["r"].to_list()
    assert latvian == [
        "2026-03-01 piedāvājums atteikts",
        "2026-03-02 iespēja zaudēta: iemesls nav reģistrēts",
        "2026-03-03 iespēja zaudēta: Price",  # the ERP's own words stay as they are
        None,
    ]


def test_dolibarr_extrafield_labels_in_the_configured_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dolibarr keeps one label per extrafield: it is written in [locale] language, a
    second provision changes nothing, and a new language relabels without touching values."""
    import json

    import responses
    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from . import fake_erps

    erp = fake_erps.Dolibarr()
    monkeypatch.setenv("DOLI_KEY", erp.key)
    config = tmp_path / "crm-bridge.toml"
    base = (
        f'[erp]\nadapter = "dolibarr"\nurl = "{erp.base}/api/index.php"\n'
        'api_key = "${DOLI_KEY}"\n[sync]\nas_of = "2024-04-30"\n[state]\npath = "state.db"\n'
    )
    runner = CliRunner()

    def provision(language: str) -> list[str]:
        config.write_text(base + f'[locale]\nlanguage = "{language}"\n', "utf-8")
        got = runner.invoke(
            cli, ["--config", str(config), "fields", "provision", "--json"], obj=load_plugins()
        )
        assert got.exit_code == 0, got.output
        return list(json.loads(got.stdout)["changes"])

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        assert "created rfm_segment" in provision("lv")
        assert erp.extrafields["crm_rfm_segment"]["label"] == "RFM segments"
        assert erp.extrafields["crm_loyalty_tier"]["label"] == "Lojalitātes līmenis"
        assert provision("lv") == []
        values = json.dumps(erp.thirdparties, sort_keys=True, default=str)
        assert "updated loyalty_tier" in provision("ru")
        assert erp.extrafields["crm_loyalty_tier"]["label"] == "Уровень лояльности"
        assert json.dumps(erp.thirdparties, sort_keys=True, default=str) == values


def test_sync_dry_run_and_a_config_error_in_russian_with_no_english_left(tmp_path: Path) -> None:
    """``[locale] language`` (or ``--lang``, or the environment's locale) is the language of
    the CLI's summaries and errors too; English reads as it always did, log lines stay English."""
    import json

    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from .test_pipeline import setup

    _cfg, plugins, _adapter = setup(tmp_path)
    config = tmp_path / "crm-bridge.toml"
    english_config = config.read_text("utf-8")
    config.write_text(english_config + '[locale]\nlanguage = "ru"\n', "utf-8")
    no_locale = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": "C.UTF-8"}
    runner = CliRunner(env=no_locale)
    dry = runner.invoke(cli, ["--config", str(config), "sync", "--dry-run"], obj=plugins)
    assert dry.exit_code == 0, dry.output
    assert "пробный запуск: были бы записаны клиенты: 59; ничего не изменено" in dry.output
    assert "прочитано: клиентов 60, счетов" in dry.output and "Примеры изменений: 10" in dry.output
    cells = [c.strip() for c in re.split(r"[\n│┃┏┓┗┛━─┡┩└┘┌┐╇╈┳┻╷╵┬┴┼]+", dry.output)]
    assert untranslated([c for c in cells if c], "ru") == []

    config.write_text(english_config, "utf-8")  # no [locale]: English, as it always read
    dry = runner.invoke(cli, ["--config", str(config), "sync", "--dry-run"], obj=plugins)
    assert "dry run: would write 59 customers; nothing was changed" in dry.output
    assert "read 60 customers, " in dry.output and "Sample of 10 changes" in dry.output
    doctor = runner.invoke(cli, ["--config", str(config), "--lang", "ru", "doctor"], obj=plugins)
    assert doctor.exit_code == 1 and doctor.output.startswith("СБОЙ     fields "), doctor.output
    doctor = runner.invoke(cli, ["--config", str(config), "doctor"], obj=plugins)
    assert doctor.output.startswith("FAIL fields "), doctor.output

    secret = 'adapter = "memory"\npassword = "${CRM_BRIDGE_I18N_UNSET}"\n'
    config.write_text(english_config.replace('adapter = "memory"\n', secret), "utf-8")
    bad = ["--config", str(config), "sync", "--dry-run"]
    russian = runner.invoke(cli, bad, obj=plugins, env={"LANG": "ru_RU.UTF-8"})
    assert russian.exit_code == 2
    assert russian.stderr.splitlines() == [
        "Ошибка: ключ настроек erp.password ссылается на переменную окружения "
        "CRM_BRIDGE_I18N_UNSET, которая не задана",
        "Подсказка: выполните export CRM_BRIDGE_I18N_UNSET=... перед запуском crm-bridge",
    ]
    assert untranslated(russian.stderr.splitlines(), "ru") == []
    chinese = runner.invoke(cli, ["--lang", "zh_CN", *bad], obj=plugins)
    assert chinese.stderr.startswith("错误： 配置项 erp.password 引用了环境变量"), chinese.stderr
    logged = runner.invoke(cli, ["--lang", "ru", "--log-json", *bad], obj=plugins)
    event = json.loads(logged.stderr)
    assert event["message"] == (
        "config key erp.password refers to the environment variable CRM_BRIDGE_I18N_UNSET, "
        "which is not set"
    )
