"""The headline fields (``list_column``, ``list_total``) in each ERP's customer list,
as ``fields provision`` sets them up: against the fakes of Odoo, ERPNext and Dolibarr
(the live Dolibarr: tests/test_dolibarr_live.py), and the Tryton module's fixed
columns checked against the same declarations."""

from __future__ import annotations

import ast
import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from crm_bridge.adapters.rest import RestAdapter

from crm_bridge import list_views, mapping
from crm_bridge.adapter import Batch
from crm_bridge.fields import Field
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.topics import reading_order

from . import fake_erps

MODULE = Path(__file__).parent.parent / "adapters" / "tryton_module" / "trytond_crm_bridge"


@pytest.fixture(scope="module")
def declared() -> list[Field]:
    return list(load_plugins().fields().values())


def _fake(kind: type[fake_erps.FakeErp]) -> Iterator[Any]:
    erp = kind()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        yield erp


@pytest.fixture
def dolibarr() -> Iterator[fake_erps.Dolibarr]:
    yield from _fake(fake_erps.Dolibarr)


@pytest.fixture
def erpnext() -> Iterator[fake_erps.ERPNext]:
    yield from _fake(fake_erps.ERPNext)


@pytest.fixture(params=[fake_erps.Odoo, fake_erps.OdooJsonRpc], ids=["json2", "jsonrpc"])
def odoo(request: pytest.FixtureRequest) -> Iterator[fake_erps.Odoo]:
    yield from _fake(request.param)


def _dolibarr(erp: fake_erps.Dolibarr) -> RestAdapter:
    url = erp.base + "/api/index.php"
    return RestAdapter(mapping.load("dolibarr"), {"url": url, "api_key": erp.key})


def _erpnext(erp: fake_erps.ERPNext) -> RestAdapter:
    settings = {"api_key": "apikey", "api_secret": "apisecret"}
    return RestAdapter(mapping.load("erpnext"), {"url": erp.base, **settings})


def _odoo(erp: fake_erps.Odoo) -> RestAdapter:
    if isinstance(erp, fake_erps.OdooJsonRpc):
        settings = {"username": erp.username, "password": erp.password}
        return RestAdapter(
            mapping.load("odoo_jsonrpc"), {"url": erp.base, "database": erp.database, **settings}
        )
    settings = {"api_key": erp.api_key, "database": erp.database}
    return RestAdapter(mapping.load("odoo"), {"url": erp.base, **settings})


# -- the declaration ------------------------------------------------------------------
def test_the_headline_fields_are_the_tryton_modules_columns(declared: list[Field]) -> None:
    """One declaration: the fields flagged list_column are the columns the Tryton
    module lists (a fixed set there: a column is a field of its model), and the
    totalled ones are its columns with a sum."""
    tree = ast.parse((MODULE / "party.py").read_text("utf-8"))
    columns = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "COLUMNS"
    )
    keys = {key for key, _ in ast.literal_eval(columns).values()}
    assert keys == {f.name for f in declared if f.list_column}
    view = ET.parse(MODULE / "view" / "party_crm_list.xml").getroot()
    summed = {e.get("name") for e in view.iter("field") if e.get("sum")}
    column_of = {k: key for k, (key, _) in ast.literal_eval(columns).items()}
    assert {column_of[c] for c in summed if c} == {f.name for f in declared if f.list_total}


def test_a_total_needs_a_number_column() -> None:
    with pytest.raises(ValueError, match="list_total needs list_column"):
        Field("x_total", "numeric", "Total", list_total=True)
    with pytest.raises(ValueError, match="list_total needs list_column"):
        Field("x_total", "char", "Total", list_column=True, list_total=True)


# -- Dolibarr ---------------------------------------------------------------------------
def test_dolibarr_groups_the_fields_under_a_crm_heading_and_lists_the_headline_ones(
    dolibarr: fake_erps.Dolibarr, declared: list[Field]
) -> None:
    first = _dolibarr(dolibarr).provision(declared)
    assert "created the CRM heading on the third-party card" in first
    held = dolibarr.extrafields
    heading = held["crmbridge"]
    assert (heading["type"], heading["label"], heading["pos"], heading["list"]) == (
        "separate",
        "CRM",
        "1000",
        "3",
    )
    fields = {k: v for k, v in held.items() if k != "crmbridge"}
    # Topic by topic (crm_bridge.topics), as on Tryton's CRM tab.
    assert sorted(fields, key=lambda k: int(fields[k]["pos"])) == [
        f"crm_{f.name}" for f in reading_order(declared)
    ]
    assert int(fields["crm_rfm_segment"]["pos"]) == 1001
    for f in declared:
        got = fields[f"crm_{f.name}"]
        assert got["list"] == ("1" if f.list_column else "-1"), f.name
        assert got["totalizable"] == ("1" if f.list_total else "0"), f.name
        assert int(got["pos"]) > 1000
    before = {k: dict(v) for k, v in held.items()}
    assert _dolibarr(dolibarr).provision(declared) == []
    assert dolibarr.extrafields == before


def test_dolibarr_an_earlier_installation_is_updated_and_keeps_its_values(
    dolibarr: fake_erps.Dolibarr, declared: list[Field]
) -> None:
    adapter = _dolibarr(dolibarr)
    adapter.provision(declared)
    adapter.write([Batch(("1", "2"), {"rfm_segment": "at_risk", "kpi_revenue_12m": 12.5})])
    values = {k: dict(p["array_options"]) for k, p in dolibarr.thirdparties.items()}
    # What the profile sent before: every field a list column, no position, no total.
    for held in dolibarr.extrafields.values():
        held.update(list="1", pos="0", totalizable="0")
    del dolibarr.extrafields["crmbridge"]
    checks = {c.name: c for c in _dolibarr(dolibarr).check(declared)}
    assert checks["fields"].ok and checks["definitions"].ok  # a note, not a failure
    assert checks["definitions"].detail.startswith(f"{len(declared)} field definition(s)")
    assert checks["definitions"].hint == "crm-bridge fields provision"
    again = _dolibarr(dolibarr).provision(declared)
    assert sorted(again) == sorted(
        [f"updated {f.name}" for f in declared]
        + ["created the CRM heading on the third-party card"]
    )
    assert {k: dict(p["array_options"]) for k, p in dolibarr.thirdparties.items()} == values
    assert values["1"]["options_crm_rfm_segment"] == "at_risk"
    assert _dolibarr(dolibarr).provision(declared) == []
    assert "definitions" not in {c.name for c in _dolibarr(dolibarr).check(declared)}


# -- ERPNext ----------------------------------------------------------------------------
def test_erpnext_headline_fields_are_in_the_list_view_and_the_standard_filters(
    erpnext: fake_erps.ERPNext, declared: list[Field]
) -> None:
    assert len(_erpnext(erpnext).provision(declared)) == len(declared)
    custom = {d["fieldname"]: d for d in erpnext.docs["Custom Field"]}
    for f in declared:
        doc = custom[f"custom_crm_{f.name}"]
        flag = int(f.list_column)
        assert (doc["in_list_view"], doc["in_standard_filter"]) == (flag, flag), f.name
    assert _erpnext(erpnext).provision(declared) == []
    # A declaration that stops being a headline field is taken out of the list.
    changed = [dataclasses.replace(f, list_column=False, list_total=False) for f in declared]
    assert sorted(_erpnext(erpnext).provision(changed)) == sorted(
        f"updated {f.name}" for f in declared if f.list_column
    )
    assert not any(d["in_list_view"] for d in erpnext.docs["Custom Field"])
    assert _erpnext(erpnext).provision(changed) == []


# -- Odoo -------------------------------------------------------------------------------
def _views(erp: fake_erps.Odoo) -> dict[str, dict[str, Any]]:
    return {
        v["name"]: v
        for v in erp.models["ir.ui.view"].values()
        if str(v["name"]).startswith("crm_bridge.")
    }


def _named(arch: str, tag: str) -> list[str]:
    return [str(e.get("name")) for e in ET.fromstring(arch).iter(tag)]


def test_odoo_inherited_list_and_search_views_add_the_headline_fields(
    odoo: fake_erps.Odoo, declared: list[Field]
) -> None:
    first = _odoo(odoo).provision(declared)
    assert first[-2:] == [
        "created the CRM columns of the contacts list (ir.ui.view)",
        "created the CRM filters of the contacts search (ir.ui.view)",
    ]
    views = _views(odoo)
    listing, search = views["crm_bridge.res_partner_list"], views["crm_bridge.res_partner_search"]
    assert (listing["inherit_id"], search["inherit_id"]) == (120, 121)  # base's views
    headline = [f"x_crm_{f.name}" for f in reading_order(declared) if f.list_column]
    assert headline[:3] == ["x_crm_rfm_segment", "x_crm_abc_xyz", "x_crm_abc_class"]
    assert _named(listing["arch"], "field") == headline
    summed = {str(e.get("name")) for e in ET.fromstring(listing["arch"]).iter() if e.get("sum")}
    assert summed == {"x_crm_kpi_revenue_12m", "x_crm_kpi_overdue_amount"}
    assert _named(search["arch"], "field") == headline
    groups = [e.get("context") for e in ET.fromstring(search["arch"]).iter("filter")]
    assert "{'group_by': 'x_crm_rfm_segment'}" in groups
    assert len(groups) == sum(f.list_column and f.type == "selection" for f in declared)
    # Again: nothing changes, no second view.
    assert _odoo(odoo).provision(declared) == []
    assert _views(odoo) == views


def test_odoo_a_new_headline_field_updates_the_same_views_and_retiring_it_leaves_them(
    odoo: fake_erps.Odoo, declared: list[Field]
) -> None:
    _odoo(odoo).provision(declared)
    ids = {n: v["id"] for n, v in _views(odoo).items()}
    probe = Field("probe_score", "numeric", "Probe score", list_column=True, list_total=True)
    assert _odoo(odoo).provision([*declared, probe]) == [
        "created probe_score",
        "updated the CRM columns of the contacts list (ir.ui.view)",
        "updated the CRM filters of the contacts search (ir.ui.view)",
    ]
    views = _views(odoo)
    assert {n: v["id"] for n, v in views.items()} == ids
    assert "x_crm_probe_score" in _named(views["crm_bridge.res_partner_list"]["arch"], "field")
    # Odoo refuses to delete a field a view names: retiring takes it out of the views.
    _odoo(odoo).retire("probe_score")
    assert all("x_crm_probe_score" not in v["arch"] for v in _views(odoo).values())
    assert "x_crm_probe_score" not in {f["name"] for f in odoo.models["ir.model.fields"].values()}
    assert _odoo(odoo).provision(declared) == []


def test_odoo_values_stay_when_the_views_are_rebuilt(
    odoo: fake_erps.Odoo, declared: list[Field]
) -> None:
    adapter = _odoo(odoo)
    adapter.provision(declared)
    adapter.write([Batch(("1",), {"loyalty_tier": "gold"})])
    partners = {i: dict(p) for i, p in odoo.models["res.partner"].items()}
    renamed = [dataclasses.replace(f, list_column=f.name != "loyalty_tier") for f in declared]
    _odoo(odoo).provision(renamed)
    assert "x_crm_loyalty_tier" not in _views(odoo)["crm_bridge.res_partner_list"]["arch"]
    assert {i: dict(p) for i, p in odoo.models["res.partner"].items()} == partners


def test_list_views_without_drops_every_element_naming_the_field() -> None:
    f = Field("rfm_segment", "selection", "RFM", choices=[("a", "A")], list_column=True)
    g = Field("kpi_x", "numeric", "X", list_column=True)
    arch = list_views.odoo_search([f, g], "x_crm_{name}")
    left = list_views.without(arch, "x_crm_rfm_segment")
    assert "x_crm_rfm_segment" not in left and 'name="x_crm_kpi_x"' in left
    assert list_views.same(arch, re.sub("><", ">\n  <", arch))


def test_doctor_lines_in_the_output_language(
    dolibarr: fake_erps.Dolibarr, declared: list[Field]
) -> None:
    """``doctor``'s details come in the command's language (the ERP's own words stay)."""
    from crm_bridge import i18n

    with i18n.using("ru"):
        russian = {c.name: c for c in _dolibarr(dolibarr).check(declared)}
    english = {c.name: c for c in _dolibarr(dolibarr).check(declared)}
    assert russian.keys() == english.keys()
    assert english["fields"].detail.startswith(f"0/{len(declared)} fields present, missing: ")
    assert russian["fields"].detail.startswith(f"полей есть: 0/{len(declared)}, отсутствуют: ")
    assert russian["fields"].detail.endswith(f" и ещё {len(declared) - 5}")
    assert russian["read"].detail.endswith(": клиенты читаются"), russian["read"].detail


def test_odoo_field_descriptions_in_each_active_language_and_a_second_run_writes_nothing(
    odoo: fake_erps.Odoo, declared: list[Field]
) -> None:
    """``fields provision`` (sync.provision) writes the English definitions, then each
    active res.lang with a catalog gets its labels and help texts (de_DE has none; fr_FR
    is inactive); values are never touched; a second run changes nothing."""
    from crm_bridge import config as config_mod
    from crm_bridge import i18n
    from crm_bridge.sync import provision

    cfg = config_mod.Config(Path("crm-bridge.toml"), {"erp": {}}, set(), set())
    first = provision(_odoo(odoo), declared, cfg)
    translated = [c for c in first if c.startswith("translated ")]
    assert len(translated) == 3 * len(declared)
    assert {c.rsplit(" ", 1)[1] for c in translated} == {"(ru)", "(lv)", "(zh_CN)"}
    defs = {d["name"]: d for d in odoo.models["ir.model.fields"].values()}
    segment = defs["x_crm_rfm_segment"]
    label = next(f.label for f in declared if f.name == "rfm_segment")
    assert segment["field_description"] == label  # the base (en_US) value: English
    for code, language in (("ru_RU", "ru"), ("lv_LV", "lv"), ("zh_CN", "zh_CN")):
        with i18n.using(language):
            assert segment["_translated"][code]["field_description"] == i18n._(label) != label
    assert "de_DE" not in segment["_translated"] and "fr_FR" not in segment["_translated"]
    partners = {i: dict(p) for i, p in odoo.models["res.partner"].items()}
    assert provision(_odoo(odoo), declared, cfg) == []
    assert {i: dict(p) for i, p in odoo.models["res.partner"].items()} == partners
    narrowed = config_mod.Config(
        Path("crm-bridge.toml"), {"erp": {}, "locale": {"languages": ["lv"]}}, set(), set()
    )
    segment["_translated"]["lv_LV"]["field_description"] = "veca"
    segment["_translated"]["ru_RU"]["field_description"] = "старое"
    assert provision(_odoo(odoo), declared, narrowed) == ["translated rfm_segment (lv)"]


def test_erpnext_translations_of_the_labels_in_each_enabled_language(
    erpnext: fake_erps.ERPNext, declared: list[Field]
) -> None:
    """The Custom Fields are English; each enabled Language with a catalog (ru, lv, zh;
    not zh-TW, de, nor the disabled fr) gets a Translation of each label and help text;
    a second run writes nothing; a changed translation is updated in place."""
    from crm_bridge import config as config_mod
    from crm_bridge import i18n
    from crm_bridge.sync import provision

    cfg = config_mod.Config(Path("crm-bridge.toml"), {"erp": {}}, set(), set())
    first = provision(_erpnext(erpnext), declared, cfg)
    assert {c.rsplit(" ", 1)[1] for c in first if c.startswith("translated ")} == {
        "(ru)",
        "(lv)",
        "(zh_CN)",
    }
    label = next(f.label for f in declared if f.name == "rfm_segment")
    custom = {d["fieldname"]: d for d in erpnext.docs["Custom Field"]}
    assert custom["custom_crm_rfm_segment"]["label"] == label
    held = {(t["language"], t["source_text"]): t for t in erpnext.docs["Translation"]}
    assert {lang for lang, _ in held} == {"ru", "lv", "zh"}
    with i18n.using("zh_CN"):
        assert held[("zh", label)]["translated_text"] == i18n._(label) != label
    texts = {t for f in declared for t in (f.label, f.help) if t}
    assert len(held) == 3 * len(texts)  # every text translates (the catalog test says so)
    customers = [dict(c) for c in erpnext.docs["Customer"]]
    assert provision(_erpnext(erpnext), declared, cfg) == []
    held[("ru", label)]["translated_text"] = "старое"
    again = provision(_erpnext(erpnext), declared, cfg)
    assert again == ["translated rfm_segment (ru)"]
    assert len(erpnext.docs["Translation"]) == 3 * len(texts)
    assert [dict(c) for c in erpnext.docs["Customer"]] == customers
